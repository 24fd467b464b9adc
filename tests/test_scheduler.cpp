// The continuous-batching scheduler: concurrent greedy requests give exactly the tokens each
// gives alone (a plain one-sequence Session loop, what `moeinfer run --temp 0` does), on the
// bundled demo MoE and on the f32 fixture of every family (checked against the HF greedy
// sequence too); pages return to the pool on cancel; a tiny pool forces preemption; queue and
// prompt refusals; stop strings; prefix reuse; routing and metrics.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "fixtures.h"
#include "models/model.h"
#include "runtime/scheduler.h"
#include "runtime/session.h"
#include "subprocess.h"

namespace moe {
namespace {

using namespace std::chrono_literals;

struct Loaded {
    std::unique_ptr<Model> model;
    std::unique_ptr<Tokenizer> tok;
};

const Loaded& load(const std::string& path) {
    static std::mutex mu;
    static std::map<std::string, Loaded> cache;
    std::lock_guard lk(mu);
    auto it = cache.find(path);
    if (it != cache.end()) return it->second;
    Loaded l;
    auto m = load_model(path);
    EXPECT_TRUE(m) << path << ": " << m.message();
    if (m) {
        l.model = std::move(*m);
        auto t = Tokenizer::from_source(*l.model->source);
        EXPECT_TRUE(t) << path << ": " << t.message();
        if (t) l.tok = std::move(*t);
    }
    return cache[path] = std::move(l);
}

std::string demo_path() {
    return std::string(MOE_SOURCE_DIR) + "/models/demo-moe.gguf";
}

SessionOptions session_opts(int n_ctx = 256) {
    SessionOptions s;
    s.n_ctx = n_ctx;
    s.n_threads = 2;
    s.deterministic = true;
    return s;
}

GenRequest greedy(std::vector<int32_t> prompt, int max_tokens, bool ignore_eos = true) {
    GenRequest r;
    r.prompt = std::move(prompt);
    r.max_tokens = max_tokens;
    r.sampling.temp = 0;
    r.ignore_eos = ignore_eos;
    return r;
}

// The single-sequence reference: evaluate the prompt, then argmax and one token at a time.
std::vector<int32_t> alone(const Loaded& l, const GenRequest& r, int n_ctx = 256) {
    Session s(*l.model, session_opts(n_ctx));
    const int n_vocab = l.model->config.n_vocab;
    auto logits = s.eval_tokens(r.prompt, false);
    EXPECT_TRUE(logits) << logits.message();
    std::vector<int32_t> out;
    while (logits) {
        const int32_t t = argmax(logits->data(), n_vocab);
        if (!r.ignore_eos && l.tok->is_eog(t)) break;
        out.push_back(t);
        if (int(out.size()) == r.max_tokens || int(r.prompt.size() + out.size()) >= s.n_ctx())
            break;
        const int32_t one[1] = {t};
        logits = s.eval_tokens(one, false);
    }
    return out;
}

struct Collected {
    std::vector<int32_t> tokens;
    std::string text;  // streamed pieces + tail
    std::vector<TokenEvent> events;
    GenSummary summary;
    bool ended = false;
};

Collected collect(GenStream& st, int max_events = -1) {
    Collected c;
    const auto deadline = std::chrono::steady_clock::now() + 300s;
    while (std::chrono::steady_clock::now() < deadline) {
        GenEvent e = st.next(100ms);
        if (auto* t = std::get_if<TokenEvent>(&e)) {
            c.tokens.push_back(t->token);
            c.text += t->text;
            c.events.push_back(*t);
            if (max_events > 0 && int(c.events.size()) >= max_events) return c;
        } else if (auto* s = std::get_if<GenSummary>(&e)) {
            c.summary = *s;
            c.text += s->tail;
            c.ended = true;
            return c;
        }
    }
    ADD_FAILURE() << "no GenSummary within 300 s";
    return c;
}

std::shared_ptr<GenStream> submit_ok(Scheduler& s, GenRequest r) {
    auto v = s.submit(std::move(r));
    if (auto* ref = std::get_if<Scheduler::Refusal>(&v)) {
        ADD_FAILURE() << "refused: " << ref->message;
        return nullptr;
    }
    return std::get<std::shared_ptr<GenStream>>(v);
}

std::unique_ptr<Scheduler> make(const Loaded& l, SchedulerOptions o) {
    auto s = Scheduler::create(*l.model, *l.tok, o);
    EXPECT_TRUE(s) << s.message();
    return s ? std::move(*s) : nullptr;
}

// Text the whole-sequence decode adds after the prompt.
std::string text_after(const Tokenizer& tok, const std::vector<int32_t>& prompt,
                       const std::vector<int32_t>& gen) {
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), gen.begin(), gen.end());
    return tok.decode(all).substr(tok.decode(prompt).size());
}

// Polls metrics until `pred` holds (the scheduler publishes them between steps).
template <class P>
SchedulerMetrics wait_metrics(const Scheduler& s, P pred) {
    SchedulerMetrics m = s.metrics();
    for (int i = 0; i < 500 && !pred(m); ++i) {
        std::this_thread::sleep_for(10ms);
        m = s.metrics();
    }
    return m;
}

const char* kTexts[] = {
    "In the beginning",
    "And God said, Let there be light: and there was light.",
    "The LORD is my shepherd; I shall not want.",
    "Blessed are the meek",
    "And it came to pass in those days, that there went out a decree from Caesar Augustus",
    "For God so loved the world",
    "Then",
    "And the earth was without form, and void; and darkness was upon the face of the deep.",
};

