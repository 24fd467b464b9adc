// The cached expert store (models/expert_cache.h): bit-identical logits to the resident store on
// every fixture family, hit/miss counts equal to an independent simulation of each policy over
// the routing trace, the process staying under its budget, and the errors of bad budgets and
// shrinking files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "fixtures.h"
#include "formats/model_source.h"
#include "models/expert_cache.h"
#include "models/model.h"
#include "runtime/session.h"
#include "subprocess.h"

namespace moe {
namespace {

const std::string kDemo = std::string(MOE_SOURCE_DIR) + "/models/demo-moe.gguf";

std::vector<float> all_logits(const Model& m, const std::vector<int32_t>& toks, int n_batch) {
    SessionOptions so;
    so.n_threads = 2;
    so.n_ctx = 64;
    so.n_batch = n_batch;
    Session s(m, so);
    auto r = s.eval_tokens(toks, /*all_logits=*/true);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.message());
    return r.ok() ? *r : std::vector<float>{};
}

struct CacheCase {
    std::string name, type;
};

class CachedLogits : public testing::TestWithParam<CacheCase> {};

// Three slots for 8 experts x 2-3 layers: the 24-token prompt needs several windows per layer
// and decode steps evict all the time. Compared bit for bit, prompt (one batch) and decode.
TEST_P(CachedLogits, BitIdenticalToResident) {
    const auto& [name, type] = GetParam();
    auto m = load_model(test::gguf_path(name, type));
    ASSERT_TRUE(m.ok()) << m.message();
    const auto toks = test::load_ref(name)["tokens"].get<std::vector<int32_t>>();
    const auto want_batch = all_logits(**m, toks, 512);
    const auto want_steps = all_logits(**m, toks, 1);
    for (const auto& [pol, prefetch] :
         {std::pair{CachePolicy::Lru, false}, std::pair{CachePolicy::Lfru, false},
          std::pair{CachePolicy::Lfru, true}}) {
        auto cache = make_expert_cache(**m, 3, pol, 2, prefetch);
        ASSERT_TRUE(cache.ok()) << cache.message();
        (*m)->experts = *cache;
        const auto got_batch = all_logits(**m, toks, 512);
        const auto got_steps = all_logits(**m, toks, 1);
        const ExpertLayerStats t = (*m)->experts->stats().total();
        EXPECT_GT(t.misses, 3u) << "the cache should have evicted";
        ASSERT_EQ(got_batch.size(), want_batch.size());
        EXPECT_TRUE(std::equal(got_batch.begin(), got_batch.end(), want_batch.begin()))
            << name << " " << type << " " << cache_policy_name(pol) << " prefetch " << prefetch
            << " one batch: max_rel " << test::max_rel(got_batch, want_batch);
        EXPECT_TRUE(std::equal(got_steps.begin(), got_steps.end(), want_steps.begin()))
            << name << " " << type << " " << cache_policy_name(pol) << " prefetch " << prefetch
            << " token by token";
    }
}

INSTANTIATE_TEST_SUITE_P(Families, CachedLogits,
                         testing::Values(CacheCase{"mixtral", "f32"}, CacheCase{"qwen2moe", "f32"},
                                         CacheCase{"qwen3moe", "f32"}, CacheCase{"olmoe", "f32"},
                                         CacheCase{"deepseek2", "f32"},
                                         CacheCase{"deepseek3", "f32"}, CacheCase{"gptoss", "f32"},
                                         CacheCase{"mixtral-wide", "q4_k_m"},
                                         CacheCase{"gptoss", "mxfp4_moe"}),
                         [](const auto& i) {
                             std::string s = i.param.name + "_" + i.param.type;
                             std::replace(s.begin(), s.end(), '-', '_');
                             return s;
                         });

// A file that shrinks under a running cache: the next miss is an error naming the file (with
// prefetch on, a failed prediction read is the error of the access that finds it).
TEST(ExpertCacheErrors, ShrinkingFileIsAnError) {
    for (const bool prefetch : {false, true}) {
        SCOPED_TRACE(prefetch ? "prefetch on" : "prefetch off");
        const std::string path = test::temp_path("shrink.gguf");
        std::filesystem::copy_file(test::gguf_path("mixtral", "f32"), path,
                                   std::filesystem::copy_options::overwrite_existing);
        // Loaded (not mapped): what stays resident does not depend on the file any more.
        auto src = open_model_source(path, WeightMemory::Load);
        ASSERT_TRUE(src.ok()) << src.message();
        auto m = load_model(*src);
        ASSERT_TRUE(m.ok()) << m.message();
        auto cache = make_expert_cache(**m, 2, CachePolicy::Lru, 2, prefetch);
        ASSERT_TRUE(cache.ok()) << cache.message();
        (*m)->experts = *cache;
        const auto toks = test::load_ref("mixtral")["tokens"].get<std::vector<int32_t>>();
        SessionOptions so;
        so.n_threads = 2, so.n_ctx = 64;
        Session s(**m, so);
        ASSERT_TRUE(s.eval_tokens(toks, true).ok());
        ASSERT_EQ(::truncate(path.c_str(), off_t(std::filesystem::file_size(path) / 4)), 0);
        s.reset(0);
        auto r = s.eval_tokens(toks, true);
        ASSERT_FALSE(r.ok());
        EXPECT_NE(r.message().find("shrank"), std::string::npos) << r.message();
        EXPECT_NE(r.message().find(path), std::string::npos) << r.message();
        std::filesystem::remove(path);
    }
}

TEST(ExpertCacheErrors, BudgetBelowMinimumStatesIt) {
    const auto r = test::run_moeinfer("run -m " + kDemo + " -n 2 -c 64 --mem-budget 0.01");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("error: --mem-budget 0.01 GiB is below this model's minimum of "),
              std::string::npos)
        << r.err;
}

