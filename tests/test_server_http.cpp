// The HTTP layer in process, over a scripted Scheduler (defined here, tests only): routes, auth,
// limits, OpenAI shapes on the wire, SSE, cancellation and stalled clients. The real scheduler
// behind the real binary is exercised by test_server_e2e.cpp and tests/api.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "formats/model_source.h"
#include "raw_socket.h"
#include "server/server.h"

namespace moe::server {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using moe::test::connect_raw;

// Replies with the prompt's tokens again, one per `delay`, as if decoding.
class ScriptedStream : public GenStream {
  public:
    ScriptedStream(GenRequest r, const Tokenizer& tok, std::atomic<int>& active,
                   std::chrono::milliseconds delay, std::vector<std::string> script)
        : r_(std::move(r)), tok_(tok), active_(active), delay_(delay), script_(std::move(script)) {
        ++active_;
    }
    // Like the real scheduler, dropping the stream does not end the request: only cancel() or
    // the end of generation frees its "pages".

    GenEvent next(std::chrono::milliseconds timeout) override {
        if (done_) {
            std::this_thread::sleep_for(std::min(timeout, 10ms));
            return std::monostate{};
        }
        // Honours `timeout` like the real stream: a slow token arrives after several polls.
        const auto wait = std::min(timeout, delay_ - waited_);
        std::this_thread::sleep_for(wait);
        waited_ += wait;
        if (!cancelled_.load() && waited_ < delay_) return std::monostate{};
        waited_ = std::chrono::milliseconds(0);
        if (cancelled_.load() || i_ >= r_.max_tokens) {
            GenSummary s;
            s.finish = cancelled_.load() ? FinishReason::Cancelled
                       : script_.empty() ? FinishReason::Length
                                         : FinishReason::Stop;
            s.n_prompt = int(r_.prompt.size());
            s.n_completion = i_;
            done_ = true;
            release();
            return s;
        }
        TokenEvent t;
        t.token = r_.prompt[size_t(i_) % r_.prompt.size()];
        t.text = tok_.decode_token(t.token);
        if (!script_.empty()) {
            if (size_t(i_) >= script_.size()) {
                i_ = r_.max_tokens;  // the script is over: end as if by end-of-generation
                return next(timeout);
            }
            t.text = script_[size_t(i_)];
        }
        if (r_.top_logprobs >= 0) {
            t.logprob = TokenLogprob{t.token, t.text, -0.5f};
            for (int k = 0; k < r_.top_logprobs; ++k)
                t.top.push_back({k, "x" + std::to_string(k), -1.0f - float(k)});
        }
        ++i_;
        return t;
    }
    void cancel() override {
        cancelled_.store(true);
        release();
    }

  private:
    void release() {
        if (!released_.exchange(true)) --active_;
    }
    GenRequest r_;
    const Tokenizer& tok_;
    std::atomic<int>& active_;
    std::chrono::milliseconds delay_, waited_{0};
    std::vector<std::string> script_;  // texts to release instead of echoing the prompt
    int i_ = 0;
    bool done_ = false;
    std::atomic<bool> cancelled_{false}, released_{false};
};

class ScriptedScheduler : public Scheduler {
  public:
    explicit ScriptedScheduler(const Tokenizer& tok) : tok_(tok) {}
    std::variant<std::shared_ptr<GenStream>, Refusal> submit(GenRequest r) override {
        if (refuse_full) return Refusal{SubmitError::QueueFull, "64 requests waiting"};
        ++submitted;
        std::lock_guard<std::mutex> lock(mu_);
        last_prompt_ = r.prompt;
        last_stop_ = r.stop;
        last_ignore_eos_ = r.ignore_eos;
        return std::make_shared<ScriptedStream>(std::move(r), tok_, active, delay_, script_);
    }
    SchedulerMetrics metrics() const override {
        SchedulerMetrics m;
        m.requests_total = submitted.load();
        m.kv_pages_total = 100;
        m.kv_pages_used = 2 * active.load();  // two pages per open request
        m.running = active.load();
        return m;
    }
    const SchedulerOptions& options() const override { return opt_; }

