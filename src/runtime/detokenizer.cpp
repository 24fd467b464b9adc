#include "runtime/detokenizer.h"

#include <utility>

#include "core/utf8.h"

namespace moe {

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tok, std::span<const int32_t> context,
                                       bool skip_special)
    : tok_(tok), skip_special_(skip_special) {
    // Only the leading-space state carries over from the context; its text is not needed.
    for (int32_t id : context) {
        if (!at_start_) break;
        tok_.decode_next(id, at_start_, skip_special_);
    }
}

std::string IncrementalDecoder::push(int32_t id) {
    pending_ += tok_.decode_next(id, at_start_, skip_special_);
    const size_t upto = utf8::complete_prefix(pending_);
    std::string out = pending_.substr(0, upto);
    pending_.erase(0, upto);
    return out;
}

std::string IncrementalDecoder::flush() {
    return std::exchange(pending_, {});
}

}  // namespace moe
