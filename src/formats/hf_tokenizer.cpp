#include "formats/hf_tokenizer.h"
#include "core/input_file.h"

#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

namespace moe {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

enum TokenType : int64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kByte = 6 };

Result<json> read_json_file(const fs::path& p) {
    MOE_TRY(const std::string text, read_input_file(p.string()));
    try {
        return json::parse(text);
    } catch (const json::exception& e) {
        return make_error("'{}': invalid JSON: {}", p.string(), e.what());
    }
}

gguf::Value str_value(std::string s) { return gguf::Value{gguf::ValueType::STRING, std::move(s)}; }
gguf::Value u32_value(int64_t v) { return gguf::Value{gguf::ValueType::U32, uint64_t(v)}; }
gguf::Value bool_value(bool b) { return gguf::Value{gguf::ValueType::BOOL, b}; }

gguf::Value array_value(gguf::ValueType t, std::vector<gguf::Value> items) {
    gguf::Array a;
    a.elem_type = t;
    a.items = std::move(items);
    return gguf::Value{gguf::ValueType::ARRAY, std::move(a)};
}

// "bos_token": "<s>" or {"content": "<s>", ...}
std::string token_text(const json& v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string())
        return v["content"].get<std::string>();
    return {};
}

// Picks the upstream pre-tokenizer name for a tokenizer.json pre_tokenizer: plain byte-level
// splitting is GPT-2's regex; Split patterns are recognised by fingerprints of known regexes.
std::string pre_tokenizer_name(const json& pre) {
    std::string pattern;
    std::function<void(const json&)> find = [&](const json& p) {
        if (!p.is_object()) return;
        if (p.value("type", "") == "Split" && p.contains("pattern") && p["pattern"].is_object())
            pattern = p["pattern"].value("Regex", "");
        if (p.contains("pretokenizers") && p["pretokenizers"].is_array())
            for (const auto& q : p["pretokenizers"]) find(q);
    };
    find(pre);
    if (pattern.empty()) return "default";
    if (pattern.find("\\p{Lu}*\\p{Ll}+") != std::string::npos ||
        pattern.find("[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*") != std::string::npos)
        return "gpt-4o";
    if (pattern.find("\\p{N}{1,3}") != std::string::npos) return "llama-bpe";
    if (pattern.find("\\p{N}| ?[^\\s\\p{L}\\p{N}]+") != std::string::npos ||
        pattern.find("\\p{N}|") != std::string::npos)
        return "qwen2";
    return "default";
}

}  // namespace