std::vector<GenRequest> demo_requests(const Loaded& l, int n) {
    std::vector<GenRequest> rs;
    for (int i = 0; i < n; ++i) {
        std::string text = kTexts[i % 8];
        if (i >= 8) text += " and";  // different prompts beyond the first eight
        rs.push_back(greedy(l.tok->encode(text, true, false), 4 + (i * 5) % 21, i % 3 != 0));
    }
    return rs;
}

TEST(Scheduler, SixteenConcurrentGreedyRequestsMatchAlone) {
    const Loaded& l = load(demo_path());
    ASSERT_TRUE(l.model && l.tok);
    SchedulerOptions o;
    o.n_slots = 6;       // fewer slots than requests: some wait in the queue and join later
    o.step_tokens = 24;  // long prompts are split into chunks next to decoding sequences
    o.session = session_opts();
    auto sched = make(l, o);
    ASSERT_TRUE(sched);
    const auto reqs = demo_requests(l, 16);
    std::vector<std::shared_ptr<GenStream>> streams;
    for (const auto& r : reqs) streams.push_back(submit_ok(*sched, r));
    std::vector<Collected> got(streams.size());
    std::vector<std::thread> readers;
    for (size_t i = 0; i < streams.size(); ++i)
        readers.emplace_back([&, i] { got[i] = collect(*streams[i]); });
    for (auto& t : readers) t.join();
    for (size_t i = 0; i < reqs.size(); ++i) {
        ASSERT_TRUE(got[i].ended) << i;
        const auto want = alone(l, reqs[i]);
        EXPECT_EQ(got[i].tokens, want) << "request " << i;
        EXPECT_EQ(got[i].text, text_after(*l.tok, reqs[i].prompt, want)) << "request " << i;
        EXPECT_EQ(got[i].summary.n_completion, int(want.size()));
        EXPECT_EQ(got[i].summary.n_prompt, int(reqs[i].prompt.size()));
        const bool eog = !want.empty() && int(want.size()) < reqs[i].max_tokens;
        EXPECT_EQ(got[i].summary.finish, eog ? FinishReason::Stop : FinishReason::Length) << i;
    }
    const SchedulerMetrics m = sched->metrics();
    EXPECT_EQ(m.requests_total, 16);
    EXPECT_EQ(m.requests_finished, 16);
    EXPECT_GT(m.steps, 0);
    EXPECT_GT(m.decode_steps, 0);
    // More than one sequence shared a step at some point.
    EXPECT_LT(m.steps, int64_t(16 + m.generated_tokens));
    std::printf(
        "[ sched    ] %lld steps (%lld decode-only, %lld tokens): %.2f experts/layer, "
        "%.0f expert bytes per generated token (dense %.0f bytes per step)\n",
        (long long)m.steps, (long long)m.decode_steps, (long long)m.decode_tokens,
        m.experts_per_layer_sum / double(std::max<int64_t>(1, m.decode_steps)),
        m.expert_bytes_read_total / double(std::max<int64_t>(1, m.decode_tokens)),
        m.dense_bytes_per_step);
}

class SchedulerFamily : public ::testing::TestWithParam<std::string> {};

TEST_P(SchedulerFamily, ConcurrentGreedyMatchesAloneAndReference) {
    const Loaded& l = load(test::gguf_path(GetParam(), "f32"));
    ASSERT_TRUE(l.model && l.tok);
    const auto ref = test::load_ref(GetParam());
    const auto prompt = ref["greedy_prompt"].get<std::vector<int32_t>>();
    const auto seq = ref["greedy_sequence"].get<std::vector<int32_t>>();
    const auto margin = ref["greedy_top1_margin"].get<std::vector<double>>();
    const auto tokens = ref["tokens"].get<std::vector<int32_t>>();
    SchedulerOptions o;
    o.n_slots = 3;
    o.step_tokens = 16;
    o.session = session_opts(64);
    auto sched = make(l, o);
    ASSERT_TRUE(sched);
    std::vector<GenRequest> reqs = {greedy(prompt, int(seq.size() - prompt.size()))};
    for (size_t n : {3, 13, 24, 5})
        reqs.push_back(greedy({tokens.begin(), tokens.begin() + long(n)}, 6 + int(n % 7)));
    std::vector<std::shared_ptr<GenStream>> streams;
    for (const auto& r : reqs) streams.push_back(submit_ok(*sched, r));
    for (size_t i = 0; i < reqs.size(); ++i) {
        const Collected c = collect(*streams[i]);
        EXPECT_EQ(c.tokens, alone(l, reqs[i], 64)) << GetParam() << " request " << i;
        if (i != 0) continue;
        // HF greedy steps agree up to the first near-tie (a tiny margin may flip).
        for (size_t k = 0; k < c.tokens.size() && k < margin.size(); ++k) {
            if (margin[k] < 1e-3) break;
            EXPECT_EQ(c.tokens[k], seq[prompt.size() + k]) << GetParam() << " step " << k;
        }
    }
}

TEST_P(SchedulerFamily, TextEqualsMoeinferRunGreedy) {
    // `moeinfer run` prints the prompt, the generated text and a newline.
    const std::string path = test::gguf_path(GetParam(), "f32");
    const Loaded& l = load(path);
    ASSERT_TRUE(l.model && l.tok);
    const std::string prompt = test::load_ref(GetParam())["text_prompt"].get<std::string>();
    const auto run = test::run_process(
        {MOE_BINARY, "run", "-m", path, "-p", prompt, "-n", "16", "--temp", "0", "-t", "2"});
    ASSERT_EQ(run.code, 0) << run.err;
    const std::string& out = run.out;
    ASSERT_GT(out.size(), prompt.size()) << out;
    ASSERT_EQ(out.compare(0, prompt.size(), prompt), 0) << out;
    const std::string want = out.substr(prompt.size(), out.size() - prompt.size() - 1);
    SchedulerOptions o;
    o.n_slots = 2;
    o.session = session_opts(64);
    auto sched = make(l, o);
    ASSERT_TRUE(sched);
    // Next to another request, so that the steps hold two sequences.
    auto other = submit_ok(*sched, greedy(l.tok->encode("And God said", true, true), 16));
    const GenRequest r = greedy(l.tok->encode(prompt, true, true), 16, false);
    auto st = submit_ok(*sched, r);
    EXPECT_EQ(collect(*st).text, want) << GetParam();
    // Both stream through the incremental decoder: check run against a whole-sequence decode.
    EXPECT_EQ(want, text_after(*l.tok, r.prompt, alone(l, r, 64))) << GetParam();
    collect(*other);
}

