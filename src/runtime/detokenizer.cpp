#include "runtime/detokenizer.h"

#include <utility>

namespace moe {

size_t complete_utf8_prefix(std::string_view s) {
    // Walk back over at most 3 continuation bytes to the last lead byte.
    size_t n = s.size();
    for (size_t back = 1; back <= 4 && back <= n; ++back) {
        const unsigned char c = static_cast<unsigned char>(s[n - back]);
        if ((c & 0xC0) == 0x80) continue;  // continuation byte
        size_t need = 1;
        if ((c & 0xE0) == 0xC0)
            need = 2;
        else if ((c & 0xF0) == 0xE0)
            need = 3;
        else if ((c & 0xF8) == 0xF0)
            need = 4;
        return back >= need ? n : n - back;
    }
    return n;
}

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
    const size_t upto = complete_utf8_prefix(pending_);
    std::string out = pending_.substr(0, upto);
    pending_.erase(0, upto);
    return out;
}

std::string IncrementalDecoder::flush() {
    return std::exchange(pending_, {});
}

}  // namespace moe