    std::atomic<int> active{0}, submitted{0};
    std::atomic<bool> refuse_full{false};
    // Set by tests while the server runs: the HTTP threads read them under mu_.
    void set_delay(std::chrono::milliseconds d) {
        std::lock_guard<std::mutex> lock(mu_);
        delay_ = d;
    }
    void set_script(std::vector<std::string> s) {
        std::lock_guard<std::mutex> lock(mu_);
        script_ = std::move(s);
    }
    std::vector<int32_t> last_prompt() {
        std::lock_guard<std::mutex> lock(mu_);
        return last_prompt_;
    }
    std::vector<std::string> last_stop() {
        std::lock_guard<std::mutex> lock(mu_);
        return last_stop_;
    }
    bool last_ignore_eos() {
        std::lock_guard<std::mutex> lock(mu_);
        return last_ignore_eos_;
    }

  private:
    std::mutex mu_;
    std::chrono::milliseconds delay_{1ms};
    std::vector<std::string> script_;
    std::vector<int32_t> last_prompt_;
    std::vector<std::string> last_stop_;
    bool last_ignore_eos_ = false;
    const Tokenizer& tok_;
    SchedulerOptions opt_;
};

struct Fixture {
    std::shared_ptr<ModelSource> src;
    std::unique_ptr<Tokenizer> tok;
    std::vector<std::unique_ptr<ScriptedScheduler>> scheds;
    std::unique_ptr<Server> server;
    std::thread thread;
    int port = 0;