INSTANTIATE_TEST_SUITE_P(All, SchedulerFamily,
                         ::testing::Values("llama", "mixtral", "qwen2moe", "qwen3moe", "olmoe",
                                           "deepseek2", "deepseek3", "gptoss"));

TEST(Scheduler, CancelReturnsPagesToThePool) {
    const Loaded& l = load(demo_path());
    ASSERT_TRUE(l.model && l.tok);
    SchedulerOptions o;
    o.n_slots = 2;
    o.session = session_opts();
    auto sched = make(l, o);
    ASSERT_TRUE(sched);
    auto st = submit_ok(*sched, greedy(l.tok->encode(kTexts[4], true, false), 200));
    ASSERT_TRUE(st);
    const Collected first = collect(*st, 3);
    ASSERT_EQ(first.events.size(), 3u);
    EXPECT_GT(sched->metrics().kv_pages_used, 0);
    st->cancel();
    st->cancel();  // twice is fine
    const Collected rest = collect(*st);
    ASSERT_TRUE(rest.ended);
    EXPECT_EQ(rest.summary.finish, FinishReason::Cancelled);
    EXPECT_LT(first.events.size() + rest.events.size(), 200u);
    const SchedulerMetrics m = sched->metrics();
    EXPECT_EQ(m.kv_pages_used, 0);
    EXPECT_EQ(m.running, 0);
    EXPECT_EQ(m.requests_cancelled, 1);
    EXPECT_TRUE(std::holds_alternative<std::monostate>(st->next(1ms)));  // nothing after the end

    // A finished request keeps its pages as a prefix cache, and only those.
    auto done = submit_ok(*sched, greedy(l.tok->encode(kTexts[0], true, false), 5));
    const Collected d = collect(*done);
    ASSERT_TRUE(d.ended);
    const SchedulerMetrics m2 = sched->metrics();
    EXPECT_GT(m2.kv_pages_used, 0);
    EXPECT_EQ(m2.kv_pages_used, m2.kv_pages_cached);
    // A queued request cancelled before it ran also ends (and holds nothing).
    auto q = submit_ok(*sched, greedy(l.tok->encode(kTexts[1], true, false), 50));
    q->cancel();
    const Collected qc = collect(*q);
    EXPECT_EQ(qc.summary.finish, FinishReason::Cancelled);
    const SchedulerMetrics m3 = wait_metrics(*sched, [](const SchedulerMetrics& x) {
        return x.kv_pages_used == x.kv_pages_cached && x.running == 0;
    });
    EXPECT_EQ(m3.kv_pages_used, m3.kv_pages_cached);
}

TEST(Scheduler, TinyPoolPreemptsAndEveryRequestCompletes) {
    const Loaded& l = load(demo_path());
    ASSERT_TRUE(l.model && l.tok);
    SchedulerOptions o;
    o.n_slots = 4;
    o.step_tokens = 32;
    o.session = session_opts();
    o.session.kv_tokens = 64;  // 4 pages for 4 sequences of up to ~45 tokens each
    auto sched = make(l, o);
    ASSERT_TRUE(sched);
    std::vector<GenRequest> reqs;
    for (int i = 0; i < 6; ++i)
        reqs.push_back(greedy(l.tok->encode(kTexts[i], true, false), 20 + 3 * i));
    std::vector<std::shared_ptr<GenStream>> streams;
    for (const auto& r : reqs) streams.push_back(submit_ok(*sched, r));
    for (size_t i = 0; i < reqs.size(); ++i) {
        const Collected c = collect(*streams[i]);
        ASSERT_TRUE(c.ended);
        EXPECT_EQ(c.summary.finish, FinishReason::Length) << i;
        EXPECT_EQ(c.tokens, alone(l, reqs[i])) << "request " << i;
        EXPECT_EQ(c.text, text_after(*l.tok, reqs[i].prompt, c.tokens)) << "request " << i;
    }
    const SchedulerMetrics m = sched->metrics();
    EXPECT_GT(m.preemptions, 0);
    EXPECT_LE(m.kv_pages_used, 4);
    EXPECT_EQ(m.requests_finished, 6);
}

TEST(Scheduler, QueueFullIsRefused) {
    const Loaded& l = load(demo_path());
    ASSERT_TRUE(l.model && l.tok);
    SchedulerOptions o;
    o.n_slots = 1;
    o.max_queue = 3;
    o.session = session_opts();
    auto sched = make(l, o);
    ASSERT_TRUE(sched);
    std::vector<std::shared_ptr<GenStream>> ok;
    int full = 0;
    for (int i = 0; i < 40; ++i) {
        auto v = sched->submit(greedy(l.tok->encode(kTexts[7], true, false), 30));
        if (auto* r = std::get_if<Scheduler::Refusal>(&v)) {
            EXPECT_EQ(r->kind, Scheduler::SubmitError::QueueFull) << r->message;
            ++full;
        } else {
            ok.push_back(std::get<std::shared_ptr<GenStream>>(v));
        }
        EXPECT_LE(sched->metrics().queue_length, 3);
    }
    EXPECT_GT(full, 0);
    for (auto& s : ok) EXPECT_EQ(collect(*s).summary.finish, FinishReason::Length);
}

