// Chat completions and completions: prompt building, submission, and the response (one object
// or SSE chunks as OpenAI streams them). See completions.h.
#include "server/completions.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "server/openai_response.h"
#include "server/reasoning.h"

namespace moe::server {
namespace {

using namespace std::chrono_literals;
constexpr auto kPoll = 100ms;        // how often a waiting handler checks for shutdown
constexpr int kKeepAlivePolls = 20;  // a stream silent for 2 s writes an SSE comment

std::string new_id(const char* prefix) {
    static std::atomic<uint64_t> counter{std::random_device{}()};
    return fmt::format("{}{:016x}", prefix, counter.fetch_add(0x9E3779B97F4A7C15ull));
}

int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

ApiResult<GenRequest> build_request(const ServedModel& m, const GenerationFields& g,
                                    std::vector<int32_t> prompt, const char* prompt_param) {
    if (prompt.empty()) return bad_request(prompt_param, "the prompt has no tokens");
    if (int64_t(prompt.size()) + 1 > m.n_ctx)
        return bad_request(prompt_param,
                           fmt::format("the prompt has {} tokens but the context holds {} (prompt "
                                       "and at least one generated token)",
                                       prompt.size(), m.n_ctx),
                           "context_length_exceeded");
    if (g.max_tokens && *g.max_tokens > m.n_ctx)
        return bad_request(
            "max_tokens",
            fmt::format("max_tokens {} exceeds the context of {} tokens", *g.max_tokens, m.n_ctx));
    GenRequest r;
    r.max_tokens = g.max_tokens.value_or(m.n_ctx - int(prompt.size()));
    r.prompt = std::move(prompt);
    r.sampling = g.sampling;
    if (!g.seed_given) r.sampling.seed = std::random_device{}() * 0x100000001ull;
    r.stop = g.stop;
    r.ignore_eos = g.ignore_eos;
    r.top_logprobs = g.top_logprobs;
    r.routing = g.moe_routing && !m.shape.moe_layers.empty();
    return r;
}

ApiResult<std::shared_ptr<GenStream>> submit(const ServedModel& m, GenRequest r,
                                             const char* prompt_param, const CompletionEnv& env) {
    auto s = m.scheduler->submit(std::move(r));
    if (auto* ok = std::get_if<std::shared_ptr<GenStream>>(&s)) return *ok;
    const auto& refusal = std::get<Scheduler::Refusal>(s);
    if (refusal.kind == Scheduler::SubmitError::Invalid)
        return bad_request(prompt_param, refusal.message);
    if (env.queue_full) ++*env.queue_full;
    ApiError e;
    e.status = 503;
    e.type = "server_error";
    e.code = "queue_full";
    e.message = "the server is busy (request queue full); retry later: " + refusal.message;
    return e;
}

struct Collected {
    std::string text;
    std::vector<TokenEvent> tokens;  // when logprobs were asked for
    GenSummary summary;
};

// Non-stream: waits for the whole generation.
std::optional<Collected> collect(GenStream& s, bool keep_tokens, const CompletionEnv& env) {
    Collected c;
    while (true) {
        GenEvent ev = s.next(kPoll);
        if (auto* t = std::get_if<TokenEvent>(&ev)) {
            c.text += t->text;
            if (keep_tokens) c.tokens.push_back(std::move(*t));
        } else if (auto* sum = std::get_if<GenSummary>(&ev)) {
            c.text += sum->tail;
            c.summary = std::move(*sum);
            return c;
        } else if (env.stopping && env.stopping->load()) {
            s.cancel();
        }
    }
}

std::optional<ApiError> failed(const GenSummary& s) {
    if (s.finish == FinishReason::Error || s.finish == FinishReason::Cancelled) {
        ApiError e;
        e.status = s.finish == FinishReason::Error ? 500 : 503;
        e.type = "server_error";
        e.message = s.finish == FinishReason::Error ? "generation failed: " + s.error
                                                    : "the request was cancelled (server stopping)";
        return e;
    }
    return std::nullopt;
}

Usage usage_of(const GenSummary& s) {
    return Usage{s.n_prompt, s.n_completion, s.n_prompt_cached};
}

// One streaming response; lives until httplib releases the provider.
struct StreamState {
    std::shared_ptr<GenStream> s;
    ResponseMeta meta;
    bool chat = true;
    bool logprobs = false;
    bool include_usage = false;
    bool routing = false;         // moe_routing on an MoE model
    std::vector<int> moe_layers;  // keys of the routing entries
    // Tokens not yet sent (their text was held back, or released nothing): their routing goes
    // with the next chunk, so the entries of all chunks are the generated tokens in order.
    std::vector<TokenEvent> unsent;
    std::optional<ReasoningSplitter> split;  // chat with reasoning split
    bool started = false;
    size_t text_offset = 0;  // completions logprobs
};

json content_delta(const std::string& content, const std::string& reasoning) {
    json d = json::object();
    if (!reasoning.empty()) d["reasoning_content"] = reasoning;
    if (!content.empty()) d["content"] = content;
    return d;
}

// Adds the routing of the tokens not yet sent to a chunk about to go out.
json with_routing(StreamState& st, json chunk) {
    if (!st.routing) return chunk;
    chunk["moe_routing"] = moe_routing_json(st.unsent, st.moe_layers);
    st.unsent.clear();
    return chunk;
}

// The SSE text a token releases ("" when nothing is to be sent).
std::string token_events(StreamState& st, TokenEvent& t) {
    if (st.routing) {
        TokenEvent r;
        r.token = t.token;
        r.routing = std::move(t.routing);
        st.unsent.push_back(std::move(r));
    }
    if (st.chat) {
        ReasoningSplitter::Delta d;
        if (st.split)
            d = st.split->feed(t.text);
        else
            d.content = t.text;
        json delta = content_delta(d.content, d.reasoning);
        json lp = nullptr;
        if (st.logprobs) {
            lp = json{{"content", chat_logprob_content({t})}, {"refusal", nullptr}};
            if (delta.empty()) delta["content"] = "";
        }
        if (delta.empty()) return {};
        return sse_data(
            with_routing(st, chat_chunk(st.meta, delta, lp, std::nullopt, st.include_usage)));
    }
    if (t.text.empty() && !st.logprobs) return {};
    json lp = nullptr;
    if (st.logprobs) lp = completion_logprobs({t}, st.text_offset);
    st.text_offset += t.text.size();
    return sse_data(with_routing(
        st, text_completion(st.meta, t.text, lp, std::nullopt, std::nullopt, st.include_usage)));
}

std::string final_events(StreamState& st, const GenSummary& sum) {
    std::string out;
    if (auto e = failed(sum)) {
        out += "data: " + error_body(*e) + "\n\n";
        return out + kSseDone;
    }
    if (st.chat) {
        ReasoningSplitter::Delta d;
        if (st.split) {
            d = st.split->feed(sum.tail);
            auto rest = st.split->finish();
            d.content += rest.content;
            d.reasoning += rest.reasoning;
        } else {
            d.content = sum.tail;
        }
        json delta = content_delta(d.content, d.reasoning);
        // Tokens still unsent go with the first of the last chunks.
        if (!delta.empty())
            out += sse_data(with_routing(
                st, chat_chunk(st.meta, delta, nullptr, std::nullopt, st.include_usage)));
        out += sse_data(with_routing(
            st, chat_chunk(st.meta, json::object(), nullptr, sum.finish, st.include_usage)));
        if (st.include_usage)
            out += sse_data(usage_chunk(st.meta, "chat.completion.chunk", usage_of(sum)));
    } else {
        out += sse_data(with_routing(st, text_completion(st.meta, sum.tail, nullptr, sum.finish,
                                                         std::nullopt, st.include_usage)));
        if (st.include_usage)
            out += sse_data(usage_chunk(st.meta, "text_completion", usage_of(sum)));
    }
    return out + kSseDone;
}

void stream_response(std::shared_ptr<StreamState> st, const CompletionEnv& env,
                     httplib::Response& res) {
    const std::atomic<bool>* stopping = env.stopping;
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [st, stopping](size_t, httplib::DataSink& sink) {
            auto send = [&](const std::string& s) {
                if (s.empty() || sink.write(s.data(), s.size())) return true;
                st->s->cancel();  // the client went away: free the slot at the next step
                return false;
            };
            if (!st->started) {
                st->started = true;
                if (st->chat &&
                    !send(sse_data(with_routing(
                        *st, chat_chunk(st->meta, {{"role", "assistant"}, {"content", ""}}, nullptr,
                                        std::nullopt, st->include_usage)))))
                    return false;
            }
            int idle_polls = 0;
            while (true) {
                if (stopping && stopping->load()) {
                    st->s->cancel();
                    return false;
                }
                GenEvent ev = st->s->next(kPoll);
                if (std::holds_alternative<std::monostate>(ev)) {
                    // A silent stream (queued, or a long prompt) still writes now and then, so a
                    // client that went away is noticed before its first token. SSE comment
                    // lines are ignored by clients.
                    if (++idle_polls < kKeepAlivePolls) continue;
                    idle_polls = 0;
                    if (!send(": keep-alive\n\n")) return false;
                    continue;
                }
                idle_polls = 0;
                if (auto* t = std::get_if<TokenEvent>(&ev)) {
                    const std::string out = token_events(*st, *t);
                    if (out.empty()) continue;
                    return send(out);
                }
                if (auto* sum = std::get_if<GenSummary>(&ev)) {
                    if (!send(final_events(*st, *sum))) return false;
                    sink.done();
                    return true;
                }
            }
        },
        [st](bool) { st->s->cancel(); });
}

}  // namespace

