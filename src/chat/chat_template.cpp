#include "chat/chat_template.h"

#include <ctime>

namespace moe {

const char* chat_format_name(ChatFormat f) {
    switch (f) {
        case ChatFormat::Plain: return "plain";
        case ChatFormat::ChatML: return "chatml";
        case ChatFormat::Mistral: return "mistral";
        case ChatFormat::Llama3: return "llama3";
        case ChatFormat::DeepSeek2: return "deepseek2";
        case ChatFormat::DeepSeek3: return "deepseek3";
        case ChatFormat::OLMoE: return "olmoe";
        case ChatFormat::Harmony: return "harmony";
    }
    return "?";
}

namespace {

std::string trim(const std::string& s) {
    size_t a = 0, b = s.size();
    while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
    while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
    return s.substr(a, b - a);
}

std::string today() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[32];
    return std::string(buf, std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm));
}

// Mixtral-8x7B-Instruct / Mistral v1: optional system message prepended to the first user turn.
std::string mistral(const std::vector<ChatMessage>& m, const ChatFormatOptions& o) {
    std::string out = o.bos, system;
    size_t start = 0;
    if (!m.empty() && m[0].role == "system") {
        system = m[0].content;
        start = 1;
    }
    bool first_user = true;
    for (size_t k = start; k < m.size(); ++k) {
        if (m[k].role == "user") {
            out += " [INST] ";
            if (first_user && start == 1 && k == start) out += system + "\n\n";
            out += m[k].content + " [/INST]";
            first_user = false;
        } else if (m[k].role == "assistant") {
            out += " " + m[k].content + o.eos;
        }
    }
    return out;
}

std::string chatml(const std::vector<ChatMessage>& m, bool gen, const ChatFormatOptions& o) {
    std::string out;
    if (o.qwen_default_system && (m.empty() || m[0].role != "system"))
        out += "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n";
    for (const auto& x : m) out += "<|im_start|>" + x.role + "\n" + x.content + "<|im_end|>\n";
    if (gen) out += "<|im_start|>assistant\n";
    return out;
}

std::string llama3(const std::vector<ChatMessage>& m, bool gen, const ChatFormatOptions& o) {
    std::string out = o.bos;
    for (const auto& x : m)
        out += "<|start_header_id|>" + x.role + "<|end_header_id|>\n\n" + trim(x.content) + "<|eot_id|>";
    if (gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
    return out;
}

std::string deepseek2(const std::vector<ChatMessage>& m, bool gen, const ChatFormatOptions& o) {
    std::string out = o.bos;
    for (const auto& x : m) {
        if (x.role == "user") out += "User: " + x.content + "\n\n";
        else if (x.role == "assistant") out += "Assistant: " + x.content + o.eos;
        else if (x.role == "system") out += x.content + "\n\n";
    }
    if (gen) out += "Assistant:";
    return out;
}

std::string deepseek3(const std::vector<ChatMessage>& m, bool gen, const ChatFormatOptions& o) {
    std::string system;
    bool first = true;
    for (const auto& x : m) {
        if (x.role != "system") continue;
        if (!first) system += "\n\n";
        system += x.content;
        first = false;
    }
    std::string out = o.bos + system;
    const std::string eos = o.eos.empty() ? "<｜end▁of▁sentence｜>" : o.eos;
    for (const auto& x : m) {
        if (x.role == "user") out += "<｜User｜>" + x.content;
        else if (x.role == "assistant") out += "<｜Assistant｜>" + x.content + eos;
    }
    if (gen) out += "<｜Assistant｜>";
    return out;
}

std::string olmoe(const std::vector<ChatMessage>& m, bool gen, const ChatFormatOptions& o) {
    std::string out = o.bos;
    for (size_t k = 0; k < m.size(); ++k) {
        const auto& x = m[k];
        const bool last = k + 1 == m.size();
        if (x.role == "system") out += "<|system|>\n" + x.content + "\n";
        else if (x.role == "user") out += "<|user|>\n" + x.content + "\n";
        else if (x.role == "assistant") out += "<|assistant|>\n" + x.content + o.eos + (last ? "" : "\n");
        if (last && gen) out += "<|assistant|>\n";
    }
    return out;
}

std::string harmony(const std::vector<ChatMessage>& m, bool gen, const ChatFormatOptions& o) {
    std::string out = "<|start|>system<|message|>You are ChatGPT, a large language model trained by "
                      "OpenAI.\nKnowledge cutoff: 2024-06\nCurrent date: " +
                      (o.date.empty() ? today() : o.date) +
                      "\n\nReasoning: medium\n\n# Valid channels: analysis, commentary, final. "
                      "Channel must be included for every message.<|end|>";
    size_t start = 0;
    if (!m.empty() && (m[0].role == "system" || m[0].role == "developer")) {
        start = 1;
        if (!m[0].content.empty())
            out += "<|start|>developer<|message|># Instructions\n\n" + m[0].content + "\n\n<|end|>";
    }
    for (size_t k = start; k < m.size(); ++k) {
        const auto& x = m[k];
        const bool last = k + 1 == m.size();
        if (x.role == "user") {
            out += "<|start|>user<|message|>" + x.content + "<|end|>";
        } else if (x.role == "assistant") {
            out += "<|start|>assistant<|channel|>final<|message|>" + x.content +
                   (last && !gen ? "<|return|>" : "<|end|>");
        }
    }
    if (gen) out += "<|start|>assistant";
    return out;
}

std::string plain(const std::vector<ChatMessage>& m, bool gen) {
    std::string out;
    for (const auto& x : m) {
        if (x.role == "user") out += "User: " + x.content + "\n";
        else if (x.role == "assistant") out += "Assistant: " + x.content + "\n";
        else out += x.content + "\n\n";
    }
    if (gen) out += "Assistant:";
    return out;
}

std::string token_text(const ModelSource& src, const char* id_key) {
    const auto id = src.get_int(id_key);
    const gguf::Array* toks = src.get_array("tokenizer.ggml.tokens");
    if (!id || !toks || *id < 0 || size_t(*id) >= toks->items.size()) return "";
    const std::string* s = toks->items[size_t(*id)].as_string();
    return s ? *s : "";
}

bool has_token(const ModelSource& src, const std::string& text) {
    const gguf::Array* toks = src.get_array("tokenizer.ggml.tokens");
    if (!toks) return false;
    for (const auto& v : toks->items)
        if (const std::string* s = v.as_string(); s && *s == text) return true;
    return false;
}

}  // namespace