TEST(Scheduler, InvalidRequestsAreRefused) {
    const Loaded& l = load(demo_path());
    ASSERT_TRUE(l.model && l.tok);
    SchedulerOptions o;
    o.n_slots = 2;
    o.session = session_opts(32);
    auto sched = make(l, o);
    ASSERT_TRUE(sched);
    auto refused = [&](GenRequest r) {
        auto v = sched->submit(std::move(r));
        auto* ref = std::get_if<Scheduler::Refusal>(&v);
        return ref && ref->kind == Scheduler::SubmitError::Invalid && !ref->message.empty();
    };
    const std::vector<int32_t> p31(31, 5), p32(32, 5);
    EXPECT_TRUE(refused(greedy(p32, 4)));  // no room for a generated token
    EXPECT_TRUE(refused(greedy({}, 4)));   // empty
    EXPECT_TRUE(refused(greedy({1, l.model->config.n_vocab}, 4)));
    EXPECT_TRUE(refused(greedy({1, -1}, 4)));
    EXPECT_TRUE(refused(greedy({1, 5}, 0)));
    GenRequest bad = greedy({1, 5}, 4);
    bad.sampling.top_p = -1;
    EXPECT_TRUE(refused(bad));
    bad = greedy({1, 5}, 4);
    bad.top_logprobs = 21;
    EXPECT_TRUE(refused(bad));
    // The longest prompt that fits gets exactly one token ("length").
    auto st = submit_ok(*sched, greedy(p31, 10));
    ASSERT_TRUE(st);
    const Collected c = collect(*st);
    EXPECT_EQ(c.tokens.size(), 1u);
    EXPECT_EQ(c.summary.finish, FinishReason::Length);
    // A pool smaller than the context bounds the prompt too.
    SchedulerOptions small = o;
    small.session.kv_tokens = 16;
    auto s2 = make(l, small);
    auto v = s2->submit(greedy(std::vector<int32_t>(16, 5), 4));
    EXPECT_TRUE(std::holds_alternative<Scheduler::Refusal>(v));
    SchedulerOptions none = o;
    none.n_slots = 0;
    EXPECT_FALSE(Scheduler::create(*l.model, *l.tok, none));
}

TEST(Scheduler, StopStringsAreNeverEmittedEvenSplitAcrossTokens) {
    const Loaded& l = load(demo_path());
    ASSERT_TRUE(l.model && l.tok);
    SchedulerOptions o;
    o.n_slots = 2;
    o.session = session_opts();
    auto sched = make(l, o);
    ASSERT_TRUE(sched);
    const GenRequest base = greedy(l.tok->encode(kTexts[1], true, false), 40);
    const auto ids = alone(l, base);
    // A stop string made of the end of one token's text and the start of the next one's.
    std::string stop;
    size_t k = 2;
    for (; k + 1 < ids.size(); ++k) {
        const std::string a = l.tok->decode_token(ids[k]), b = l.tok->decode_token(ids[k + 1]);
        if (a.size() >= 2 && b.size() >= 2) {
            stop = a.substr(a.size() - 2) + b.substr(0, 2);
            break;
        }
    }
    ASSERT_FALSE(stop.empty());
    const std::string full = text_after(*l.tok, base.prompt, ids);
    const size_t at = full.find(stop);
    ASSERT_NE(at, std::string::npos);
    GenRequest r = base;
    r.stop = {"never-appears", stop};
    const Collected c = collect(*submit_ok(*sched, r));
    EXPECT_EQ(c.summary.finish, FinishReason::Stop);
    EXPECT_EQ(c.text, full.substr(0, at));
    std::string streamed;
    for (const auto& e : c.events) {
        streamed += e.text;
        EXPECT_EQ(streamed.find(stop), std::string::npos);
    }
    EXPECT_LE(c.tokens.size(), k + 2);
}

TEST(Scheduler, PrefixReuseCountsTokensAndMatchesColdRun) {
    const Loaded& l = load(demo_path());
    ASSERT_TRUE(l.model && l.tok);
    SchedulerOptions o;
    o.n_slots = 2;
    o.step_tokens = 16;
    o.session = session_opts();
    auto sched = make(l, o);
    ASSERT_TRUE(sched);
    const GenRequest turn1 = greedy(l.tok->encode(kTexts[4], true, false), 12);
    const Collected c1 = collect(*submit_ok(*sched, turn1));
    EXPECT_EQ(c1.summary.n_prompt_cached, 0);
    // The next turn: the first turn's prompt and reply, then more text.
    std::vector<int32_t> p2 = turn1.prompt;
    p2.insert(p2.end(), c1.tokens.begin(), c1.tokens.end());
    const auto more = l.tok->encode(" And he said", false, false);
    p2.insert(p2.end(), more.begin(), more.end());
    const GenRequest turn2 = greedy(p2, 10);
    const Collected c2 = collect(*submit_ok(*sched, turn2));
    // The reply's last token was never evaluated; everything before it is reused.
    EXPECT_EQ(c2.summary.n_prompt_cached, int(turn1.prompt.size() + c1.tokens.size() - 1));
    EXPECT_EQ(c2.tokens, alone(l, turn2));
    // A prompt that is exactly a cached prefix re-evaluates its last token only.
    const Collected c3 = collect(*submit_ok(*sched, turn1));
    EXPECT_EQ(c3.summary.n_prompt_cached, int(turn1.prompt.size()) - 1);
    EXPECT_EQ(c3.tokens, c1.tokens);
    const SchedulerMetrics m = sched->metrics();
    EXPECT_EQ(m.prompt_tokens_cached, c2.summary.n_prompt_cached + c3.summary.n_prompt_cached);
    EXPECT_EQ(m.prompt_tokens, int64_t(turn1.prompt.size() * 2 + p2.size()));
}

