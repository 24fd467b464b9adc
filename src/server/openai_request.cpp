// Request validation for the OpenAI endpoints (field names, types and ranges as OpenAI documents
// them; sampling ranges from SamplerParams::validate, the one check of sampling values).
#include "server/openai_request.h"

#include <fmt/format.h>

#include <cmath>

namespace moe::server {
namespace {

using json = nlohmann::ordered_json;

ApiResult<json> parse_object(std::string_view body) {
    json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded())
        return bad_request("", "could not parse the JSON body of the request", "invalid_json");
    if (!j.is_object()) return bad_request("", "the request body must be a JSON object");
    return j;
}

const char* type_name(const json& v) {
    switch (v.type()) {
        case json::value_t::null:
            return "null";
        case json::value_t::boolean:
            return "boolean";
        case json::value_t::string:
            return "string";
        case json::value_t::array:
            return "array";
        case json::value_t::object:
            return "object";
        case json::value_t::number_float:
            return "number";
        default:
            return "integer";
    }
}

ApiError wrong_type(const std::string& param, const char* want, const json& got) {
    return bad_request(param, fmt::format("{} must be {}, got {}", param, want, type_name(got)));
}

// Optional typed fields of one JSON object; the first problem is kept. Null counts as absent.
class Fields {
  public:
    explicit Fields(const json& j) : j_(j) {}

    const json* get(const char* key) const {
        auto it = j_.find(key);
        return it == j_.end() || it->is_null() ? nullptr : &*it;
    }
    bool boolean(const char* key, bool& out) {
        const json* v = get(key);
        if (!v) return false;
        if (!v->is_boolean()) return fail(wrong_type(key, "a boolean", *v));
        out = v->get<bool>();
        return true;
    }
    bool string(const char* key, std::string& out) {
        const json* v = get(key);
        if (!v) return false;
        if (!v->is_string()) return fail(wrong_type(key, "a string", *v));
        out = v->get<std::string>();
        return true;
    }
    bool integer(const char* key, int64_t& out, int64_t lo, int64_t hi) {
        const json* v = get(key);
        if (!v) return false;
        int64_t x = 0;
        if (v->is_number_unsigned()) {
            const uint64_t u = v->get<uint64_t>();
            x = u > uint64_t(INT64_MAX) ? INT64_MAX : int64_t(u);
        } else if (v->is_number_integer()) {
            x = v->get<int64_t>();
        } else if (v->is_number_float() && std::isfinite(v->get<double>()) &&
                   v->get<double>() == std::floor(v->get<double>()) &&
                   std::fabs(v->get<double>()) < 9e15) {
            x = int64_t(v->get<double>());  // 16.0 is an integer in JSON's number model
        } else {
            return fail(wrong_type(key, "an integer", *v));
        }
        if (x < lo || x > hi)
            return fail(
                bad_request(key, fmt::format("{} must be in [{}, {}], got {}", key, lo, hi, x)));
        out = x;
        return true;
    }
    bool number(const char* key, float& out) {
        const json* v = get(key);
        if (!v) return false;
        if (!v->is_number()) return fail(wrong_type(key, "a number", *v));
        out = float(v->get<double>());
        return true;
    }
    bool fail(ApiError e) {
        if (!err_) err_ = std::move(e);
        return false;
    }
    const std::optional<ApiError>& error() const { return err_; }