    explicit Fixture(ServerOptions opt, std::vector<std::string> names = {"demo-moe"},
                     bool ready = true) {
        auto s = open_model_source(std::string(MOE_SOURCE_DIR) + "/models/demo-moe.gguf");
        EXPECT_TRUE(s.ok()) << s.message();
        src = *s;
        tok = std::move(Tokenizer::from_source(*src).value());
        opt.port = 0;
        server = std::make_unique<Server>(opt);
        port = *server->bind();
        for (const auto& n : names) {
            scheds.push_back(std::make_unique<ScriptedScheduler>(*tok));
            auto m = std::make_shared<ServedModel>();
            m->name = n;
            m->tok = tok.get();
            m->scheduler = scheds.back().get();
            m->renderer = ChatRenderer::from_source(*src);
            m->n_ctx = 64;
            server->add_model(m);
        }
        if (ready) server->set_ready();
        thread = std::thread([this] { server->run(); });
    }
    ~Fixture() {
        server->stop();
        thread.join();
    }
    httplib::Client client() const {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(10, 0);
        return c;
    }
};

const char* kChat = R"({"messages":[{"role":"user","content":"Hello there"}],"max_tokens":4})";

json error_of(const httplib::Result& r) {
    return json::parse(r->body)["error"];
}

TEST(ServerHttp, ChatCompletionOnTheWire) {
    Fixture f({});
    auto c = f.client();
    auto r = c.Post("/v1/chat/completions", kChat, "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    const json j = json::parse(r->body);
    EXPECT_EQ(j["object"], "chat.completion");
    EXPECT_EQ(j["model"], "demo-moe");
    EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(j["usage"]["completion_tokens"], 4);
    // The prompt is the rendered template, tokenized with special tokens parsed.
    EXPECT_EQ(j["usage"]["prompt_tokens"], int(f.scheds[0]->last_prompt().size()));
    const std::string echoed = f.tok->decode(f.scheds[0]->last_prompt());
    EXPECT_NE(echoed.find("Hello there"), std::string::npos) << echoed;
    EXPECT_EQ(j["choices"][0]["message"]["content"].get<std::string>().size() > 0, true);
    // The request's stop strings, then the chat format's end-of-turn texts.
    auto st = c.Post("/v1/chat/completions",
                     R"({"messages":[{"role":"user","content":"x"}],"max_tokens":2,"stop":"Q"})",
                     "application/json");
    ASSERT_EQ(st->status, 200);
    const auto turn_end = chat_stop_strings(ChatRenderer::from_source(*f.src).fallback());
    ASSERT_FALSE(turn_end.empty());
    ASSERT_EQ(f.scheds[0]->last_stop().size(), 1 + turn_end.size());
    EXPECT_EQ(f.scheds[0]->last_stop()[0], "Q");
    EXPECT_EQ(f.scheds[0]->last_stop()[1], turn_end[0]);
}

TEST(ServerHttp, CompletionWithTokenIdsAndLogprobs) {
    Fixture f({});
    auto c = f.client();
    auto r = c.Post("/v1/completions", R"({"prompt":[10,11,12],"max_tokens":3,"logprobs":2})",
                    "application/json");
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(f.scheds[0]->last_prompt(), (std::vector<int32_t>{10, 11, 12}));
    const json j = json::parse(r->body);
    EXPECT_EQ(j["object"], "text_completion");
    EXPECT_EQ(j["choices"][0]["logprobs"]["tokens"].size(), 3u);
    EXPECT_EQ(j["choices"][0]["logprobs"]["top_logprobs"][0].size(), 2u);
    auto bad = c.Post("/v1/completions", R"({"prompt":[10,999999]})", "application/json");
    EXPECT_EQ(bad->status, 400);
    EXPECT_EQ(error_of(bad)["param"], "prompt[1]");
}

TEST(ServerHttp, IgnoreEosReachesTheScheduler) {
    Fixture f({});
    auto c = f.client();
    for (bool on : {true, false}) {
        auto r = c.Post("/v1/completions",
                        std::string(R"({"prompt":[10,11],"max_tokens":2,"ignore_eos":)") +
                            (on ? "true}" : "false}"),
                        "application/json");
        ASSERT_EQ(r->status, 200) << r->body;
        EXPECT_EQ(f.scheds[0]->last_ignore_eos(), on);
    }
    auto plain = c.Post("/v1/completions", R"({"prompt":[10],"max_tokens":1})", "application/json");
    ASSERT_EQ(plain->status, 200);
    EXPECT_FALSE(f.scheds[0]->last_ignore_eos());
}

TEST(ServerHttp, StreamingIsOpenAISse) {
    Fixture f({});
    auto c = f.client();
    auto r = c.Post("/v1/chat/completions",
                    R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":5,"stream":true,
                        "stream_options":{"include_usage":true}})",
                    "application/json");
    ASSERT_EQ(r->status, 200);
    EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
    std::vector<json> chunks;
    bool done = false;
    size_t pos = 0;
    const std::string& b = r->body;
    while (pos < b.size()) {
        const size_t end = b.find("\n\n", pos);
        ASSERT_NE(end, std::string::npos);
        const std::string ev = b.substr(pos, end - pos);
        pos = end + 2;
        ASSERT_EQ(ev.rfind("data: ", 0), 0u) << ev;
        if (ev == "data: [DONE]") {
            done = true;
            continue;
        }
        EXPECT_FALSE(done) << "event after [DONE]";
        chunks.push_back(json::parse(ev.substr(6)));
    }
    EXPECT_TRUE(done);
    ASSERT_GE(chunks.size(), 3u);
    EXPECT_EQ(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    std::string text;
    for (const auto& ch : chunks) {
        EXPECT_EQ(ch["object"], "chat.completion.chunk");
        if (!ch["choices"].empty() && ch["choices"][0]["delta"].contains("content"))
            text += ch["choices"][0]["delta"]["content"].get<std::string>();
    }
    EXPECT_FALSE(text.empty());
    const json& fin = chunks[chunks.size() - 2];
    EXPECT_EQ(fin["choices"][0]["finish_reason"], "length");
    const json& last = chunks.back();
    EXPECT_TRUE(last["choices"].empty());
    EXPECT_EQ(last["usage"]["completion_tokens"], 5);
}

TEST(ServerHttp, ErrorsAreOpenAIObjects) {
    ServerOptions o;
    o.max_body = 4096;
    Fixture f(o);
    auto c = f.client();
    auto nf = c.Get("/v1/nothing");
    ASSERT_EQ(nf->status, 404);
    EXPECT_EQ(error_of(nf)["code"], "not_found");
    auto bad = c.Post("/v1/chat/completions", "{oops", "application/json");
    EXPECT_EQ(bad->status, 400);
    EXPECT_TRUE(error_of(bad)["param"].is_null());
    auto big = c.Post("/v1/chat/completions", std::string(8192, ' '), "application/json");
    ASSERT_TRUE(big);
    EXPECT_EQ(big->status, 413);
    EXPECT_EQ(error_of(big)["code"], "request_too_large");
    auto too_long = c.Post("/v1/completions", json{{"prompt", std::vector<int>(80, 5)}}.dump(),
                           "application/json");
    EXPECT_EQ(too_long->status, 400);
    EXPECT_EQ(error_of(too_long)["code"], "context_length_exceeded");
    auto absurd =
        c.Post("/v1/completions", R"({"prompt":"a","max_tokens":100000})", "application/json");
    EXPECT_EQ(absurd->status, 400);
    EXPECT_EQ(error_of(absurd)["param"], "max_tokens");
    f.scheds[0]->refuse_full = true;
    auto full = c.Post("/v1/chat/completions", kChat, "application/json");
    EXPECT_EQ(full->status, 503);
    EXPECT_EQ(error_of(full)["code"], "queue_full");
}

TEST(ServerHttp, ApiKey) {
    ServerOptions o;
    o.api_key = "sekrit";
    Fixture f(o);
    auto c = f.client();
    EXPECT_EQ(c.Get("/health")->status, 200);  // probes need no key
    auto none = c.Get("/v1/models");
    EXPECT_EQ(none->status, 401);
    EXPECT_EQ(error_of(none)["code"], "invalid_api_key");
    EXPECT_EQ(c.Get("/v1/models", {{"Authorization", "Bearer wrong"}})->status, 401);
    EXPECT_EQ(c.Get("/v1/models", {{"Authorization", "Bearer sekrit"}})->status, 200);
}

TEST(ServerHttp, HealthWhileLoading) {
    Fixture f({}, {"demo-moe"}, /*ready=*/false);
    auto c = f.client();
    EXPECT_EQ(c.Get("/health")->status, 503);
    EXPECT_EQ(c.Post("/v1/chat/completions", kChat, "application/json")->status, 503);
    f.server->set_ready();
    EXPECT_EQ(c.Get("/health")->status, 200);
}

TEST(ServerHttp, TwoModelsRouteByName) {
    Fixture f({}, {"moe", "dense"});
    auto c = f.client();
    const json models = json::parse(c.Get("/v1/models")->body);
    ASSERT_EQ(models["data"].size(), 2u);
    EXPECT_EQ(models["data"][0]["id"], "moe");
    EXPECT_EQ(models["data"][1]["id"], "dense");
    auto r = c.Post("/v1/completions", R"({"model":"dense","prompt":"a","max_tokens":2})",
                    "application/json");
    EXPECT_EQ(json::parse(r->body)["model"], "dense");
    EXPECT_EQ(f.scheds[1]->submitted.load(), 1);
    EXPECT_EQ(f.scheds[0]->submitted.load(), 0);
    auto absent = c.Post("/v1/completions", R"({"prompt":"a","max_tokens":2})", "application/json");
    EXPECT_EQ(json::parse(absent->body)["model"], "moe");
    auto unknown =
        c.Post("/v1/completions", R"({"model":"gpt-9","prompt":"a"})", "application/json");
    EXPECT_EQ(unknown->status, 404);
    EXPECT_EQ(error_of(unknown)["code"], "model_not_found");
    EXPECT_EQ(error_of(unknown)["param"], "model");
}

TEST(ServerHttp, TokenizeDetokenize) {
    Fixture f({});
    auto c = f.client();
    const json t =
        json::parse(c.Post("/tokenize", R"({"content":"Hello world"})", "application/json")->body);
    EXPECT_EQ(t["tokens"].get<std::vector<int32_t>>(), f.tok->encode("Hello world", false, true));
    const json d = json::parse(
        c.Post("/detokenize", json{{"tokens", t["tokens"]}}.dump(), "application/json")->body);
    EXPECT_EQ(d["content"], "Hello world");
}

std::vector<json> sse_chunks(const std::string& body) {
    std::vector<json> out;
    size_t pos = 0;
    while (pos < body.size()) {
        const size_t end = body.find("\n\n", pos);
        if (end == std::string::npos) break;
        const std::string ev = body.substr(pos + 6, end - pos - 6);
        pos = end + 2;
        if (ev != "[DONE]") out.push_back(json::parse(ev));
    }
    return out;
}

const char* kChatLong = R"({"messages":[{"role":"user","content":"Hello there"}]})";

const std::vector<std::string> kThinking = {"<thi",       "nk>\nadd 2", " and 2\n</",
                                            "think>\n\n", "4",          " it is"};

TEST(ServerHttp, ReasoningContentApartFromTheAnswer) {
    Fixture f({});
    f.scheds[0]->set_script(kThinking);
    auto c = f.client();
    auto r = c.Post("/v1/chat/completions", kChatLong, "application/json");
    const json m = json::parse(r->body)["choices"][0]["message"];
    EXPECT_EQ(m["reasoning_content"], "\nadd 2 and 2\n");
    EXPECT_EQ(m["content"], "4 it is");
    EXPECT_EQ(json::parse(r->body)["choices"][0]["finish_reason"], "stop");
    auto s =
        c.Post("/v1/chat/completions",
               R"({"messages":[{"role":"user","content":"x"}],"stream":true})", "application/json");
    std::string reasoning, content;
    for (const auto& ch : sse_chunks(s->body)) {
        const json& d = ch["choices"][0]["delta"];
        if (d.contains("reasoning_content")) reasoning += d["reasoning_content"].get<std::string>();
        if (d.contains("content")) content += d["content"].get<std::string>();
    }
    EXPECT_EQ(reasoning, "\nadd 2 and 2\n");
    EXPECT_EQ(content, "4 it is");
}

TEST(ServerHttp, ReasoningFormatNoneKeepsItInline) {
    ServerOptions o;
    o.reasoning = ReasoningFormat::None;
    Fixture f(o);
    f.scheds[0]->set_script(kThinking);
    auto c = f.client();
    const json m = json::parse(c.Post("/v1/chat/completions", kChatLong, "application/json")->body);
    EXPECT_FALSE(m["choices"][0]["message"].contains("reasoning_content"));
    EXPECT_EQ(m["choices"][0]["message"]["content"], "<think>\nadd 2 and 2\n</think>\n\n4 it is");
}

TEST(ServerHttp, TemplateKwargsReachTheTemplate) {
    Fixture f({});
    // A Qwen3-style generation prompt: thinking disabled closes an empty block up front.
    auto m = std::make_shared<ServedModel>();
    m->name = "thinker";
    m->tok = f.tok.get();
    m->scheduler = f.scheds[0].get();
    m->renderer = ChatRenderer::from_template(
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% if enable_thinking is defined "
        "and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}",
        ChatFormat::ChatML, {});
    m->n_ctx = 64;
    // A second fixture server holding only this model.
    ServerOptions o;
    o.port = 0;
    Server srv(o);
    const int port = *srv.bind();
    srv.add_model(m);
    srv.set_ready();
    std::thread t([&] { srv.run(); });
    httplib::Client c("127.0.0.1", port);
    auto with = c.Post("/v1/chat/completions",
                       R"({"messages":[{"role":"user","content":"q"}],"max_tokens":1,
                           "chat_template_kwargs":{"enable_thinking":false}})",
                       "application/json");
    ASSERT_EQ(with->status, 200) << with->body;
    const std::string rendered = f.tok->decode(f.scheds[0]->last_prompt());
    EXPECT_NE(rendered.find("</think>"), std::string::npos) << rendered;
    auto without = c.Post("/v1/chat/completions",
                          R"({"messages":[{"role":"user","content":"q"}],"max_tokens":1})",
                          "application/json");
    ASSERT_EQ(without->status, 200);
    EXPECT_EQ(f.tok->decode(f.scheds[0]->last_prompt()).find("</think>"), std::string::npos);
    srv.stop();
    t.join();
}