TEST(Scheduler, RoutingLogprobsAndExpertMetrics) {
    // Mixtral fixture: 2 MoE layers, 8 experts, top-2, expert FFN 64, hidden 128, all f32.
    const Loaded& l = load(test::gguf_path("mixtral", "f32"));
    ASSERT_TRUE(l.model && l.tok);
    const auto ref = test::load_ref("mixtral");
    const auto tokens = ref["tokens"].get<std::vector<int32_t>>();
    const auto ref_router = test::read_f32(test::model_dir("mixtral") + "/ref_router_logits.f32");
    ASSERT_EQ(ref_router.size(), 2u * 24u * 8u);
    SchedulerOptions o;
    o.n_slots = 1;
    o.session = session_opts(64);
    auto sched = make(l, o);
    ASSERT_TRUE(sched);
    GenRequest r = greedy(tokens, 3);
    r.routing = true;
    r.top_logprobs = 2;
    const Collected c = collect(*submit_ok(*sched, r));
    ASSERT_EQ(c.events.size(), 3u);
    // The first token comes from the last prompt position: its routing is HF's top-2 there.
    const TokenEvent& e = c.events[0];
    ASSERT_EQ(e.routing.size(), 2u);
    for (int layer = 0; layer < 2; ++layer) {
        const float* lg = &ref_router[size_t((layer * 24 + 23) * 8)];
        std::vector<int> order(8);
        for (int i = 0; i < 8; ++i) order[size_t(i)] = i;
        std::sort(order.begin(), order.end(), [&](int a, int b) { return lg[a] > lg[b]; });
        ASSERT_EQ(e.routing[size_t(layer)].size(), 2u);
        std::vector<int> got = {e.routing[size_t(layer)][0].first,
                                e.routing[size_t(layer)][1].first};
        std::sort(got.begin(), got.end());
        std::vector<int> want = {order[0], order[1]};
        std::sort(want.begin(), want.end());
        EXPECT_EQ(got, want) << "layer " << layer;
        // Softmax then renormalise over the two: the weights are a 2-way softmax of the logits.
        const double w0 = 1.0 / (1.0 + std::exp(double(lg[order[1]]) - lg[order[0]]));
        const auto& pairs = e.routing[size_t(layer)];
        const double got0 = pairs[0].first == order[0] ? pairs[0].second : pairs[1].second;
        EXPECT_NEAR(got0, w0, 1e-4);
    }
    // Logprobs: the chosen (greedy) token is the best alternative, probabilities below 1.
    ASSERT_TRUE(e.logprob);
    ASSERT_EQ(e.top.size(), 2u);
    EXPECT_EQ(e.top[0].token, e.token);
    EXPECT_FLOAT_EQ(e.top[0].logprob, e.logprob->logprob);
    EXPECT_LT(e.logprob->logprob, 0.0f);
    EXPECT_LE(e.top[1].logprob, e.top[0].logprob);
    EXPECT_EQ(e.logprob->text, l.tok->decode_token(e.token));
    // One sequence decoding: each MoE layer touches exactly its 2 routed experts, each expert
    // reads gate + up + down = 3 x 64 x 128 f32 values.
    const SchedulerMetrics m = sched->metrics();
    EXPECT_EQ(m.decode_steps, 2);
    EXPECT_EQ(m.decode_tokens, 2);
    EXPECT_DOUBLE_EQ(m.last_step_experts_per_layer, 2.0);
    EXPECT_DOUBLE_EQ(m.experts_per_layer_sum, 4.0);
    const double expert = 3.0 * 64 * 128 * 4;
    EXPECT_DOUBLE_EQ(m.expert_bytes_per_token_last, 2 * 2 * expert);
    EXPECT_DOUBLE_EQ(m.expert_bytes_read_total, 2 * 2 * 2 * expert);
    EXPECT_GT(m.weight_bytes_per_token_last, m.expert_bytes_per_token_last);
    EXPECT_EQ(m.generated_tokens, 3);
    EXPECT_EQ(m.kv_page_tokens, 16);
}

}  // namespace
}  // namespace moe

namespace moe {
namespace {

TEST(Scheduler, SeededSamplingUsesOneGeneratorPerRequest) {
    // Two identical requests with the same seed, decoded side by side in the same steps, draw
    // the same tokens (a shared generator would hand them different numbers); a third with
    // another seed does not.
    const Loaded& l = load(demo_path());
    ASSERT_TRUE(l.model && l.tok);
    GenRequest r = greedy(l.tok->encode(kTexts[1], true, false), 16);
    r.sampling.temp = 0.9f;
    r.sampling.top_k = 0;
    r.sampling.top_p = 1.0f;
    r.sampling.min_p = 0;
    r.sampling.seed = 7;
    GenRequest other = r;
    other.sampling.seed = 8;
    SchedulerOptions o;
    o.n_slots = 3;
    o.session = session_opts();
    auto s = make(l, o);
    ASSERT_TRUE(s);
    auto a = submit_ok(*s, r), b = submit_ok(*s, r), c = submit_ok(*s, other);
    const Collected ca = collect(*a), cb = collect(*b), cc = collect(*c);
    EXPECT_EQ(ca.tokens, cb.tokens);
    EXPECT_NE(ca.tokens, cc.tokens);
    EXPECT_EQ(ca.tokens.size(), 16u);
}

TEST(Scheduler, SleepsWhenIdleAndCancelsOpenRequestsOnDestruction) {
    const Loaded& l = load(demo_path());
    ASSERT_TRUE(l.model && l.tok);
    SchedulerOptions o;
    o.n_slots = 1;
    o.session = session_opts();
    auto sched = make(l, o);
    ASSERT_TRUE(sched);
    collect(*submit_ok(*sched, greedy(l.tok->encode(kTexts[0], true, false), 3)));
    const int64_t steps = sched->metrics().steps;
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(sched->metrics().steps, steps);  // no step without work
    auto running = submit_ok(*sched, greedy(l.tok->encode(kTexts[1], true, false), 250));
    auto queued = submit_ok(*sched, greedy(l.tok->encode(kTexts[2], true, false), 5));
    collect(*running, 1);
    sched.reset();
    EXPECT_EQ(collect(*running).summary.finish, FinishReason::Cancelled);
    EXPECT_EQ(collect(*queued).summary.finish, FinishReason::Cancelled);
}

}  // namespace
}  // namespace moe

