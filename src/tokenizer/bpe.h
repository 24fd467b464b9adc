// Byte-level BPE tokenizer (tokenizer.ggml.model = "gpt2"): pre-tokenizer regexes, bytes mapped
// to the GPT-2 alphabet, then merges applied by rank (tokenizer.ggml.merges order).
#pragma once

#include <string>
#include <unordered_map>

#include "tokenizer/base.h"
#include "tokenizer/pretokenizer.h"

namespace moe::tok {

class BpeTokenizer final : public VocabTokenizer {
  public:
    // Reads tokenizer.ggml.merges and builds the pre-tokenizer of tokenizer.ggml.pre.
    static Result<std::unique_ptr<Tokenizer>> create(Vocab vocab, const ModelSource& src);

    std::string decode_token(int32_t id, bool skip_special = false) const override;

  protected:
    void encode_text(std::string_view text, bool follows_special,
                     std::vector<int32_t>& out) const override;

  private:
    BpeTokenizer(Vocab vocab, RegexSplitter splitter)
        : VocabTokenizer(std::move(vocab)), splitter_(std::move(splitter)) {}
    int rank(std::string_view left, std::string_view right) const;
    void encode_word(const std::string& word, std::vector<int32_t>& out) const;

    RegexSplitter splitter_;
    // "left\xFFright" -> merge rank (0xFF never occurs in UTF-8 text).
    std::unordered_map<std::string, int, StringHash, std::equal_to<>> ranks_;
    // Whole pre-tokenized words found in the vocabulary skip the merges (Llama 3 style).
    bool ignore_merges_ = false;
};

}  // namespace moe::tok