int64_t pages_used(httplib::Client& c) {
    const std::string m = c.Get("/metrics")->body;
    const std::string key = "moeinfer_kv_pages_used{model=\"demo-moe\"} ";
    const size_t p = m.find(key);
    if (p == std::string::npos) return -1;
    return std::stoll(m.substr(p + key.size()));
}

TEST(ServerHttp, CancelledStreamFreesItsPages) {
    Fixture f({});
    f.scheds[0]->set_delay(20ms);
    auto c = f.client();
    int chunks = 0;
    std::thread reader([&] {
        auto cc = f.client();
        httplib::Request req;
        req.method = "POST";
        req.path = "/v1/completions";
        req.body = R"({"prompt":"a b c","max_tokens":60,"stream":true})";
        req.set_header("Content-Type", "application/json");
        req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
            return ++chunks < 3;  // hang up after a few events
        };
        cc.send(req);
    });
    reader.join();
    EXPECT_GE(chunks, 3);
    // The provider notices the closed connection at its next write and cancels.
    int64_t used = -1;
    for (int i = 0; i < 100 && used != 0; ++i) {
        std::this_thread::sleep_for(20ms);
        used = pages_used(c);
    }
    EXPECT_EQ(used, 0);
    EXPECT_EQ(f.scheds[0]->active.load(), 0);
}