namespace moe {
namespace {

TEST(Scheduler, ConcurrentClientsWithCancelsLeaveNothingBehind) {
    // Four client threads submit and read at once; some cancel midway, some right away. Every
    // stream ends, every count adds up, and only idle prefix caches keep pages.
    const Loaded& l = load(demo_path());
    ASSERT_TRUE(l.model && l.tok);
    SchedulerOptions o;
    o.n_slots = 3;
    o.step_tokens = 20;
    o.session = session_opts();
    o.session.kv_tokens = 160;  // 10 pages: admission waits and preemption happen too
    auto sched = make(l, o);
    ASSERT_TRUE(sched);
    std::atomic<int> ended{0}, cancelled{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < 4; ++c)
        clients.emplace_back([&, c] {
            for (int i = 0; i < 6; ++i) {
                const int k = c * 6 + i;
                auto st = submit_ok(*sched,
                                    greedy(l.tok->encode(kTexts[k % 8], true, false), 5 + k % 17));
                if (!st) return;
                if (k % 5 == 1) st->cancel();
                const Collected got = collect(*st, k % 4 == 2 ? 2 : -1);
                if (k % 4 == 2 && !got.ended) st->cancel();
                const Collected rest = got.ended ? got : collect(*st);
                ended += rest.ended ? 1 : 0;
                cancelled += rest.summary.finish == FinishReason::Cancelled ? 1 : 0;
            }
        });
    for (auto& t : clients) t.join();
    EXPECT_EQ(ended.load(), 24);
    const SchedulerMetrics m = wait_metrics(
        *sched, [](const SchedulerMetrics& x) { return x.running == 0 && x.queue_length == 0; });
    EXPECT_EQ(m.requests_total, 24);
    EXPECT_EQ(m.requests_finished + m.requests_cancelled, 24);
    EXPECT_EQ(m.requests_cancelled, cancelled.load());
    EXPECT_GT(m.requests_cancelled, 0);
    EXPECT_EQ(m.requests_failed, 0);
    EXPECT_EQ(m.running, 0);
    EXPECT_EQ(m.kv_pages_used, m.kv_pages_cached);
    EXPECT_LE(m.kv_pages_used, m.kv_pages_total);
}

}  // namespace
}  // namespace moe

namespace moe {
namespace {

TEST(Scheduler, DeterministicSamplingDoesNotDependOnTheBatch) {
    // With deterministic kernels a row's logits are bit-identical whatever shares its step, so
    // even sampled (not only greedy) tokens match a one-request-at-a-time run.
    const Loaded& l = load(demo_path());
    ASSERT_TRUE(l.model && l.tok);
    std::vector<GenRequest> reqs;
    for (int i = 0; i < 4; ++i) {
        GenRequest r = greedy(l.tok->encode(kTexts[i], true, false), 12);
        r.sampling.temp = 0.9f;
        r.sampling.top_k = 0;
        r.sampling.top_p = 1.0f;
        r.sampling.min_p = 0;
        r.sampling.seed = uint64_t(7 + i % 2);
        reqs.push_back(r);
    }
    SchedulerOptions one;
    one.n_slots = 1;
    one.session = session_opts();
    std::vector<std::vector<int32_t>> want;
    {
        auto s = make(l, one);
        for (const auto& r : reqs) want.push_back(collect(*submit_ok(*s, r)).tokens);
    }
    SchedulerOptions four = one;
    four.n_slots = 4;
    auto s = make(l, four);
    std::vector<std::shared_ptr<GenStream>> streams;
    for (const auto& r : reqs) streams.push_back(submit_ok(*s, r));
    for (size_t i = 0; i < reqs.size(); ++i)
        EXPECT_EQ(collect(*streams[i]).tokens, want[i]) << "request " << i;
}

}  // namespace
}  // namespace moe