void send_json(httplib::Response& res, int status, const std::string& body) {
    res.status = status;
    res.set_content(body, "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) {
    send_json(res, e.status, error_body(e));
}

void handle_chat(const ServedModel& m, const ChatRequest& r, const CompletionEnv& env,
                 httplib::Response& res) {
    std::string prompt;
    if (m.renderer.has_template()) {
        auto p = m.renderer.render_template(r.messages, /*add_generation_prompt=*/true,
                                            r.template_kwargs);
        if (!p) return send_error(res, bad_request("messages", "chat template: " + p.message()));
        prompt = std::move(*p);
    } else {
        prompt = render_builtin_chat(m.renderer.fallback(), r.messages, true, m.renderer.options());
    }
    const std::string& bos = m.renderer.options().bos;
    const bool add_bos = bos.empty() || prompt.compare(0, bos.size(), bos) != 0;
    auto gen =
        build_request(m, r, m.tok->encode(prompt, add_bos, /*parse_special=*/true), "messages");
    if (!gen) return send_error(res, gen.error());
    // The texts that end an assistant turn in this chat format stop a model that writes them
    // instead of its end-of-generation token (as `moeinfer chat` does).
    for (auto& st : chat_stop_strings(m.renderer.fallback()))
        if (std::find(gen->stop.begin(), gen->stop.end(), st) == gen->stop.end())
            gen->stop.push_back(std::move(st));
    const bool routing = gen->routing;
    auto stream = submit(m, std::move(*gen), "messages", env);
    if (!stream) return send_error(res, stream.error());

    const bool split = env.reasoning == ReasoningFormat::Split;
    const bool opens = prompt_opens_reasoning(prompt);
    ResponseMeta meta{new_id("chatcmpl-"), m.name, unix_now()};
    if (r.stream) {
        auto st = std::make_shared<StreamState>();
        st->s = std::move(*stream);
        st->meta = std::move(meta);
        st->chat = true;
        st->logprobs = r.top_logprobs >= 0;
        st->include_usage = r.include_usage;
        st->routing = routing;
        st->moe_layers = m.shape.moe_layers;
        if (split) st->split.emplace(opens);
        return stream_response(std::move(st), env, res);
    }
    auto c = collect(**stream, r.top_logprobs >= 0 || routing, env);
    if (auto e = failed(c->summary)) return send_error(res, *e);
    std::optional<std::string> reasoning;
    std::string content = std::move(c->text);
    if (split) {
        ReasoningSplitter sp(opens);
        auto d = sp.feed(content);
        auto rest = sp.finish();
        d.content += rest.content;
        d.reasoning += rest.reasoning;
        if (!d.reasoning.empty()) reasoning = std::move(d.reasoning);
        content = std::move(d.content);
    }
    json lp = nullptr;
    if (r.top_logprobs >= 0)
        lp = json{{"content", chat_logprob_content(c->tokens)}, {"refusal", nullptr}};
    json body =
        chat_completion(meta, content, reasoning, lp, c->summary.finish, usage_of(c->summary));
    if (routing) body["moe_routing"] = moe_routing_json(c->tokens, m.shape.moe_layers);
    send_json(res, 200, dump(body));
}

void handle_completion(const ServedModel& m, const CompletionRequest& r, const CompletionEnv& env,
                       httplib::Response& res) {
    std::vector<int32_t> prompt;
    if (r.prompt_is_tokens) {
        for (size_t i = 0; i < r.prompt_tokens.size(); ++i)
            if (r.prompt_tokens[i] >= m.tok->n_vocab())
                return send_error(res,
                                  bad_request(fmt::format("prompt[{}]", i),
                                              fmt::format("token id {} is out of range (the "
                                                          "vocabulary has {} tokens)",
                                                          r.prompt_tokens[i], m.tok->n_vocab())));
        prompt = r.prompt_tokens;
    } else {
        prompt = m.tok->encode(r.prompt_text, /*add_bos=*/true, /*parse_special=*/false);
    }
    auto gen = build_request(m, r, std::move(prompt), "prompt");
    if (!gen) return send_error(res, gen.error());
    const bool routing = gen->routing;
    auto stream = submit(m, std::move(*gen), "prompt", env);
    if (!stream) return send_error(res, stream.error());
    ResponseMeta meta{new_id("cmpl-"), m.name, unix_now()};
    if (r.stream) {
        auto st = std::make_shared<StreamState>();
        st->s = std::move(*stream);
        st->meta = std::move(meta);
        st->chat = false;
        st->logprobs = r.top_logprobs >= 0;
        st->include_usage = r.include_usage;
        st->routing = routing;
        st->moe_layers = m.shape.moe_layers;
        return stream_response(std::move(st), env, res);
    }
    auto c = collect(**stream, r.top_logprobs >= 0 || routing, env);
    if (auto e = failed(c->summary)) return send_error(res, *e);
    json lp = nullptr;
    if (r.top_logprobs >= 0) lp = completion_logprobs(c->tokens, 0);
    json body = text_completion(meta, c->text, lp, c->summary.finish, usage_of(c->summary), false);
    if (routing) body["moe_routing"] = moe_routing_json(c->tokens, m.shape.moe_layers);
    send_json(res, 200, dump(body));
}

}  // namespace moe::server