TEST(ServerHttp, ClientGoneBeforeTheFirstTokenIsNoticed) {
    Fixture f({});
    f.scheds[0]->set_delay(20s);  // nothing to send for a long time (a queued request)
    const int fd = connect_raw(f.port);
    ASSERT_GE(fd, 0);
    const std::string body = R"({"prompt":"a","max_tokens":5,"stream":true})";
    const std::string req =
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
        "application/json\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    ASSERT_GT(::send(fd, req.data(), req.size(), 0), 0);
    for (int i = 0; i < 100 && f.scheds[0]->active.load() == 0; ++i)
        std::this_thread::sleep_for(10ms);
    ASSERT_EQ(f.scheds[0]->active.load(), 1);
    ::close(fd);  // the client leaves before any token
    for (int i = 0; i < 100 && f.scheds[0]->active.load() != 0; ++i)
        std::this_thread::sleep_for(100ms);
    EXPECT_EQ(f.scheds[0]->active.load(), 0) << "the request was not cancelled";
}

TEST(ServerHttp, StalledClientsDoNotBlockOthers) {
    ServerOptions o;
    o.http_threads = 8;
    o.timeout_s = 30;
    Fixture f(o);
    // More stalled connections than half the pool: some silent, some with half a request.
    std::vector<int> fds;
    for (int i = 0; i < 6; ++i) {
        const int fd = connect_raw(f.port);
        ASSERT_GE(fd, 0);
        if (i % 2) {
            const char* half =
                "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n";
            ASSERT_GT(::send(fd, half, strlen(half), 0), 0);
        }
        fds.push_back(fd);
    }
    std::this_thread::sleep_for(100ms);
    auto c = f.client();
    const auto t0 = std::chrono::steady_clock::now();
    auto r = c.Post("/v1/completions", R"({"prompt":"a","max_tokens":2})", "application/json");
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_LT(s, 5.0);
    for (int fd : fds) ::close(fd);
}