namespace moe {
namespace {

// Steps as the scheduler reports them (SchedulerOptions::on_step), kept for checking.
struct StepLog {
    std::mutex mu;
    std::vector<std::vector<StepChunk>> steps;
    std::function<void(std::span<const StepChunk>)> hook() {
        return [this](std::span<const StepChunk> c) {
            std::lock_guard lk(mu);
            steps.emplace_back(c.begin(), c.end());
        };
    }
};

TEST(Scheduler, StepBudgetTakesDecodersFirstAndSplitsPromptsOldestFirst) {
    // Two sequences decode while a long prompt and two short ones arrive, with a budget of 8
    // tokens per step: every step stays within 8, both decoders are in every step until they end,
    // the long prompt is split across steps and finishes, and prompt chunks go oldest first.
    const Loaded& l = load(demo_path());
    ASSERT_TRUE(l.model && l.tok);
    StepLog log;
    SchedulerOptions o;
    o.n_slots = 4;
    o.step_tokens = 8;
    o.prefill_step_tokens = 0;  // every step within 8 (the larger prefill budget: below)
    o.session = session_opts();
    o.on_step = log.hook();
    auto sched = make(l, o);
    ASSERT_TRUE(sched);
    std::string long_text;
    for (int i = 0; i < 4; ++i) long_text += std::string(kTexts[4 + i]) + " ";
    std::vector<GenRequest> reqs = {
        greedy(l.tok->encode(kTexts[0], true, false), 30),
        greedy(l.tok->encode(kTexts[3], true, false), 30),
        greedy(l.tok->encode(long_text, true, false), 3),
        greedy(l.tok->encode(kTexts[1], true, false), 3),
        greedy(l.tok->encode(kTexts[2], true, false), 3),  // no slot free at first: queued
    };
    const int kLong = 2;
    ASSERT_GE(reqs[kLong].prompt.size(), 40u);
    std::vector<std::shared_ptr<GenStream>> streams;
    std::vector<Collected> got(reqs.size());
    for (int i = 0; i < 2; ++i) {
        streams.push_back(submit_ok(*sched, reqs[size_t(i)]));
        got[size_t(i)] = collect(*streams.back(), 1);  // decoding from now on
    }
    for (size_t i = 2; i < reqs.size(); ++i) streams.push_back(submit_ok(*sched, reqs[i]));
    for (size_t i = 0; i < reqs.size(); ++i) {
        const Collected rest = collect(*streams[i]);
        got[i].tokens.insert(got[i].tokens.end(), rest.tokens.begin(), rest.tokens.end());
        got[i].summary = rest.summary;
        ASSERT_TRUE(rest.ended) << i;
        EXPECT_EQ(got[i].tokens, alone(l, reqs[i])) << "request " << i;
        EXPECT_EQ(got[i].summary.finish, FinishReason::Length) << i;
    }

    std::lock_guard lk(log.mu);
    std::map<int64_t, int> generated;     // tokens sampled so far, by request
    std::map<int64_t, bool> prompt_done;  // its prompt fully evaluated
    int long_chunks = 0, long_tokens = 0;
    for (size_t s = 0; s < log.steps.size(); ++s) {
        const auto& step = log.steps[s];
        int total = 0;
        std::set<int64_t> decoded;
        int64_t last_prompt_id = -1;
        for (size_t c = 0; c < step.size(); ++c) {
            const StepChunk& ch = step[c];
            total += ch.n_tokens;
            if (ch.decode) {
                EXPECT_EQ(ch.n_tokens, 1) << "step " << s;
                EXPECT_TRUE(c == 0 || step[c - 1].decode) << "step " << s << ": decodes first";
                decoded.insert(ch.request);
                continue;
            }
            // Prompt chunks oldest first; only the last of a step may stop short of the end.
            EXPECT_GT(ch.request, last_prompt_id) << "step " << s;
            last_prompt_id = ch.request;
            if (c + 1 < step.size()) EXPECT_EQ(ch.prompt_left, 0) << "step " << s;
            // No older request with prompt left was passed over.
            for (int64_t older = 0; older < ch.request; ++older)
                if (!prompt_done[older])
                    EXPECT_TRUE(std::any_of(step.begin(), step.end(),
                                            [&](const StepChunk& x) {
                                                return x.request == older && !x.decode &&
                                                       x.prompt_left == 0;
                                            }))
                        << "step " << s << ": request " << ch.request << " before " << older;
            if (ch.request == kLong) ++long_chunks, long_tokens += ch.n_tokens;
        }
        EXPECT_LE(total, o.step_tokens) << "step " << s;
        // Every sequence that had sampled a token and was not done decodes in this step.
        for (const auto& [id, n] : generated)
            if (n > 0 && n < reqs[size_t(id)].max_tokens)
                EXPECT_TRUE(decoded.count(id)) << "step " << s << ": decoder " << id << " left out";
        for (const StepChunk& ch : step)
            if (ch.prompt_left == 0) {
                prompt_done[ch.request] = true;
                ++generated[ch.request];
            }
    }
    // The long prompt took several steps (6 tokens left beside the two decoders) and finished.
    EXPECT_GE(long_chunks, int(reqs[kLong].prompt.size() - 1) / o.step_tokens + 1);
    EXPECT_GE(long_tokens, int(reqs[kLong].prompt.size()) - 1);  // a cached BOS may be reused
    EXPECT_TRUE(prompt_done[kLong]);
    for (size_t i = 0; i < reqs.size(); ++i)
        EXPECT_EQ(generated[int64_t(i)], reqs[i].max_tokens) << "request " << i;
}

TEST(Scheduler, StepBudgetBelowTheSlotCountIsRefused) {
    const Loaded& l = load(demo_path());
    ASSERT_TRUE(l.model && l.tok);
    SchedulerOptions o;
    o.n_slots = 4;
    o.step_tokens = 3;
    o.session = session_opts();
    auto s = Scheduler::create(*l.model, *l.tok, o);
    ASSERT_FALSE(s);
    EXPECT_NE(s.message().find("step token budget (3)"), std::string::npos) << s.message();
}

TEST(Scheduler, DeterministicOutputDoesNotDependOnTheStepBudget) {
    // With --deterministic, greedy tokens and their logprobs are bitwise the same whether prompts
    // are evaluated in chunks of 4 tokens beside the decoders or whole.
    const Loaded& l = load(demo_path());
    ASSERT_TRUE(l.model && l.tok);
    std::vector<GenRequest> reqs = demo_requests(l, 10);
    for (auto& r : reqs) r.top_logprobs = 3;
    std::vector<std::vector<Collected>> runs;
    for (int budget : {4, 24, 512}) {
        SchedulerOptions o;
        o.n_slots = 4;
        o.step_tokens = budget;
        o.session = session_opts();
        auto sched = make(l, o);
        ASSERT_TRUE(sched);
        std::vector<std::shared_ptr<GenStream>> streams;
        for (const auto& r : reqs) streams.push_back(submit_ok(*sched, r));
        std::vector<Collected> got;
        for (auto& st : streams) got.push_back(collect(*st));
        runs.push_back(std::move(got));
    }
    for (size_t b = 1; b < runs.size(); ++b)
        for (size_t i = 0; i < reqs.size(); ++i) {
            ASSERT_EQ(runs[b][i].tokens, runs[0][i].tokens) << "budget run " << b << " req " << i;
            for (size_t t = 0; t < runs[0][i].events.size(); ++t) {
                const auto& x = runs[0][i].events[t].logprob;
                const auto& y = runs[b][i].events[t].logprob;
                ASSERT_TRUE(x && y);
                EXPECT_EQ(std::bit_cast<uint32_t>(x->logprob), std::bit_cast<uint32_t>(y->logprob))
                    << "budget run " << b << " req " << i << " token " << t;
            }
        }
}

}  // namespace
}  // namespace moe

