// Speculative prefetch of the expert cache (models/expert_cache.h): every call the forward pass
// makes on the store is recorded and replayed through an independent model of the cache with
// prefetch; its counts (hits, misses, predictions routed, prefetch reads and hits) must equal the
// cache's on the demo MoE's trained routing, and the logits stay bit-identical.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <vector>

#include "fixtures.h"
#include "models/expert_cache.h"
#include "models/model.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

namespace moe {
namespace {

const std::string kDemo = std::string(MOE_SOURCE_DIR) + "/models/demo-moe.gguf";

// Forwards to a store and records the calls (ids as given, the prefix length acquire returned).
class RecordingStore final : public ExpertStore {
  public:
    enum class Op { Acquire, Release, Prefetch };
    struct Call {
        Op op;
        int il;
        std::vector<int32_t> ids;
        size_t pinned = 0;
    };
    explicit RecordingStore(std::shared_ptr<ExpertStore> s) : inner_(std::move(s)) {}
    Result<size_t> acquire(int il, std::span<const int32_t> active) override {
        auto r = inner_->acquire(il, active);
        calls.push_back({Op::Acquire, il, {active.begin(), active.end()}, r.ok() ? *r : 0});
        return r;
    }
    Result<size_t> wait_ready(int il, size_t from) override { return inner_->wait_ready(il, from); }
    std::span<const ops::ExpertWeights> views(int il) const override { return inner_->views(il); }
    void release(int il) override {
        inner_->release(il);
        calls.push_back({Op::Release, il, {}, 0});
    }
    bool wants_prediction() const override { return inner_->wants_prediction(); }
    void prefetch(int il, std::span<const int32_t> p) override {
        inner_->prefetch(il, p);
        calls.push_back({Op::Prefetch, il, {p.begin(), p.end()}, 0});
    }
    ExpertStoreStats stats() const override { return inner_->stats(); }
    std::vector<Call> calls;

  private:
    std::shared_ptr<ExpertStore> inner_;
};

// The cache as its header defines it, with prefetch: slots hold (layer, expert) keys; a miss
// takes an empty slot, else the unpinned entry of least (lfru: frequency, then) last use; a
// prefetch takes victims the same way but skips entries of the same prediction, sets last use
// and counts no access. An access to an entry a prefetch filled (and nothing accessed since) is
// a prefetch hit; a routed expert that was in the layer's last prediction is a prediction used.
struct PrefetchSim {
    int64_t slots = 0;
    bool lfru = false;
    int n_expert = 0;
    struct Entry {
        int64_t key = -1;
        uint64_t last = 0;
        int pins = 0;
        bool prefetched = false;
    };
    std::vector<Entry> held;
    std::map<int64_t, uint64_t> freq;
    std::map<int64_t, bool> predicted;
    uint64_t tick = 0, accesses = 0;
    std::map<int, ExpertLayerStats> st;

