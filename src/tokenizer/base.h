// VocabTokenizer: what the SPM and BPE tokenizers share: special-token splitting, BOS, the
// vocabulary queries and whole-sequence decoding. Subclasses tokenize runs of plain text and
// render single tokens.
#pragma once

#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace moe::tok {

class VocabTokenizer : public Tokenizer {
  public:
    explicit VocabTokenizer(Vocab vocab) : vocab_(std::move(vocab)) {}

    std::vector<int32_t> encode(std::string_view text, bool add_bos,
                                bool parse_special) const override;
    std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override;
    std::string decode_next(int32_t id, bool& at_start, bool skip_special) const override;

    int32_t n_vocab() const override { return vocab_.n_tokens(); }
    int32_t bos() const override { return vocab_.bos; }
    int32_t eos() const override { return vocab_.eos; }
    bool add_bos() const override { return vocab_.add_bos; }
    bool is_eog(int32_t id) const override { return id >= 0 && vocab_.eog.count(id) > 0; }
    int32_t token_id(std::string_view text) const override { return vocab_.find(text); }

    const Vocab& vocab() const { return vocab_; }

  protected:
    // Tokenizes a run of text that holds no special token. `follows_special`: the run starts the
    // input or comes right after a special token.
    virtual void encode_text(std::string_view text, bool follows_special,
                             std::vector<int32_t>& out) const = 0;
    // Whether decode() drops the leading space of the first rendered token (SPM dummy prefix).
    virtual bool strips_first_space() const { return false; }

    // Rendering shared by both kinds for control / user-defined / unknown / unused tokens.
    // Returns false when the token is an ordinary one the subclass must render.
    bool decode_special(int32_t id, bool skip_special, std::string& out) const;

    Vocab vocab_;
};

}  // namespace moe::tok
