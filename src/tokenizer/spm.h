// SentencePiece-style tokenizer (tokenizer.ggml.model = "llama"): spaces become U+2581, a dummy
// prefix space is added, adjacent symbols merge by the highest score of the merged piece, and
// anything left outside the vocabulary falls back to <0xXX> byte tokens.
#pragma once

#include <array>

#include "tokenizer/base.h"

namespace moe::tok {

class SpmTokenizer final : public VocabTokenizer {
  public:
    explicit SpmTokenizer(Vocab vocab);

    std::string decode_token(int32_t id, bool skip_special = false) const override;

  protected:
    void encode_text(std::string_view text, bool follows_special,
                     std::vector<int32_t>& out) const override;
    bool strips_first_space() const override { return vocab_.add_space_prefix; }

  private:
    std::array<int32_t, 256> byte_tokens_{};  // byte -> token (-1 when the vocab lacks it)
};

}  // namespace moe::tok
