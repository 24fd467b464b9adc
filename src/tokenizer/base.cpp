#include "tokenizer/base.h"

namespace moe::tok {

std::vector<int32_t> VocabTokenizer::encode(std::string_view text, bool add_bos,
                                            bool parse_special) const {
    std::vector<int32_t> out;
    if (add_bos && vocab_.add_bos && vocab_.bos >= 0) out.push_back(vocab_.bos);
    bool follows_special = true;
    for (const Fragment& f : split_special(vocab_, text, parse_special)) {
        if (f.token >= 0) {
            out.push_back(f.token);
            follows_special = true;
        } else {
            encode_text(text.substr(f.offset, f.length), follows_special, out);
            follows_special = false;
        }
    }
    return out;
}

bool VocabTokenizer::decode_special(int32_t id, bool skip_special, std::string& out) const {
    if (!vocab_.valid(id)) return true;  // out of range: renders as nothing
    const TokenData& t = vocab_.tokens[static_cast<size_t>(id)];
    switch (t.type) {
        case TokenType::kControl:
        case TokenType::kUnknown:
            if (!skip_special) out += t.text;
            return true;
        case TokenType::kUserDefined:
            out += t.text;
            return true;
        case TokenType::kUnused:
        case TokenType::kUndefined:
            return true;
        default:
            return false;
    }
}

std::string VocabTokenizer::decode_next(int32_t id, bool& at_start, bool skip_special) const {
    std::string piece = decode_token(id, skip_special);
    // The SPM dummy prefix: drop one leading space from the first token that renders plain text,
    // looking past leading BOS/control tokens, so decode(encode(s)) == s with or without BOS.
    if (at_start && vocab_.valid(id)) {
        const TokenType type = vocab_.type(id);
        if (type == TokenType::kControl || type == TokenType::kUnknown) return piece;
        at_start = false;
        if (strips_first_space() && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    }
    return piece;
}

std::string VocabTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
    std::string out;
    bool at_start = true;
    for (int32_t id : ids) out += decode_next(id, at_start, skip_special);
    return out;
}

}  // namespace moe::tok