std::string render_builtin_chat(ChatFormat f, const std::vector<ChatMessage>& msgs,
                                bool gen, const ChatFormatOptions& opt) {
    switch (f) {
        case ChatFormat::Plain: return plain(msgs, gen);
        case ChatFormat::ChatML: return chatml(msgs, gen, opt);
        case ChatFormat::Mistral: return mistral(msgs, opt);
        case ChatFormat::Llama3: return llama3(msgs, gen, opt);
        case ChatFormat::DeepSeek2: return deepseek2(msgs, gen, opt);
        case ChatFormat::DeepSeek3: return deepseek3(msgs, gen, opt);
        case ChatFormat::OLMoE: return olmoe(msgs, gen, opt);
        case ChatFormat::Harmony: return harmony(msgs, gen, opt);
    }
    return plain(msgs, gen);
}

std::vector<std::string> chat_stop_strings(ChatFormat f) {
    switch (f) {
        case ChatFormat::Plain: return {"\nUser:"};
        case ChatFormat::ChatML: return {"<|im_end|>", "<|im_start|>"};
        case ChatFormat::Mistral: return {"[INST]"};
        case ChatFormat::Llama3: return {"<|eot_id|>", "<|start_header_id|>"};
        case ChatFormat::DeepSeek2: return {"\n\nUser:"};
        case ChatFormat::DeepSeek3: return {"<｜User｜>", "<｜end▁of▁sentence｜>"};
        case ChatFormat::OLMoE: return {"<|user|>", "<|endoftext|>"};
        case ChatFormat::Harmony: return {"<|return|>", "<|end|>", "<|start|>"};
    }
    return {};
}