    void count(int64_t key) {
        if (!lfru) return;
        ++freq[key];
        if (++accesses % uint64_t(slots) == 0)
            for (auto& [k, f] : freq) f /= 2;
    }
    Entry* find(int64_t key) {
        for (auto& e : held)
            if (e.key == key) return &e;
        return nullptr;
    }
    Entry* victim(int spare) {
        if (int64_t(held.size()) < slots) return &held.emplace_back();
        Entry* best = nullptr;
        for (auto& e : held) {
            if (e.pins > 0) continue;
            if (spare >= 0 && e.key / n_expert == spare && predicted[e.key]) continue;
            const uint64_t fe = lfru ? freq[e.key] : 0, fb = best && lfru ? freq[best->key] : 0;
            if (!best || fe < fb || (fe == fb && e.last < best->last)) best = &e;
        }
        return best;
    }
    size_t acquire(int il, const std::vector<int32_t>& ids) {
        size_t n = 0;
        for (const int32_t e : ids) {
            const int64_t key = int64_t(il) * n_expert + e;
            if (predicted[key]) ++st[il].predicted_used, predicted[key] = false;
            Entry* x = find(key);
            if (x) {
                ++st[il].hits;
                if (x->prefetched) ++st[il].prefetch_hits;
            } else {
                x = victim(-1);
                if (!x) break;
                x->key = key;
                ++st[il].misses;
            }
            count(key);
            x->prefetched = false;
            ++x->pins;
            x->last = ++tick;
            ++n;
        }
        return n;
    }
    void release() {
        for (auto& e : held) e.pins = 0;
    }
    void prefetch(int il, const std::vector<int32_t>& ids) {
        for (int e = 0; e < n_expert; ++e) predicted[int64_t(il) * n_expert + e] = false;
        for (const int32_t e : ids) predicted[int64_t(il) * n_expert + e] = true;
        st[il].predicted += ids.size();
        for (const int32_t e : ids) {
            const int64_t key = int64_t(il) * n_expert + e;
            if (find(key)) continue;
            Entry* x = victim(il);
            if (!x) break;
            x->key = key, x->prefetched = true, x->last = ++tick;
            ++st[il].prefetched;
        }
    }
};

std::vector<int32_t> demo_tokens(const Model& m, const char* text) {
    auto tok = Tokenizer::from_source(*m.source);
    EXPECT_TRUE(tok.ok()) << tok.message();
    return tok.ok() ? (*tok)->encode(text, true, false) : std::vector<int32_t>{};
}

// One prompt batch then the same text token by token: both the wide and the decode case.
std::vector<float> run_both(const Model& m, const std::vector<int32_t>& toks) {
    std::vector<float> all;
    for (int n_batch : {512, 1}) {
        SessionOptions so;
        so.n_threads = 2, so.n_ctx = 256, so.n_batch = n_batch;
        Session s(m, so);
        auto r = s.eval_tokens(toks, /*all_logits=*/true);
        EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.message());
        if (r.ok()) all.insert(all.end(), r->begin(), r->end());
    }
    return all;
}

class PrefetchVsSimulation : public testing::TestWithParam<CachePolicy> {};

TEST_P(PrefetchVsSimulation, CountsMatchAndLogitsAreBitIdentical) {
    const CachePolicy pol = GetParam();
    auto m = load_model(kDemo);
    ASSERT_TRUE(m.ok()) << m.message();
    const auto toks = demo_tokens(**m,
                                  "The little robot walked to the market and bought three red "
                                  "apples, then it went home and told its friend a long story.");
    ASSERT_GT(toks.size(), 20u);
    const auto want = run_both(**m, toks);

    const uint64_t slots = 12;
    auto cache = make_expert_cache(**m, slots, pol, 2, /*prefetch=*/true);
    ASSERT_TRUE(cache.ok()) << cache.message();
    ASSERT_TRUE((*cache)->wants_prediction());
    auto rec = std::make_shared<RecordingStore>(*cache);
    (*m)->experts = rec;
    const auto got = run_both(**m, toks);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin()))
        << "max_rel " << test::max_rel(got, want);

    PrefetchSim sim;
    sim.slots = int64_t(slots), sim.lfru = pol == CachePolicy::Lfru;
    sim.n_expert = (*m)->config.moe.n_expert;
    size_t n_prefetch = 0;
    for (const auto& c : rec->calls) {
        if (c.op == RecordingStore::Op::Acquire)
            EXPECT_EQ(sim.acquire(c.il, c.ids), c.pinned) << "layer " << c.il;
        else if (c.op == RecordingStore::Op::Release)
            sim.release();
        else
            sim.prefetch(c.il, c.ids), ++n_prefetch;
    }
    // Every MoE layer after the first gets one prediction per forward pass.
    EXPECT_GT(n_prefetch, toks.size());
    const ExpertStoreStats st = rec->stats();
    uint64_t prefetch_hits = 0, predicted = 0, used = 0;
    for (const auto& [il, s] : sim.st) {
        const ExpertLayerStats& g = st.layers[size_t(il)];
        EXPECT_EQ(g.hits, s.hits) << "layer " << il;
        EXPECT_EQ(g.misses, s.misses) << "layer " << il;
        EXPECT_EQ(g.predicted, s.predicted) << "layer " << il;
        EXPECT_EQ(g.predicted_used, s.predicted_used) << "layer " << il;
        EXPECT_EQ(g.prefetched, s.prefetched) << "layer " << il;
        EXPECT_EQ(g.prefetch_hits, s.prefetch_hits) << "layer " << il;
        prefetch_hits += s.prefetch_hits, predicted += s.predicted, used += s.predicted_used;
    }
    // The trace exercises the prefetch: some predictions land, and some do not.
    EXPECT_GT(prefetch_hits, 0u);
    EXPECT_LT(used, predicted);
    RecordProperty("prediction_rate", std::to_string(double(used) / double(predicted)));
}

INSTANTIATE_TEST_SUITE_P(Policies, PrefetchVsSimulation,
                         testing::Values(CachePolicy::Lru, CachePolicy::Lfru),
                         [](const auto& i) { return std::string(cache_policy_name(i.param)); });

}  // namespace
}  // namespace moe