  private:
    const json& j_;
    std::optional<ApiError> err_;
};

// Sampling, limits, stop, logprobs (chat form: logprobs bool + top_logprobs) and streaming.
void parse_generation(const json& j, Fields& f, GenerationFields& g, bool chat) {
    f.string("model", g.model);
    // OpenAI's defaults: plain softmax sampling at temperature 1.
    g.sampling.temp = 1.0f;
    g.sampling.top_p = 1.0f;
    g.sampling.top_k = 0;
    g.sampling.min_p = 0.0f;
    g.sampling.repeat_penalty = 1.0f;
    int64_t v = 0;
    const char* max_key =
        chat && f.get("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if (f.integer(max_key, v, 1, kMaxTokensLimit)) g.max_tokens = int(v);
    f.number("temperature", g.sampling.temp);
    f.number("top_p", g.sampling.top_p);
    f.number("min_p", g.sampling.min_p);
    f.number("repeat_penalty", g.sampling.repeat_penalty);
    f.number("presence_penalty", g.sampling.presence_penalty);
    f.number("frequency_penalty", g.sampling.frequency_penalty);
    if (f.integer("top_k", v, 0, 1 << 30)) g.sampling.top_k = int(v);
    if (f.integer("seed", v, INT64_MIN, INT64_MAX)) {
        g.sampling.seed = uint64_t(v);
        g.seed_given = true;
    }
    if (f.integer("n", v, INT64_MIN, INT64_MAX) && v != 1)
        f.fail(bad_request("n", fmt::format("n must be 1 (one choice per request), got {}", v)));

    if (const json* s = f.get("stop")) {
        std::vector<std::string> stops;
        if (s->is_string()) {
            stops.push_back(s->get<std::string>());
        } else if (s->is_array()) {
            for (size_t i = 0; i < s->size(); ++i) {
                if (!(*s)[i].is_string())
                    f.fail(wrong_type(fmt::format("stop[{}]", i), "a string", (*s)[i]));
                else
                    stops.push_back((*s)[i].get<std::string>());
            }
        } else {
            f.fail(wrong_type("stop", "a string or an array of strings", *s));
        }
        if (stops.size() > kMaxStopStrings)
            f.fail(bad_request("stop", fmt::format("stop has {} strings, at most {} allowed",
                                                   stops.size(), kMaxStopStrings)));
        for (const auto& st : stops)
            if (st.empty()) f.fail(bad_request("stop", "stop strings must not be empty"));
        g.stop = std::move(stops);
    }

    if (chat) {
        bool lp = false;
        f.boolean("logprobs", lp);
        if (f.integer("top_logprobs", v, 0, kMaxTopLogprobs)) {
            if (!lp) f.fail(bad_request("top_logprobs", "top_logprobs requires logprobs: true"));
            g.top_logprobs = int(v);
        } else if (lp) {
            g.top_logprobs = 0;
        }
    } else if (f.integer("logprobs", v, 0, kMaxTopLogprobs)) {
        g.top_logprobs = int(v);
    }

    f.boolean("ignore_eos", g.ignore_eos);
    f.boolean("stream", g.stream);
    f.boolean("moe_routing", g.moe_routing);
    if (const json* so = f.get("stream_options")) {
        if (!so->is_object()) {
            f.fail(wrong_type("stream_options", "an object", *so));
        } else if (!g.stream) {
            f.fail(bad_request("stream_options",
                               "stream_options is only allowed when stream is true"));
        } else if (auto it = so->find("include_usage"); it != so->end() && !it->is_null()) {
            if (!it->is_boolean())
                f.fail(wrong_type("stream_options.include_usage", "a boolean", *it));
            else
                g.include_usage = it->get<bool>();
        }
    }
    if (auto r = g.sampling.validate(); !r) {
        // validate() names the field first ("top_p must be ...").
        const std::string& m = r.message();
        f.fail(bad_request(m.substr(0, m.find(' ')), m));
    }
    (void)j;
}

bool known_role(const std::string& r) {
    return r == "system" || r == "user" || r == "assistant" || r == "developer" || r == "tool";
}

// "content": a string, or an array of {"type": "text", "text": ...} parts (joined).
std::optional<std::string> message_content(const json& c, const std::string& param, Fields& f) {
    if (c.is_string()) return c.get<std::string>();
    if (!c.is_array()) {
        f.fail(wrong_type(param, "a string or an array of content parts", c));
        return std::nullopt;
    }
    std::string out;
    for (size_t i = 0; i < c.size(); ++i) {
        const json& p = c[i];
        const std::string pp = fmt::format("{}[{}]", param, i);
        if (!p.is_object()) {
            f.fail(wrong_type(pp, "an object", p));
            return std::nullopt;
        }
        auto type = p.find("type");
        if (type == p.end() || !type->is_string() || *type != "text") {
            f.fail(bad_request(pp + ".type", "only content parts of type 'text' are supported"));
            return std::nullopt;
        }
        auto text = p.find("text");
        if (text == p.end() || !text->is_string()) {
            f.fail(bad_request(pp + ".text", pp + ".text must be a string"));
            return std::nullopt;
        }
        out += text->get<std::string>();
    }
    return out;
}

}  // namespace

ApiError bad_request(std::string param, std::string message, std::string code) {
    ApiError e;
    e.status = 400;
    e.param = std::move(param);
    e.message = std::move(message);
    e.code = std::move(code);
    return e;
}

std::string error_body(const ApiError& e) {
    json err = {{"message", e.message}, {"type", e.type}, {"param", nullptr}, {"code", nullptr}};
    if (!e.param.empty()) err["param"] = e.param;
    if (!e.code.empty()) err["code"] = e.code;
    return json{{"error", err}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

ApiResult<ChatRequest> parse_chat_request(std::string_view body) {
    auto j = parse_object(body);
    if (!j) return j.error();
    Fields f(*j);
    ChatRequest r;
    parse_generation(*j, f, r, /*chat=*/true);
    const json* msgs = f.get("messages");
    if (!msgs) {
        f.fail(bad_request("messages", "messages is required"));
    } else if (!msgs->is_array()) {
        f.fail(wrong_type("messages", "an array", *msgs));
    } else if (msgs->empty()) {
        f.fail(bad_request("messages", "messages must not be empty"));
    } else {
        for (size_t i = 0; i < msgs->size() && !f.error(); ++i) {
            const json& m = (*msgs)[i];
            const std::string p = fmt::format("messages[{}]", i);
            if (!m.is_object()) {
                f.fail(wrong_type(p, "an object", m));
                break;
            }
            ChatMessage cm;
            auto role = m.find("role");
            if (role == m.end() || !role->is_string()) {
                f.fail(bad_request(p + ".role", p + ".role must be a string"));
                break;
            }
            cm.role = role->get<std::string>();
            if (!known_role(cm.role)) {
                f.fail(
                    bad_request(p + ".role", fmt::format("{}.role '{}' is not one of system, user, "
                                                         "assistant, developer, tool",
                                                         p, cm.role)));
                break;
            }
            auto content = m.find("content");
            if (content == m.end() || content->is_null()) {
                if (cm.role != "assistant") {
                    f.fail(bad_request(p + ".content", p + ".content is required"));
                    break;
                }
            } else if (auto c = message_content(*content, p + ".content", f)) {
                cm.content = std::move(*c);
            } else {
                break;
            }
            r.messages.push_back(std::move(cm));
        }
    }
    if (const json* k = f.get("chat_template_kwargs")) {
        if (!k->is_object())
            f.fail(wrong_type("chat_template_kwargs", "an object", *k));
        else
            r.template_kwargs = *k;
    }
    if (f.error()) return *f.error();
    return r;
}

ApiResult<CompletionRequest> parse_completion_request(std::string_view body) {
    auto j = parse_object(body);
    if (!j) return j.error();
    Fields f(*j);
    CompletionRequest r;
    parse_generation(*j, f, r, /*chat=*/false);
    bool echo = false;
    if (f.boolean("echo", echo) && echo) f.fail(bad_request("echo", "echo is not supported"));
    const json* p = f.get("prompt");
    if (!p) {
        f.fail(bad_request("prompt", "prompt is required"));
    } else if (p->is_string()) {
        r.prompt_text = p->get<std::string>();
    } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
        r.prompt_text = (*p)[0].get<std::string>();
    } else if (p->is_array() && !p->empty() && (*p)[0].is_number()) {
        r.prompt_is_tokens = true;
        for (size_t i = 0; i < p->size(); ++i) {
            const json& t = (*p)[i];
            if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX) {
                f.fail(
                    bad_request(fmt::format("prompt[{}]", i),
                                fmt::format("prompt[{}] must be a token id (an integer >= 0)", i)));
                break;
            }
            r.prompt_tokens.push_back(int32_t(t.get<int64_t>()));
        }
    } else if (p->is_array() && p->empty()) {
        f.fail(bad_request("prompt", "prompt must not be empty"));
    } else {
        f.fail(bad_request("prompt",
                           "prompt must be a string, an array of one string or an array of "
                           "token ids (one prompt per request)"));
    }
    if (f.error()) return *f.error();
    return r;
}

ApiResult<TokenizeRequest> parse_tokenize_request(std::string_view body) {
    auto j = parse_object(body);
    if (!j) return j.error();
    Fields f(*j);
    TokenizeRequest r;
    f.string("model", r.model);
    if (!f.string("content", r.content) && !f.error())
        f.fail(bad_request("content", "content is required"));
    f.boolean("add_special", r.add_special);
    f.boolean("parse_special", r.parse_special);
    if (f.error()) return *f.error();
    return r;
}

ApiResult<DetokenizeRequest> parse_detokenize_request(std::string_view body) {
    auto j = parse_object(body);
    if (!j) return j.error();
    Fields f(*j);
    DetokenizeRequest r;
    f.string("model", r.model);
    const json* t = f.get("tokens");
    if (!t) {
        f.fail(bad_request("tokens", "tokens is required"));
    } else if (!t->is_array()) {
        f.fail(wrong_type("tokens", "an array of token ids", *t));
    } else {
        for (size_t i = 0; i < t->size(); ++i) {
            const json& x = (*t)[i];
            if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX) {
                f.fail(bad_request(fmt::format("tokens[{}]", i),
                                   fmt::format("tokens[{}] must be a token id", i)));
                break;
            }
            r.tokens.push_back(int32_t(x.get<int64_t>()));
        }
    }
    if (f.error()) return *f.error();
    return r;
}

}  // namespace moe::server