TEST(ExpertCacheErrors, BudgetOverTheFileIsResidentModeSaidOnce) {
    const auto r = test::run_moeinfer("run -m " + kDemo + " -n 2 -c 64 --mem-budget 64");
    EXPECT_EQ(r.code, 0) << r.err;
    const std::string needle = "experts stay resident";
    const size_t at = r.err.find(needle);
    EXPECT_NE(at, std::string::npos) << r.err;
    EXPECT_EQ(r.err.find(needle, at + 1), std::string::npos) << r.err;
}

}  // namespace
}  // namespace moe

namespace moe {
namespace {

// An independent model of the cache as models/expert_cache.h defines it: per forward pass and
// MoE layer, the distinct experts in ascending order are pinned window by window (a window ends
// when every slot is pinned); a miss takes a free slot, else the unpinned entry with the least
// (lfru: frequency, then) last use. lfru counts every access per (layer, expert) and halves all
// counts every `slots` accesses.
struct CacheSim {
    int64_t slots;
    bool lfru;
    struct Entry {
        int64_t key;
        uint64_t last;
        bool pinned;
    };
    std::vector<Entry> held;
    std::map<int64_t, uint64_t> freq;
    uint64_t tick = 0, accesses = 0;
    std::map<int, std::pair<uint64_t, uint64_t>> per_layer;  // layer -> hits, misses

    void count(int64_t key) {
        if (!lfru) return;
        ++freq[key];
        if (++accesses % uint64_t(slots) == 0)
            for (auto& [k, f] : freq) f /= 2;
    }
    void layer(int il, const std::set<int>& experts, int n_expert) {
        std::vector<int> act(experts.begin(), experts.end());
        size_t i = 0;
        while (i < act.size()) {
            for (; i < act.size(); ++i) {
                const int64_t key = int64_t(il) * n_expert + act[i];
                auto it =
                    std::find_if(held.begin(), held.end(), [&](auto& e) { return e.key == key; });
                if (it != held.end()) {
                    ++per_layer[il].first;
                    count(key);
                } else {
                    if (int64_t(held.size()) < slots) {
                        held.push_back({key, 0, false});
                        it = held.end() - 1;
                    } else {
                        auto best = held.end();
                        for (auto e = held.begin(); e != held.end(); ++e) {
                            if (e->pinned) continue;
                            if (best == held.end()) {
                                best = e;
                                continue;
                            }
                            const uint64_t fe = lfru ? freq[e->key] : 0,
                                           fb = lfru ? freq[best->key] : 0;
                            if (fe < fb || (fe == fb && e->last < best->last)) best = e;
                        }
                        if (best == held.end()) break;  // all pinned: next window
                        it = best;
                        it->key = key;
                    }
                    ++per_layer[il].second;
                    count(key);
                }
                it->pinned = true;
                it->last = ++tick;
            }
            for (auto& e : held) e.pinned = false;
        }
    }
};

class CacheVsSimulation : public testing::TestWithParam<std::string> {};

// The demo MoE's trained routing, recorded by `run --routing-stats`, replayed through the
// simulation: every layer's hits and misses must match what the cache counted.
TEST_P(CacheVsSimulation, HitsAndMissesMatch) {
    const std::string policy = GetParam();
    const std::string out = test::temp_path("sim_" + policy + ".json");
    const auto r = test::run_moeinfer("run -m " + kDemo +
                                      " -n 40 -c 128 --temp 0 --cache-slots 12 --prefetch off "
                                      "--cache-policy " +
                                      policy + " --routing-stats " + out +
                                      " -p \"The little robot walked to the market and\"");
    ASSERT_EQ(r.code, 0) << r.err;
    std::ifstream f(out);
    const auto j = nlohmann::json::parse(f);
    std::filesystem::remove(out);
    ASSERT_TRUE(j.contains("cache")) << "routing stats without a cache object";
    const auto& c = j["cache"];
    EXPECT_EQ(c["policy"], policy);
    const int n_expert = j["model"]["n_expert"].get<int>();
    const int64_t n_prefill = j["tokens"]["prefill"].get<int64_t>();
    ASSERT_EQ(j["tokens"]["prefill_passes"].get<int>(), 1);
    ASSERT_FALSE(j["token_experts_truncated"].get<bool>());
    const auto& te = j["token_experts"];  // [token][moe layer][k]
    std::vector<int> layer_of;
    for (const auto& L : c["layers"]) layer_of.push_back(L["layer"].get<int>());

    CacheSim sim{c["slots"].get<int64_t>(), policy == "lfru", {}, {}, 0, 0, {}};
    auto pass = [&](size_t t0, size_t t1) {
        for (size_t l = 0; l < layer_of.size(); ++l) {
            std::set<int> s;
            for (size_t t = t0; t < t1; ++t)
                for (int e : te[t][l]) s.insert(e);
            sim.layer(layer_of[l], s, n_expert);
        }
    };
    pass(0, size_t(n_prefill));
    for (size_t t = size_t(n_prefill); t < te.size(); ++t) pass(t, t + 1);

    uint64_t misses = 0;
    for (const auto& L : c["layers"]) {
        const int il = L["layer"].get<int>();
        EXPECT_EQ(L["hits"].get<uint64_t>(), sim.per_layer[il].first) << "layer " << il;
        EXPECT_EQ(L["misses"].get<uint64_t>(), sim.per_layer[il].second) << "layer " << il;
        misses += sim.per_layer[il].second;
    }
    EXPECT_GT(misses, uint64_t(12)) << "the trace should make the cache evict";
    RecordProperty("hit_rate", std::to_string(c["total"]["hit_rate"].get<double>()));
}

INSTANTIATE_TEST_SUITE_P(Policies, CacheVsSimulation, testing::Values("lru", "lfru"));

}  // namespace
}  // namespace moe