namespace moe {
namespace {

TEST(Scheduler, StepTimesCountEveryStepAndItsTokens) {
    // Six requests through two slots with a budget of 6 tokens per step: prompts are split
    // across steps beside decoding sequences, so there are steps with prompt tokens and
    // decode-only steps. Each kind's counters add up to what the requests asked for.
    const Loaded& l = load(demo_path());
    ASSERT_TRUE(l.model && l.tok);
    SchedulerOptions o;
    o.n_slots = 2;
    o.step_tokens = 6;
    o.session = session_opts();
    auto sched = make(l, o);
    ASSERT_TRUE(sched);
    int64_t prompt_tokens = 0, decode_rows = 0;
    std::vector<std::shared_ptr<GenStream>> streams;
    for (int i = 0; i < 6; ++i) {
        GenRequest r = greedy(l.tok->encode(kTexts[i], true, false), 3 + i);
        prompt_tokens += int64_t(r.prompt.size());
        decode_rows += r.max_tokens - 1;  // the first token comes from the prompt's last row
        streams.push_back(submit_ok(*sched, r));
    }
    for (auto& st : streams) ASSERT_TRUE(collect(*st).ended);
    // The times of a step are published after its tokens are streamed.
    const SchedulerMetrics m = wait_metrics(*sched, [](const SchedulerMetrics& x) {
        return x.steps == x.decode_steps + x.mixed_steps;
    });
    EXPECT_EQ(m.steps, m.decode_steps + m.mixed_steps);
    EXPECT_GT(m.mixed_steps, 0);
    EXPECT_GT(m.decode_steps, 0);
    EXPECT_EQ(m.preemptions, 0);
    // Every prompt token not reused from a slot's cache is evaluated in a step with prompt tokens.
    EXPECT_EQ(m.mixed_prompt_tokens, prompt_tokens - m.prompt_tokens_cached);
    EXPECT_EQ(m.mixed_decode_tokens + m.decode_tokens, decode_rows);
    EXPECT_GT(m.forward_mixed_s, 0);
    EXPECT_GT(m.forward_decode_s, 0);
    EXPECT_GT(m.schedule_s, 0);
    EXPECT_GT(m.sample_s, 0);
}

}  // namespace
}  // namespace moe

namespace moe {
namespace {

TEST(Scheduler, StepsWithoutDecodersTakeThePrefillBudget) {
    // Budget 4 per step, 32 when no sequence is decoding. A long prompt alone is evaluated in one
    // step; a second long prompt that arrives while the first decodes goes in chunks beside it,
    // each step within 4; the text equals a single-request run either way.
    const Loaded& l = load(demo_path());
    ASSERT_TRUE(l.model && l.tok);
    StepLog log;
    SchedulerOptions o;
    o.n_slots = 2;
    o.step_tokens = 4;
    o.prefill_step_tokens = 32;
    o.session = session_opts();
    o.on_step = log.hook();
    auto sched = make(l, o);
    ASSERT_TRUE(sched);
    const GenRequest first = greedy(l.tok->encode(kTexts[4], true, false), 100);
    const GenRequest second = greedy(l.tok->encode(kTexts[7], true, false), 3);
    ASSERT_GT(first.prompt.size(), 8u);
    ASSERT_LE(first.prompt.size(), 32u);
    ASSERT_GT(second.prompt.size(), 8u);
    auto s1 = submit_ok(*sched, first);
    Collected c1 = collect(*s1, 1);  // decoding from now on
    auto s2 = submit_ok(*sched, second);
    const Collected c2 = collect(*s2);
    const Collected rest = collect(*s1);
    c1.tokens.insert(c1.tokens.end(), rest.tokens.begin(), rest.tokens.end());
    EXPECT_EQ(c1.tokens, alone(l, first));
    EXPECT_EQ(c2.tokens, alone(l, second));

    std::lock_guard lk(log.mu);
    ASSERT_FALSE(log.steps.empty());
    ASSERT_EQ(log.steps[0].size(), 1u);
    EXPECT_EQ(log.steps[0][0].n_tokens, int(first.prompt.size()));  // the whole prompt at once
    EXPECT_EQ(log.steps[0][0].prompt_left, 0);
    int second_chunks = 0;
    for (size_t s = 0; s < log.steps.size(); ++s) {
        int total = 0;
        bool decoding = false;
        for (const StepChunk& ch : log.steps[s]) {
            total += ch.n_tokens;
            decoding = decoding || ch.decode;
            if (ch.request == 1 && !ch.decode) ++second_chunks;
        }
        EXPECT_LE(total, decoding ? o.step_tokens : o.prefill_step_tokens) << "step " << s;
    }
    // Beside the decoder, 3 prompt tokens per step.
    EXPECT_GE(second_chunks, int(second.prompt.size() + 2) / 3);
}

}  // namespace
}  // namespace moe
