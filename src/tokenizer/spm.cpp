#include "tokenizer/spm.h"

#include "tokenizer/merge_symbols.h"

namespace moe::tok {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

}  // namespace

SpmTokenizer::SpmTokenizer(Vocab vocab) : VocabTokenizer(std::move(vocab)) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
        const std::string name = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
        int32_t id = vocab_.find(name);
        if (id < 0) id = vocab_.find(std::string(1, static_cast<char>(b)));
        byte_tokens_[static_cast<size_t>(b)] = id >= 0 ? id : vocab_.unk;
    }
}

void SpmTokenizer::encode_text(std::string_view raw, bool follows_special,
                               std::vector<int32_t>& out) const {
    std::string text;
    text.reserve(raw.size() * 3 + 3);
    if (vocab_.add_space_prefix && follows_special) text += kSpace;
    for (char c : raw) {
        if (c == ' ')
            text += kSpace;
        else
            text += c;
    }
    if (text.empty()) return;

    std::vector<Symbol> sym = char_symbols(text);
    merge_symbols(text, sym, [&](std::string_view l, std::string_view r) -> std::optional<double> {
        const int32_t id = vocab_.find(std::string_view(l.data(), l.size() + r.size()));
        if (id < 0) return std::nullopt;
        return vocab_.tokens[static_cast<size_t>(id)].score;  // the highest score merges first
    });
    for_each_symbol(text, sym, [&](std::string_view piece) {
        const int32_t id = vocab_.find(piece);
        if (id >= 0) {
            out.push_back(id);
            return;
        }
        for (char c : piece) {
            const int32_t b = byte_tokens_[static_cast<uint8_t>(c)];
            if (b >= 0) out.push_back(b);
        }
    });
}

std::string SpmTokenizer::decode_token(int32_t id, bool skip_special) const {
    std::string out;
    if (decode_special(id, skip_special, out)) return out;
    const TokenData& t = vocab_.tokens[static_cast<size_t>(id)];
    if (t.type == TokenType::kByte) {
        if (t.text.size() == 6 && t.text.compare(0, 3, "<0x") == 0 && t.text[5] == '>') {
            const int hi = hex_digit(t.text[3]), lo = hex_digit(t.text[4]);
            if (hi >= 0 && lo >= 0) return std::string(1, static_cast<char>(hi * 16 + lo));
        }
        return t.text;
    }
    out.reserve(t.text.size());
    for (size_t pos = 0; pos < t.text.size();) {
        if (t.text.compare(pos, kSpace.size(), kSpace) == 0) {
            out += ' ';
            pos += kSpace.size();
        } else {
            out += t.text[pos++];
        }
    }
    return out;
}

}  // namespace moe::tok