namespace moe {
namespace {

// A synthetic OLMoE-shaped file ~3.5x the budget: the peak resident set (VmHWM, which counts the
// mapped file pages the process touched as well as its heap) stays under the budget.
TEST(ExpertCacheBudget, PeakRssStaysUnderBudget) {
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "ThreadSanitizer's shadow memory makes the measured resident set, and so the "
                    "minimum budget, vary by several hundred MiB between runs";
#endif
    const std::string dir = test::temp_path("budget");
    std::filesystem::create_directories(dir);
    const std::string file = dir + "/olmoe.gguf";
    auto s =
        test::run_moeinfer("synth --like olmoe-1b-7b --type q4_0 --layers 6 -q -t 2 -o " + file);
    ASSERT_EQ(s.code, 0) << s.err;
    // The minimum budget depends on the measured resident set (larger under ASan): ask for it with
    // a budget that is too small, then run just above it.
#if defined(__SANITIZE_ADDRESS__)
    const double margin_gib = 0.5, file_over_budget = 1.0;
#else
    const double margin_gib = 0.1, file_over_budget = 2.0;
#endif
    const std::string bench = "bench -m " + file + " -p 16 -n 8 -r 1 -t 2 --bw-mib 1 --mem-budget ";
    const auto small = test::run_moeinfer(bench + "0.01");
    ASSERT_NE(small.code, 0);
    const std::string min_key = "minimum of ";
    const size_t min_at = small.err.find(min_key);
    ASSERT_NE(min_at, std::string::npos) << small.err;
    const double budget_gib = std::stod(small.err.substr(min_at + min_key.size())) + margin_gib;
    const double file_gib = double(std::filesystem::file_size(file)) / double(1 << 30);
    EXPECT_GT(file_gib, file_over_budget * budget_gib);
    const auto r = test::run_moeinfer(bench + std::to_string(budget_gib));
    std::filesystem::remove_all(dir);
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string key = "peak memory (VmHWM): ";
    const size_t at = r.err.find(key);
    ASSERT_NE(at, std::string::npos) << r.err;
    const double peak_mib = std::stod(r.err.substr(at + key.size()));
    RecordProperty("peak_mib", std::to_string(peak_mib));
#if defined(__SANITIZE_ADDRESS__)
    // Sanitizer runtimes add shadow memory and keep freed blocks in quarantine, so the process's
    // peak is not the engine's (ASan: about 2% over). The budget is checked in the plain build.
    (void)peak_mib;
#else
    EXPECT_LT(peak_mib, budget_gib * 1024) << r.err;
#endif
    EXPECT_NE(r.out.find("cache hit"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace moe