Result<void> append_hf_tokenizer(const std::string& dir,
                                 std::vector<std::pair<std::string, gguf::Value>>& kv) {
    const fs::path root(dir);
    std::error_code ec;
    const fs::path tj = root / "tokenizer.json";
    if (!fs::is_regular_file(tj, ec)) return {};
    MOE_TRY(json tok, read_json_file(tj));
    json cfg = json::object();
    if (fs::is_regular_file(root / "tokenizer_config.json", ec)) {
        MOE_TRY(cfg, read_json_file(root / "tokenizer_config.json"));
    }
    const std::string where = tj.string();
    try {
        const json& model = tok.at("model");
        if (model.value("type", "") != "BPE")
            return make_error("'{}': tokenizer model '{}' is not supported (BPE only)", where,
                              model.value("type", "?"));
        const json& vocab = model.at("vocab");
        if (!vocab.is_object()) return make_error("'{}': model.vocab is not an object", where);

        // Tokens by id: the BPE vocabulary plus added tokens.
        int64_t n = 0;
        for (auto it = vocab.begin(); it != vocab.end(); ++it) n = std::max<int64_t>(n, it.value().get<int64_t>() + 1);
        const json added = tok.value("added_tokens", json::array());
        for (const auto& a : added) n = std::max<int64_t>(n, a.at("id").get<int64_t>() + 1);
        if (n <= 0 || n > (1 << 24)) return make_error("'{}': vocabulary size {} is invalid", where, n);
        std::vector<std::string> text(static_cast<size_t>(n));
        std::vector<int64_t> type(static_cast<size_t>(n), kUnknown);  // ids nobody defines stay "unknown"
        std::vector<uint8_t> defined(static_cast<size_t>(n), 0);
        for (auto it = vocab.begin(); it != vocab.end(); ++it) {
            const int64_t id = it.value().get<int64_t>();
            if (id < 0) return make_error("'{}': negative token id for '{}'", where, it.key());
            text[size_t(id)] = it.key();
            type[size_t(id)] = kNormal;
            defined[size_t(id)] = 1;
        }
        std::unordered_map<std::string, int64_t> id_of;
        for (const auto& a : added) {
            const int64_t id = a.at("id").get<int64_t>();
            if (id < 0) return make_error("'{}': negative added-token id", where);
            text[size_t(id)] = a.at("content").get<std::string>();
            type[size_t(id)] = a.value("special", false) ? kControl : kUserDefined;
            defined[size_t(id)] = 1;
        }
        for (int64_t i = 0; i < n; ++i) {
            if (!defined[size_t(i)]) text[size_t(i)] = "[PAD" + std::to_string(i) + "]";
            id_of.emplace(text[size_t(i)], i);
        }

        // Merges: "a b" strings or [a, b] pairs; rank = position.
        std::vector<std::string> merges;
        for (const auto& m : model.value("merges", json::array())) {
            if (m.is_string()) merges.push_back(m.get<std::string>());
            else if (m.is_array() && m.size() == 2) merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
            else return make_error("'{}': malformed merge entry", where);
        }

        const json pre = tok.value("pre_tokenizer", json());
        const bool metaspace = pre.is_object() && pre.value("type", "") == "Metaspace";
        std::vector<gguf::Value> tokens, types;
        for (int64_t i = 0; i < n; ++i) {
            tokens.push_back(str_value(text[size_t(i)]));
            int64_t t = type[size_t(i)];
            const std::string& s = text[size_t(i)];
            if (metaspace && t == kNormal && s.size() == 6 && s.rfind("<0x", 0) == 0 && s[5] == '>') t = kByte;
            types.push_back(gguf::Value{gguf::ValueType::I32, t});
        }
        if (metaspace) {
            // SentencePiece-style BPE: the SPM encoder merges by highest score, so a token made by
            // merge r gets score -r (earlier merges win), single symbols score below every merge.
            std::unordered_map<std::string, int64_t> rank;
            for (size_t r = 0; r < merges.size(); ++r) {
                const size_t sp = merges[r].find(' ');
                if (sp == std::string::npos) continue;
                rank.emplace(merges[r].substr(0, sp) + merges[r].substr(sp + 1), int64_t(r));
            }
            std::vector<gguf::Value> scores;
            for (int64_t i = 0; i < n; ++i) {
                auto it = rank.find(text[size_t(i)]);
                const double s = it != rank.end() ? -double(it->second) : -double(merges.size() + 1);
                scores.push_back(gguf::Value{gguf::ValueType::F32, s});
            }
            kv.emplace_back("tokenizer.ggml.model", str_value("llama"));
            kv.emplace_back("tokenizer.ggml.tokens", array_value(gguf::ValueType::STRING, std::move(tokens)));
            kv.emplace_back("tokenizer.ggml.scores", array_value(gguf::ValueType::F32, std::move(scores)));
            kv.emplace_back("tokenizer.ggml.token_type", array_value(gguf::ValueType::I32, std::move(types)));
            const std::string scheme = pre.value("prepend_scheme", "always");
            kv.emplace_back("tokenizer.ggml.add_space_prefix", bool_value(scheme != "never"));
        } else {
            std::vector<gguf::Value> mv;
            for (auto& m : merges) mv.push_back(str_value(std::move(m)));
            kv.emplace_back("tokenizer.ggml.model", str_value("gpt2"));
            kv.emplace_back("tokenizer.ggml.pre", str_value(pre_tokenizer_name(pre)));
            kv.emplace_back("tokenizer.ggml.tokens", array_value(gguf::ValueType::STRING, std::move(tokens)));
            kv.emplace_back("tokenizer.ggml.token_type", array_value(gguf::ValueType::I32, std::move(types)));
            kv.emplace_back("tokenizer.ggml.merges", array_value(gguf::ValueType::STRING, std::move(mv)));
        }

        auto special = [&](const char* cfg_key, const char* gguf_key) {
            if (!cfg.contains(cfg_key)) return;
            auto it = id_of.find(token_text(cfg[cfg_key]));
            if (it != id_of.end()) kv.emplace_back(gguf_key, u32_value(it->second));
        };
        special("bos_token", "tokenizer.ggml.bos_token_id");
        special("eos_token", "tokenizer.ggml.eos_token_id");
        special("unk_token", "tokenizer.ggml.unknown_token_id");
        special("pad_token", "tokenizer.ggml.padding_token_id");
        const bool add_bos = cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()
                                 ? cfg["add_bos_token"].get<bool>()
                                 : metaspace;  // SentencePiece models add BOS by default
        kv.emplace_back("tokenizer.ggml.add_bos_token", bool_value(add_bos));
        if (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean())
            kv.emplace_back("tokenizer.ggml.add_eos_token", bool_value(cfg["add_eos_token"].get<bool>()));

        // Chat template: tokenizer_config.json (a string, or named templates), or chat_template.jinja.
        std::string tmpl;
        if (cfg.contains("chat_template")) {
            const json& ct = cfg["chat_template"];
            if (ct.is_string()) tmpl = ct.get<std::string>();
            else if (ct.is_array())
                for (const auto& t : ct)
                    if (t.value("name", "") == "default") tmpl = t.value("template", "");
        }
        if (tmpl.empty() && fs::is_regular_file(root / "chat_template.jinja", ec)) {
            auto t = read_input_file((root / "chat_template.jinja").string(), uint64_t(16) << 20);
            if (t) tmpl = std::move(*t);
        }
        if (!tmpl.empty()) kv.emplace_back("tokenizer.chat_template", str_value(std::move(tmpl)));
    } catch (const json::exception& e) {
        return make_error("'{}': unexpected tokenizer layout: {}", where, e.what());
    }
    return {};
}

}  // namespace moe