ChatFormat detect_chat_format(const ModelSource& src) {
    const std::string arch = src.architecture();
    if (arch == "gpt-oss") return ChatFormat::Harmony;
    if (arch == "olmoe") return ChatFormat::OLMoE;
    if (arch == "deepseek2") {
        const std::string pre = src.get_string("tokenizer.ggml.pre").value_or("");
        return pre == "deepseek-v3" || has_token(src, "<｜User｜>") ? ChatFormat::DeepSeek3
                                                                     : ChatFormat::DeepSeek2;
    }
    if (arch.rfind("qwen", 0) == 0) return ChatFormat::ChatML;
    if (arch == "llama") {
        if (has_token(src, "<|start_header_id|>")) return ChatFormat::Llama3;
        if (has_token(src, "<|im_start|>")) return ChatFormat::ChatML;
        const bool spm = src.get_string("tokenizer.ggml.model").value_or("") == "llama";
        if (spm && src.get_int("llama.expert_count").value_or(0) > 0) return ChatFormat::Mistral;
    }
    return ChatFormat::Plain;
}

std::optional<ChatFormat> chat_format_from_template(const std::string& t) {
    auto has = [&](const char* s) { return t.find(s) != std::string::npos; };
    if (has("<|start|>") && has("<|message|>")) return ChatFormat::Harmony;
    if (has("<|im_start|>")) return ChatFormat::ChatML;
    if (has("<|start_header_id|>")) return ChatFormat::Llama3;
    if (has("<｜User｜>")) return ChatFormat::DeepSeek3;
    if (has("[INST]")) return ChatFormat::Mistral;
    if (has("<|user|>") && has("<|assistant|>")) return ChatFormat::OLMoE;
    if (has("'User: '") && has("Assistant:")) return ChatFormat::DeepSeek2;
    return std::nullopt;
}

ChatRenderer ChatRenderer::from_template(const std::string& text, ChatFormat fallback,
                                         ChatFormatOptions opt) {
    ChatRenderer r;
    r.fallback_ = fallback;
    r.opt_ = std::move(opt);
    if (!text.empty()) {
        auto t = jinja::Template::parse(text);
        if (t) r.tmpl_ = std::move(*t);
        else r.warning_ = t.message();
        if (auto f = chat_format_from_template(text)) r.fallback_ = *f;
    }
    return r;
}

ChatRenderer ChatRenderer::from_source(const ModelSource& src) {
    ChatFormatOptions opt;
    opt.bos = token_text(src, "tokenizer.ggml.bos_token_id");
    opt.eos = token_text(src, "tokenizer.ggml.eos_token_id");
    const std::string arch = src.architecture();
    opt.qwen_default_system = arch == "qwen2moe" || arch == "qwen2";
    ChatRenderer r = from_template(src.get_string("tokenizer.chat_template").value_or(""),
                                   detect_chat_format(src), opt);
    if (!r.has_template() && r.warning_.empty()) r.fallback_ = detect_chat_format(src);
    return r;
}

Result<std::string> ChatRenderer::render_template(const std::vector<ChatMessage>& msgs, bool gen,
                                                  const nlohmann::ordered_json& kwargs) const {
    if (!tmpl_) return make_error("{}", warning_.empty() ? "no chat template" : warning_);
    jinja::Value ctx = jinja::Value::object();
    if (kwargs.is_object())
        for (const auto& [k, v] : kwargs.items()) ctx.set(k, jinja::from_json(v));
    jinja::Array arr;
    for (const auto& m : msgs) {
        jinja::Value o = jinja::Value::object();
        o.set("role", m.role);
        o.set("content", m.content);
        arr.push_back(o);
    }
    ctx.set("messages", jinja::Value(std::move(arr)));
    ctx.set("add_generation_prompt", gen);
    ctx.set("bos_token", opt_.bos);
    ctx.set("eos_token", opt_.eos);
    return tmpl_->render(ctx);
}

std::string ChatRenderer::render(const std::vector<ChatMessage>& msgs, bool gen) const {
    if (tmpl_) {
        auto r = render_template(msgs, gen);
        if (r) {
            warning_.clear();
            return *r;
        }
        warning_ = r.message();
    }
    return render_builtin_chat(fallback_, msgs, gen, opt_);
}

std::string ChatRenderer::describe() const {
    if (tmpl_) return std::string("the model's chat template (built-in fallback: ") +
                      chat_format_name(fallback_) + ")";
    return std::string("built-in '") + chat_format_name(fallback_) + "' format";
}

Result<std::string> render_chat(const ModelSource& src, const std::vector<ChatMessage>& msgs,
                                bool gen) {
    if (msgs.empty()) return make_error("render_chat: no messages");
    ChatRenderer r = ChatRenderer::from_source(src);
    return r.render(msgs, gen);
}

}  // namespace moe