TEST(ServerHttp, ManyConnectionsWaitInTheBacklogBeforeAccept) {
    // 64 clients connect to a bound server whose accept loop has not started (a busy accept
    // thread): the kernel must complete every handshake into the listen backlog. With httplib's
    // backlog of 5 only 6 completed; the others' SYNs were dropped and retried after 1 s.
    ServerOptions o;
    o.port = 0;
    Server srv(o);
    const int port = *srv.bind();
    const int n = 64;
    std::vector<int> fds;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < n; ++i) {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        ASSERT_GE(fd, 0);
        fds.push_back(fd);
        ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);  // EINPROGRESS
    }
    int connected = 0;
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(700);
    std::vector<bool> done(size_t(n), false);
    while (connected < n && std::chrono::steady_clock::now() < until) {
        for (int i = 0; i < n; ++i) {
            if (done[size_t(i)]) continue;
            pollfd p{fds[size_t(i)], POLLOUT, 0};
            if (::poll(&p, 1, 0) == 1 && (p.revents & POLLOUT)) {
                int err = 0;
                socklen_t len = sizeof err;
                ::getsockopt(fds[size_t(i)], SOL_SOCKET, SO_ERROR, &err, &len);
                EXPECT_EQ(err, 0) << "connection " << i;
                done[size_t(i)] = true;
                ++connected;
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(connected, n);
    for (int fd : fds) ::close(fd);
}

}  // namespace
}  // namespace moe::server
