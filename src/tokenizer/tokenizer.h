// Tokenizer: text <-> token ids, built from GGUF tokenizer metadata (tokenizer.ggml.*), which a
// Hugging Face folder's tokenizer.json is adapted to as well.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "formats/model_source.h"

namespace moe {

class Tokenizer {
public:
    virtual ~Tokenizer() = default;

    // Builds the tokenizer named by tokenizer.ggml.model ("llama" = SentencePiece-style,
    // "gpt2" = byte-level BPE with the pre-tokenizer of tokenizer.ggml.pre).
    static Result<std::unique_ptr<Tokenizer>> from_source(const ModelSource& src);

    // add_bos: prepend BOS if the vocabulary says so (tokenizer.ggml.add_bos_token) — callers
    // pass false for raw tokenization. parse_special: recognise special-token texts in `text`.
    virtual std::vector<int32_t> encode(std::string_view text, bool add_bos,
                                        bool parse_special) const = 0;
    // The bytes of one token as text (special tokens render as their text unless skip_special).
    virtual std::string decode_token(int32_t id, bool skip_special = false) const = 0;
    // Concatenated decode; handles SPM leading-space and byte-fallback joining.
    virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const = 0;
    // Streaming form of decode(): decode(ids) is the concatenation of decode_next(id, at_start)
    // over ids, with at_start true before the first id. at_start stays true until the first
    // token that renders plain text (SPM drops that token's leading space).
    virtual std::string decode_next(int32_t id, bool& at_start, bool skip_special = false) const = 0;

    virtual int32_t n_vocab() const = 0;
    virtual int32_t bos() const = 0;  // -1 if none
    virtual int32_t eos() const = 0;  // -1 if none
    virtual bool add_bos() const = 0;
    virtual bool is_eog(int32_t id) const = 0;  // end of generation (eos, eot, ...)
    virtual int32_t token_id(std::string_view text) const = 0;  // exact vocab lookup, -1 if none
};

}  // namespace moe
