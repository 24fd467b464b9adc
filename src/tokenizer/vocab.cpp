#include "tokenizer/vocab.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>

namespace moe::tok {

namespace {

// Pre-tokenizer names whose models prepend BOS by default (upstream convention when the GGUF has
// no tokenizer.ggml.add_bos_token).
bool pre_adds_bos(std::string_view pre) {
    static constexpr std::array<std::string_view, 10> kNames = {
        "llama3",  "llama-v3", "llama-bpe", "falcon3", "falcon-h1",
        "pixtral", "midm-2.0", "lfm2",      "tekken",  "chameleon"};
    return std::find(kNames.begin(), kNames.end(), pre) != kNames.end();
}

// Texts of tokens that end generation when they exist as control tokens.
constexpr std::array<std::string_view, 12> kEogTexts = {
    "<|eot_id|>", "<|im_end|>",    "<|end|>",         "<|return|>",
    "<|call|>",   "<end_of_turn>", "<|endoftext|>",   "<|eom_id|>",
    "<EOT>",      "_<EOT>",        "<|end_of_text|>", "<end_of_utterance>"};

Result<void> read_tokens(const ModelSource& src, Vocab& v) {
    const gguf::Array* toks = src.get_array("tokenizer.ggml.tokens");
    if (!toks) return make_error("tokenizer.ggml.tokens is missing or not an array");
    if (toks->items.empty()) return make_error("tokenizer.ggml.tokens is empty");
    if (toks->items.size() > static_cast<size_t>(INT32_MAX))
        return make_error("tokenizer.ggml.tokens has too many entries");
    v.tokens.resize(toks->items.size());
    v.index.reserve(toks->items.size());
    for (size_t i = 0; i < toks->items.size(); ++i) {
        const std::string* s = toks->items[i].as_string();
        if (!s) return make_error("tokenizer.ggml.tokens[{}] is not a string", i);
        v.tokens[i].text = *s;
        // Later duplicates win, as in the upstream loader; empty texts are never matched.
        if (!s->empty()) v.index.insert_or_assign(*s, static_cast<int32_t>(i));
    }

    if (const gguf::Value* sv = src.find("tokenizer.ggml.scores")) {
        const gguf::Array* scores = sv->as_array();
        if (!scores) return make_error("tokenizer.ggml.scores is not an array");
        if (scores->items.size() != v.tokens.size())
            return make_error("tokenizer.ggml.scores has {} entries, tokens has {}",
                              scores->items.size(), v.tokens.size());
        for (size_t i = 0; i < scores->items.size(); ++i) {
            auto f = scores->items[i].as_float();
            if (!f) return make_error("tokenizer.ggml.scores[{}] is not a number", i);
            // A NaN score makes every comparison false: the merge order becomes arbitrary.
            if (!std::isfinite(*f) || std::fabs(*f) > 3.4e38)
                return make_error("tokenizer.ggml.scores[{}] = {} is not a finite float", i, *f);
            v.tokens[i].score = static_cast<float>(*f);
        }
    }

    if (const gguf::Value* tv = src.find("tokenizer.ggml.token_type")) {
        const gguf::Array* types = tv->as_array();
        if (!types) return make_error("tokenizer.ggml.token_type is not an array");
        if (types->items.size() != v.tokens.size())
            return make_error("tokenizer.ggml.token_type has {} entries, tokens has {}",
                              types->items.size(), v.tokens.size());
        for (size_t i = 0; i < types->items.size(); ++i) {
            auto t = types->items[i].as_int();
            if (!t) return make_error("tokenizer.ggml.token_type[{}] is not an integer", i);
            if (*t < 0 || *t > 6)
                return make_error("tokenizer.ggml.token_type[{}] = {} is not a token type (0-6)", i,
                                  *t);
            v.tokens[i].type = static_cast<TokenType>(*t);
        }
    }
    return {};
}

// Reads an optional token id; an id outside the vocabulary is an error.
Result<int32_t> read_id(const ModelSource& src, const Vocab& v, const char* key, int32_t dflt) {
    const gguf::Value* val = src.find(key);
    if (!val) return v.valid(dflt) ? dflt : -1;
    auto id = val->as_int();
    if (!id) return make_error("{} is not an integer", key);
    if (*id < 0 || *id >= v.n_tokens())
        return make_error("{} = {} is out of range (the vocabulary has {} tokens)", key, *id,
                          v.n_tokens());
    return static_cast<int32_t>(*id);
}

// Markers of sequence, turn and fill-in-the-middle boundaries. Some converters type them
// user-defined (always split out of text), so a prompt that merely quotes "</s>" or "<|EOT|>"
// would get the real marker without --special. They are made control tokens, as the upstream
// engine does for "control-looking" tokens.
// clang-format off
constexpr std::array<std::string_view, 19> kControlTexts = {
    "<s>",           "</s>",          "<|EOT|>",          "<|im_start|>",   "<|im_end|>",
    "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>",    "<|fim_repo|>",
    "<|file_sep|>",  "<｜fim▁begin｜>", "<｜fim▁hole｜>",  "<｜fim▁end｜>",   "<PRE>",
    "<SUF>",         "<MID>",         "<EOT>",            "<|end_of_text|>"};
// clang-format on

void mark_control_looking(Vocab& v) {
    auto promote = [&](int32_t id) {
        if (id >= 0 && v.type(id) == TokenType::kUserDefined)
            v.tokens[static_cast<size_t>(id)].type = TokenType::kControl;
    };
    for (int32_t id : {v.bos, v.eos, v.eot, v.eom}) promote(id);
    for (std::string_view text : kControlTexts) promote(v.find(text));
    for (std::string_view text : kEogTexts) promote(v.find(text));
}

void mark_eog(Vocab& v) {
    for (int32_t id : {v.eos, v.eot, v.eom})
        if (id >= 0) v.eog.insert(id);
    for (std::string_view text : kEogTexts) {
        const int32_t id = v.find(text);
        if (id >= 0 && v.type(id) == TokenType::kControl) v.eog.insert(id);
    }
    // gpt-oss (harmony): <|end|> closes a message, not the generation, when <|return|> and
    // <|call|> exist; it is then ordinary user-defined text.
    const int32_t ret = v.find("<|return|>"), call = v.find("<|call|>"), end = v.find("<|end|>");
    if (ret >= 0 && call >= 0 && end >= 0 && v.eog.count(ret) && v.eog.count(call)) {
        v.eog.erase(end);
        v.tokens[static_cast<size_t>(end)].type = TokenType::kUserDefined;
    }
}

void set_strip_flags(const ModelSource& src, Vocab& v) {
    std::string name = src.get_string("general.name").value_or("");
    std::transform(name.begin(), name.end(), name.begin(),
                   [](char c) { return static_cast<char>(std::tolower(static_cast<uint8_t>(c))); });
    if (name.find("phi-3") == std::string::npos && name.find("phi3") == std::string::npos) return;
    // Phi-3 special tokens swallow the whitespace after them (except BOS/UNK/<|endoftext|>).
    for (int32_t id : v.specials) v.tokens[static_cast<size_t>(id)].rstrip = true;
    if (int32_t id = v.find("</s>"); id >= 0) v.tokens[static_cast<size_t>(id)].rstrip = true;
    for (std::string_view t : {"<unk>", "<s>", "<|endoftext|>"})
        if (int32_t id = v.find(t); id >= 0) v.tokens[static_cast<size_t>(id)].rstrip = false;
}

}  // namespace

Result<Vocab> load_vocab(const ModelSource& src) {
    Vocab v;
    const gguf::Value* model_val = src.find("tokenizer.ggml.model");
    if (!model_val)
        return make_error("the model has no tokenizer (tokenizer.ggml.model is missing)");
    const std::string* model = model_val->as_string();
    if (!model) return make_error("tokenizer.ggml.model is not a string");
    if (*model == "llama") {
        v.kind = VocabKind::kSpm;
    } else if (*model == "gpt2") {
        v.kind = VocabKind::kBpe;
    } else {
        return make_error("unsupported tokenizer model '{}' (supported: llama, gpt2)", *model);
    }
    v.pre = src.get_string("tokenizer.ggml.pre").value_or("");
    MOE_TRY_VOID(read_tokens(src, v));

    const bool spm = v.kind == VocabKind::kSpm;
    MOE_TRY(v.bos, read_id(src, v, "tokenizer.ggml.bos_token_id", spm ? 1 : -1));
    MOE_TRY(v.eos, read_id(src, v, "tokenizer.ggml.eos_token_id", spm ? 2 : -1));
    MOE_TRY(v.unk, read_id(src, v, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1));
    MOE_TRY(v.eot, read_id(src, v, "tokenizer.ggml.eot_token_id", -1));
    MOE_TRY(v.eom, read_id(src, v, "tokenizer.ggml.eom_token_id", -1));

    // Flags of the wrong type are errors, not silently the default.
    for (const char* key : {"tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_space_prefix",
                            "tokenizer.ggml.add_eos_token"})
        if (const gguf::Value* f = src.find(key); f && !f->as_bool())
            return make_error("{} must be a bool, got {}", key, f->to_string());
    if (const gguf::Value* p = src.find("tokenizer.ggml.pre"); p && !p->as_string())
        return make_error("tokenizer.ggml.pre must be a string, got {}", p->to_string());
    v.add_bos = src.get_bool("tokenizer.ggml.add_bos_token").value_or(spm || pre_adds_bos(v.pre));
    if (v.bos < 0) v.add_bos = false;
    v.add_space_prefix = src.get_bool("tokenizer.ggml.add_space_prefix").value_or(spm);

    // gpt-oss chat-format markers are always split out and always rendered (upstream convention).
    for (std::string_view t : {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"})
        if (int32_t id = v.find(t); id >= 0)
            v.tokens[static_cast<size_t>(id)].type = TokenType::kUserDefined;
    mark_control_looking(v);
    mark_eog(v);

    for (int32_t id = 0; id < v.n_tokens(); ++id) {
        const TokenData& t = v.tokens[static_cast<size_t>(id)];
        const bool special = t.type == TokenType::kControl || t.type == TokenType::kUserDefined ||
                             t.type == TokenType::kUnknown;
        if (special && !t.text.empty()) v.specials.push_back(id);
    }
    std::stable_sort(v.specials.begin(), v.specials.end(), [&](int32_t a, int32_t b) {
        return v.tokens[static_cast<size_t>(a)].text.size() >
               v.tokens[static_cast<size_t>(b)].text.size();
    });
    set_strip_flags(src, v);
    return v;
}

std::vector<Fragment> split_special(const Vocab& vocab, std::string_view text, bool parse_special) {
    std::vector<Fragment> frags;
    if (text.empty()) return frags;
    frags.push_back({-1, 0, text.size()});

    // Where a special token could start: one pass over the text instead of one whole-text search
    // per special token (llama-bpe has 256 of them, nearly all starting with '<').
    std::array<bool, 256> first_byte{};
    for (int32_t id : vocab.specials) {
        const std::string& t = vocab.tokens[static_cast<size_t>(id)].text;
        first_byte[static_cast<uint8_t>(t[0])] = true;
    }
    std::vector<size_t> starts;
    for (size_t i = 0; i < text.size(); ++i)
        if (first_byte[static_cast<uint8_t>(text[i])]) starts.push_back(i);
    if (starts.empty()) return frags;
    const auto occurs = [&](std::string_view needle) {
        for (size_t p : starts)
            if (text.compare(p, needle.size(), needle) == 0) return true;
        return false;
    };

    std::vector<Fragment> next;
    for (int32_t id : vocab.specials) {
        const TokenData& tok = vocab.tokens[static_cast<size_t>(id)];
        if (!parse_special && tok.type != TokenType::kUserDefined) continue;
        const std::string_view needle = tok.text;
        if (!occurs(needle)) continue;  // cheap whole-text filter

        next.clear();
        for (const Fragment& f : frags) {
            if (f.token >= 0) {
                next.push_back(f);
                continue;
            }
            size_t start = f.offset;
            const size_t end = f.offset + f.length;
            while (start < end) {
                const size_t m = text.substr(0, end).find(needle, start);
                if (m == std::string_view::npos) break;
                size_t left_end = m;
                if (tok.lstrip)
                    while (left_end > start &&
                           std::isspace(static_cast<uint8_t>(text[left_end - 1])))
                        --left_end;
                if (left_end > start) next.push_back({-1, start, left_end - start});
                next.push_back({id, m, needle.size()});
                start = m + needle.size();
                if (tok.rstrip)
                    while (start < end && std::isspace(static_cast<uint8_t>(text[start]))) ++start;
            }
            if (start < end) next.push_back({-1, start, end - start});
        }
        frags.swap(next);
    }
    return frags;
}

}  // namespace moe::tok
