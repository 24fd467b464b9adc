#include "tokenizer/bpe.h"

#include "core/byte_alphabet.h"
#include "tokenizer/merge_symbols.h"

namespace moe::tok {

namespace {

constexpr char kRankSep = '\xFF';

}  // namespace

Result<std::unique_ptr<Tokenizer>> BpeTokenizer::create(Vocab vocab, const ModelSource& src) {
    const gguf::Array* merges = src.get_array("tokenizer.ggml.merges");
    if (!merges) return make_error("tokenizer.ggml.merges is missing or not an array");
    MOE_TRY(RegexSplitter splitter, RegexSplitter::create(pretokenizer_regexes(vocab.pre)));
    const std::string pre = vocab.pre;
    std::unique_ptr<BpeTokenizer> t(new BpeTokenizer(std::move(vocab), std::move(splitter)));
    t->ranks_.reserve(merges->items.size());
    for (size_t i = 0; i < merges->items.size(); ++i) {
        const std::string* m = merges->items[i].as_string();
        if (!m) return make_error("tokenizer.ggml.merges[{}] is not a string", i);
        const size_t sp = m->find(' ', 1);
        if (sp == std::string::npos || sp + 1 == m->size())
            return make_error("tokenizer.ggml.merges[{}] = '{}' is not 'left right'", i, *m);
        std::string key = m->substr(0, sp);
        key += kRankSep;
        key.append(*m, sp + 1);
        t->ranks_.emplace(std::move(key), static_cast<int>(i));  // first occurrence wins
    }
    for (std::string_view name : {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1",
                                  "pixtral", "midm-2.0", "lfm2", "tekken"})
        if (pre == name) t->ignore_merges_ = true;
    return std::unique_ptr<Tokenizer>(std::move(t));
}

int BpeTokenizer::rank(std::string_view left, std::string_view right) const {
    std::string key;
    key.reserve(left.size() + right.size() + 1);
    key.append(left);
    key += kRankSep;
    key.append(right);
    auto it = ranks_.find(key);
    return it == ranks_.end() ? -1 : it->second;
}

void BpeTokenizer::encode_text(std::string_view text, bool /*follows_special*/,
                               std::vector<int32_t>& out) const {
    std::string word;
    for (std::string_view piece : splitter_.split(text)) {
        word.clear();
        for (char c : piece) word += byte_to_unicode(static_cast<uint8_t>(c));
        encode_word(word, out);
    }
}

void BpeTokenizer::encode_word(const std::string& word, std::vector<int32_t>& out) const {
    if (ignore_merges_) {
        if (int32_t id = vocab_.find(word); id >= 0) {
            out.push_back(id);
            return;
        }
    }
    const std::string_view w(word);
    std::vector<Symbol> sym = char_symbols(w);
    merge_symbols(w, sym, [&](std::string_view l, std::string_view r) -> std::optional<double> {
        const int rk = rank(l, r);
        if (rk < 0) return std::nullopt;
        return -double(rk);  // the lowest rank merges first
    });
    for_each_symbol(w, sym, [&](std::string_view piece) {
        if (int32_t id = vocab_.find(piece); id >= 0) {
            out.push_back(id);
            return;
        }
        // Not in the vocabulary (an incomplete vocab): emit the characters that are.
        for (size_t pos = 0; pos < piece.size();) {
            const size_t len = utf8::char_len(piece, pos);
            if (int32_t id = vocab_.find(piece.substr(pos, len)); id >= 0) out.push_back(id);
            pos += len;
        }
    });
}

std::string BpeTokenizer::decode_token(int32_t id, bool skip_special) const {
    std::string out;
    if (decode_special(id, skip_special, out)) return out;
    const std::string& text = vocab_.tokens[static_cast<size_t>(id)].text;
    out.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
        size_t len = 1;
        const uint32_t cp = utf8::decode(text, pos, len);
        const int b = unicode_to_byte(cp);
        if (b >= 0)
            out += static_cast<char>(b);
        else
            out.append(text, pos, len);  // outside the byte alphabet: keep the text as is
        pos += len;
    }
    return out;
}

}  // namespace moe::tok
