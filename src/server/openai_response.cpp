// OpenAI response shapes; see openai_response.h.
#include "server/openai_response.h"

namespace moe::server {
namespace {

json bytes_of(const std::string& s) {
    json b = json::array();
    for (unsigned char c : s) b.push_back(int(c));
    return b;
}

json base(const ResponseMeta& m, const char* object) {
    return json{{"id", m.id},
                {"object", object},
                {"created", m.created},
                {"model", m.model},
                {"system_fingerprint", "moeinfer"}};
}

}  // namespace

std::string dump(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string sse_data(const json& j) {
    return "data: " + dump(j) + "\n\n";
}

const char* finish_reason_text(FinishReason f) {
    return f == FinishReason::Length ? "length" : "stop";
}

json usage_json(const Usage& u) {
    return json{{"prompt_tokens", u.prompt},
                {"completion_tokens", u.completion},
                {"total_tokens", u.prompt + u.completion},
                {"prompt_tokens_details", {{"cached_tokens", u.cached}}}};
}

json chat_logprob_content(const std::vector<TokenEvent>& tokens) {
    json content = json::array();
    for (const auto& t : tokens) {
        if (!t.logprob) continue;
        json top = json::array();
        for (const auto& a : t.top)
            top.push_back({{"token", a.text}, {"logprob", a.logprob}, {"bytes", bytes_of(a.text)}});
        content.push_back({{"token", t.logprob->text},
                           {"logprob", t.logprob->logprob},
                           {"bytes", bytes_of(t.logprob->text)},
                           {"top_logprobs", std::move(top)}});
    }
    return content;
}

json chat_completion(const ResponseMeta& m, const std::string& content,
                     const std::optional<std::string>& reasoning, const json& logprobs,
                     FinishReason finish, const Usage& u) {
    json msg = {{"role", "assistant"}, {"content", content}};
    if (reasoning) msg["reasoning_content"] = *reasoning;
    msg["refusal"] = nullptr;
    json j = base(m, "chat.completion");
    j["choices"] = json::array({json{{"index", 0},
                                     {"message", std::move(msg)},
                                     {"logprobs", logprobs},
                                     {"finish_reason", finish_reason_text(finish)}}});
    j["usage"] = usage_json(u);
    return j;
}

json chat_chunk(const ResponseMeta& m, const json& delta, const json& logprobs,
                std::optional<FinishReason> finish, bool with_usage) {
    json j = base(m, "chat.completion.chunk");
    json choice = {
        {"index", 0}, {"delta", delta}, {"logprobs", logprobs}, {"finish_reason", nullptr}};
    if (finish) choice["finish_reason"] = finish_reason_text(*finish);
    j["choices"] = json::array({std::move(choice)});
    if (with_usage) j["usage"] = nullptr;
    return j;
}

json usage_chunk(const ResponseMeta& m, const char* object, const Usage& u) {
    json j = base(m, object);
    j["choices"] = json::array();
    j["usage"] = usage_json(u);
    return j;
}

json completion_logprobs(const std::vector<TokenEvent>& tokens, size_t text_offset0) {
    json toks = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
    size_t off = text_offset0;
    for (const auto& t : tokens) {
        if (!t.logprob) continue;
        toks.push_back(t.logprob->text);
        lps.push_back(t.logprob->logprob);
        json top = json::object();
        for (const auto& a : t.top) top[a.text] = a.logprob;
        tops.push_back(std::move(top));
        offs.push_back(off);
        off += t.text.size();
    }
    return json{{"tokens", std::move(toks)},
                {"token_logprobs", std::move(lps)},
                {"top_logprobs", std::move(tops)},
                {"text_offset", std::move(offs)}};
}

json text_completion(const ResponseMeta& m, const std::string& text, const json& logprobs,
                     std::optional<FinishReason> finish, const std::optional<Usage>& u,
                     bool with_usage_null) {
    json j = base(m, "text_completion");
    json choice = {
        {"text", text}, {"index", 0}, {"logprobs", logprobs}, {"finish_reason", nullptr}};
    if (finish) choice["finish_reason"] = finish_reason_text(*finish);
    j["choices"] = json::array({std::move(choice)});
    if (u)
        j["usage"] = usage_json(*u);
    else if (with_usage_null)
        j["usage"] = nullptr;
    return j;
}

json moe_routing_json(const std::vector<TokenEvent>& tokens, const std::vector<int>& moe_layers) {
    json out = json::array();
    for (const auto& t : tokens) {
        json layers = json::object();
        for (size_t l = 0; l < t.routing.size(); ++l) {
            json experts = json::array();
            for (const auto& [e, w] : t.routing[l]) experts.push_back(json::array({e, w}));
            const int layer = l < moe_layers.size() ? moe_layers[l] : int(l);
            layers[std::to_string(layer)] = std::move(experts);
        }
        out.push_back(json{{"token", t.token}, {"layers", std::move(layers)}});
    }
    return out;
}

}  // namespace moe::server
