// Vocab: the token table read from GGUF tokenizer metadata (tokenizer.ggml.*), with the special
// token ids, end-of-generation set and the per-token attributes both tokenizers share.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/result.h"
#include "formats/model_source.h"

namespace moe::tok {

// GGUF token types (tokenizer.ggml.token_type).
enum class TokenType : int32_t {
    kUndefined = 0,
    kNormal = 1,
    kUnknown = 2,
    kControl = 3,
    kUserDefined = 4,
    kUnused = 5,
    kByte = 6,
};

struct TokenData {
    std::string text;
    float score = 0.0f;
    TokenType type = TokenType::kNormal;
    bool lstrip = false;  // special token swallows whitespace on its left when split out
    bool rstrip = false;  // ... and on its right
};

enum class VocabKind { kSpm, kBpe };

struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct Vocab {
    VocabKind kind = VocabKind::kSpm;
    std::string pre;  // tokenizer.ggml.pre ("" if absent)
    std::vector<TokenData> tokens;
    std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> index;

    int32_t bos = -1, eos = -1, eot = -1, eom = -1, unk = -1;
    bool add_bos = false;
    bool add_space_prefix = false;  // SPM dummy prefix space
    std::unordered_set<int32_t> eog;
    // Control, user-defined and unknown tokens, longest text first: the texts the special-token
    // splitter looks for.
    std::vector<int32_t> specials;

    int32_t n_tokens() const { return static_cast<int32_t>(tokens.size()); }
    bool valid(int32_t id) const { return id >= 0 && id < n_tokens(); }
    int32_t find(std::string_view text) const {
        auto it = index.find(text);
        return it == index.end() ? -1 : it->second;
    }
    TokenType type(int32_t id) const { return tokens[static_cast<size_t>(id)].type; }
};

// Reads tokens, scores, types, special ids and flags. Every array length and id is validated.
Result<Vocab> load_vocab(const ModelSource& src);

// One piece of input after special-token splitting: raw text or an already-known token.
struct Fragment {
    int32_t token = -1;  // >= 0: a special token; -1: raw text [offset, offset + length)
    size_t offset = 0;
    size_t length = 0;
};

// Splits `text` on the texts of special tokens, longest first. User-defined tokens are always
// split out; control and unknown tokens only when `parse_special`.
std::vector<Fragment> split_special(const Vocab& vocab, std::string_view text, bool parse_special);

}  // namespace moe::tok
