#include "tokenizer/spm.h"

#include <queue>

#include "core/utf8.h"

namespace moe::tok {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

struct Symbol {
    size_t start = 0;
    size_t len = 0;  // 0 once merged into its left neighbour
    int prev = -1;
    int next = -1;
};

struct Bigram {
    int left = 0;
    int right = 0;
    float score = 0.0f;
    size_t left_len = 0;
    size_t right_len = 0;
};

// Highest score first; on ties the leftmost pair.
struct BigramOrder {
    bool operator()(const Bigram& a, const Bigram& b) const {
        return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
};

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

    // One symbol per UTF-8 character.
    std::vector<Symbol> sym;
    for (size_t pos = 0; pos < text.size();) {
        const size_t len = utf8::char_len(text, pos);
        const int idx = static_cast<int>(sym.size());
        sym.push_back({pos, len, idx - 1, pos + len == text.size() ? -1 : idx + 1});
        pos += len;
    }

    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
    auto try_pair = [&](int l, int r) {
        if (l < 0 || r < 0) return;
        const Symbol& a = sym[static_cast<size_t>(l)];
        const Symbol& b = sym[static_cast<size_t>(r)];
        const int32_t id = vocab_.find(std::string_view(text).substr(a.start, a.len + b.len));
        if (id < 0) return;
        queue.push({l, r, vocab_.tokens[static_cast<size_t>(id)].score, a.len, b.len});
    };
    for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_pair(i - 1, i);

    while (!queue.empty()) {
        const Bigram bg = queue.top();
        queue.pop();
        Symbol& l = sym[static_cast<size_t>(bg.left)];
        Symbol& r = sym[static_cast<size_t>(bg.right)];
        // Stale: one side has merged since the pair was queued.
        if (l.len != bg.left_len || r.len != bg.right_len || l.next != bg.right) continue;
        l.len += r.len;
        r.len = 0;
        l.next = r.next;
        if (r.next >= 0) sym[static_cast<size_t>(r.next)].prev = bg.left;
        try_pair(l.prev, bg.left);
        try_pair(bg.left, l.next);
    }

    for (int i = 0; i != -1; i = sym[static_cast<size_t>(i)].next) {
        const Symbol& s = sym[static_cast<size_t>(i)];
        const std::string_view piece = std::string_view(text).substr(s.start, s.len);
        const int32_t id = vocab_.find(piece);
        if (id >= 0) {
            out.push_back(id);
            continue;
        }
        for (char c : piece) {
            const int32_t b = byte_tokens_[static_cast<uint8_t>(c)];
            if (b >= 0) out.push_back(b);
        }
    }
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
