// Routing statistics: counts from the engine's routing must equal the counts derived here, on
// our own, from the Hugging Face router logits; hand-made traces check the derived measures.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>

#include "analysis/routing_stats.h"
#include "fixtures.h"
#include "runtime/session.h"

namespace moe {
namespace {

// Indices of the k largest values (HF's torch.topk on softmax scores = top-k of the logits, as
// softmax is monotonic; ties go to the lower index).
std::vector<int> top_k(const float* v, int n, int k) {
    std::vector<int> idx(static_cast<size_t>(n));
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return v[a] > v[b]; });
    idx.resize(size_t(k));
    return idx;
}

int hf_top_k(const nlohmann::json& cfg) {
    return cfg.contains("num_experts_per_tok") ? cfg["num_experts_per_tok"].get<int>()
                                               : cfg["experts_per_token"].get<int>();
}

class RoutingStatsFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(RoutingStatsFixture, CountsMatchTopKOfReferenceRouterLogits) {
    const std::string name = GetParam();
    const auto ref = test::load_ref(name);
    std::ifstream cf(test::model_dir(name) + "/config.json");
    const auto cfg = nlohmann::json::parse(cf);
    const int k = hf_top_k(cfg);
    const auto rl = test::read_f32(test::model_dir(name) + "/ref_router_logits.f32");
    const std::vector<int32_t> tokens = ref["tokens"].get<std::vector<int32_t>>();
    const int T = int(tokens.size());
    const int n_layers = cfg["num_hidden_layers"].get<int>();
    ASSERT_EQ(rl.size() % size_t(n_layers * T), 0u);
    const int n_exp = int(rl.size() / size_t(n_layers * T));

    // Expected counts, independently of the engine.
    std::vector<std::vector<int64_t>> want(size_t(n_layers),
                                           std::vector<int64_t>(size_t(n_exp), 0));
    for (int l = 0; l < n_layers; ++l)
        for (int t = 0; t < T; ++t)
            for (int e : top_k(rl.data() + (size_t(l) * T + size_t(t)) * size_t(n_exp), n_exp, k))
                ++want[size_t(l)][size_t(e)];

    auto model = load_model(test::gguf_path(name, "f32"));
    ASSERT_TRUE(model) << model.message();
    const Model& m = **model;
    ASSERT_EQ(m.config.n_moe_layers(), n_layers);
    ASSERT_EQ(m.config.moe.n_expert, n_exp);
    ASSERT_EQ(m.config.moe.n_expert_used, k);

    for (int n_batch : {512, 5}) {
        SessionOptions so;
        so.n_threads = 2;
        so.n_batch = n_batch;
        Session s(m, so);
        RouterTrace trace;
        auto r = s.eval_tokens(tokens, false, 0, &trace);
        ASSERT_TRUE(r) << r.message();
        RoutingStats rs(m);
        auto a = rs.add_eval_tokens(trace, T, n_batch, RoutingPhase::Prefill);
        ASSERT_TRUE(a) << a.message();
        EXPECT_EQ(rs.counts(), want) << name << " n_batch " << n_batch;
        const auto j = rs.to_json();
        EXPECT_EQ(j["tokens"]["prefill"].get<int>(), T);
        EXPECT_EQ(j["tokens"]["prefill_passes"].get<int>(), (T + n_batch - 1) / n_batch);
        for (int l = 0; l < n_layers; ++l)
            EXPECT_EQ(j["layers"][size_t(l)]["counts"].get<std::vector<int64_t>>(),
                      want[size_t(l)]);
        if (n_batch == 512) {
            // The engine's router logits (gpt-oss: bias added) are HF's router logits: HF's
            // GptOssTopKRouter returns linear(x, W, b), bias included. (1e-3: the OLMoE GGUF's
            // rms_eps differs from the reference's, see README "Accuracy".)
            EXPECT_LT(test::max_rel(trace.logits, rl), 1e-3) << name;
            if (name == "gptoss") {
                const auto& b = m.layers[0].moe.router_b;
                ASSERT_FALSE(b.empty());
                float mx = 0;
                for (int64_t e = 0; e < b.n; ++e) mx = std::max(mx, std::abs(b.p[e]));
                EXPECT_GT(mx, 1e-3f)
                    << "the fixture's router bias is non-zero, so the check means something";
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Families, RoutingStatsFixture,
                         ::testing::Values("mixtral", "qwen2moe", "qwen3moe", "olmoe", "gptoss"));

TEST(RoutingStats, ParamsAndBytesPerToken) {
    auto model = load_model(test::gguf_path("mixtral", "f32"));
    ASSERT_TRUE(model) << model.message();
    const Model& m = **model;
    const WeightTable wt = weight_table(m);
    const auto ref = test::load_ref("mixtral");
    EXPECT_EQ(wt.total_params, ref["n_params"].get<int64_t>());
    // f32: 4 bytes per parameter everywhere.
    EXPECT_EQ(wt.total_bytes, wt.total_params * 4);
    // Mixtral fixture: experts [8, 64, 128] x3 per layer, 2 layers.
    ASSERT_EQ(wt.expert_params.size(), 2u);
    EXPECT_EQ(wt.expert_params[0], 3 * 64 * 128);
    EXPECT_EQ(wt.non_routed_params + 2 * 8 * 3 * 64 * 128, wt.total_params);
    EXPECT_EQ(wt.active_params(), wt.non_routed_params + 2 * 2 * 3 * 64 * 128);
    EXPECT_EQ(wt.embd_row_bytes, 128 * 4);

    SessionOptions so;
    so.n_threads = 2;
    Session s(m, so);
    const std::vector<int32_t> prompt = {1, 5, 9, 13};
    RoutingStats rs(m);
    RouterTrace tr;
    ASSERT_TRUE(s.eval_tokens(prompt, false, 0, &tr));
    ASSERT_TRUE(rs.add_eval_tokens(tr, 4, 512, RoutingPhase::Prefill));
    const int32_t one[1] = {7};
    RouterTrace tr1;
    ASSERT_TRUE(s.eval_tokens(one, false, 0, &tr1));
    ASSERT_TRUE(rs.add_pass(tr1, RoutingPhase::Decode));
    const auto j = rs.to_json();
    const auto& w = j["weights"];
    // One decode token reads the non-routed weights, one embedding row and k experts per layer.
    const double decode = double(wt.pass_bytes + wt.embd_row_bytes + 2 * 2 * wt.expert_bytes[0]);
    EXPECT_DOUBLE_EQ(w["bytes_per_token_decode"].get<double>(), decode);
    // Prefill: distinct experts per layer over the batch, shared by its 4 tokens.
    int64_t prefill = wt.pass_bytes + 4 * wt.embd_row_bytes;
    for (int l = 0; l < 2; ++l) {
        std::vector<int> seen;
        for (int t = 0; t < 4; ++t)
            for (int j2 = 0; j2 < 2; ++j2)
                seen.push_back(tr.selected[size_t((l * 4 + t) * 2 + j2)]);
        std::sort(seen.begin(), seen.end());
        seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
        prefill += int64_t(seen.size()) * wt.expert_bytes[size_t(l)];
        EXPECT_DOUBLE_EQ(j["layers"][size_t(l)]["mean_distinct_prefill"].get<double>(),
                         double(seen.size()));
        EXPECT_DOUBLE_EQ(j["layers"][size_t(l)]["mean_distinct_decode"].get<double>(), 2.0);
    }
    EXPECT_DOUBLE_EQ(w["bytes_per_token_prefill"].get<double>(), double(prefill) / 4);
    EXPECT_DOUBLE_EQ(w["active_params_measured"].get<double>(), double(wt.active_params()));
    EXPECT_EQ(j["tokens"]["decode"].get<int>(), 1);
    EXPECT_EQ(j["tokens"]["total"].get<int>(), 5);
}

// Two MoE layers, 4 experts, top-2, 4 tokens.
RouterTrace hand_trace() {
    RouterTrace t;
    t.n_expert = 4;
    t.n_expert_used = 2;
    // Layer 0: uniform logits; layer 1: experts 2 and 3 far ahead, tied.
    t.logits.assign(32, 0.0f);
    for (int i = 0; i < 4; ++i)
        t.logits[size_t(16 + 4 * i + 2)] = t.logits[size_t(16 + 4 * i + 3)] = 100;
    t.selected = std::vector<int32_t>{0, 1, 1, 0, 0, 2, 3, 0,   // layer 0
                                      2, 3, 3, 2, 2, 3, 2, 3};  // layer 1
    t.weights.assign(t.selected.size(), 0.5f);
    return t;
}

TEST(RoutingStats, HandMadeTraceMeasures) {
    RoutingStats rs(2, 4, 2, Gating::Softmax);
    ASSERT_TRUE(rs.add_pass(hand_trace(), RoutingPhase::Prefill));
    const auto j = rs.to_json();
    const auto& L0 = j["layers"][0];
    const auto& L1 = j["layers"][1];
    EXPECT_EQ(L0["counts"].get<std::vector<int64_t>>(), (std::vector<int64_t>{4, 2, 1, 1}));
    EXPECT_EQ(L1["counts"].get<std::vector<int64_t>>(), (std::vector<int64_t>{0, 0, 4, 4}));
    // Layer 0: mean 2, max 4; variance (4+0+1+1)/4 = 1.5.
    EXPECT_DOUBLE_EQ(L0["max_over_mean"].get<double>(), 2.0);
    EXPECT_NEAR(L0["cv"].get<double>(), std::sqrt(1.5) / 2, 1e-12);
    EXPECT_NEAR(L0["load_entropy_bits"].get<double>(), 1.75, 1e-12);  // shares 1/2 1/4 1/8 1/8
    EXPECT_NEAR(L0["token_entropy_bits"].get<double>(), 2.0, 1e-12);  // uniform over 4
    EXPECT_NEAR(L0["mean_dist_entropy_bits"].get<double>(), 2.0, 1e-12);
    EXPECT_NEAR(L0["load_entropy_norm"].get<double>(), 0.875, 1e-12);
    EXPECT_DOUBLE_EQ(L0["load_share"][0].get<double>(), 0.5);
    // Layer 1: counts 0 0 4 4: max/mean 2, std 2, CV 1; each token's scores are 1/2 on 2 and 3.
    EXPECT_DOUBLE_EQ(L1["max_over_mean"].get<double>(), 2.0);
    EXPECT_NEAR(L1["cv"].get<double>(), 1.0, 1e-12);
    EXPECT_NEAR(L1["load_entropy_bits"].get<double>(), 1.0, 1e-12);
    EXPECT_NEAR(L1["token_entropy_bits"].get<double>(), 1.0, 1e-9);
    // Pairs: (0,1) twice, then (0,2) and (0,3) once; layer 1 only (2,3).
    const auto& p0 = L0["top_pairs"];
    ASSERT_EQ(p0.size(), 3u);
    EXPECT_EQ(p0[0]["a"], 0);
    EXPECT_EQ(p0[0]["b"], 1);
    EXPECT_EQ(p0[0]["count"], 2);
    EXPECT_DOUBLE_EQ(p0[0]["share"].get<double>(), 0.5);
    EXPECT_EQ(p0[1]["b"], 2);
    EXPECT_EQ(p0[2]["b"], 3);
    ASSERT_EQ(L1["top_pairs"].size(), 1u);
    EXPECT_EQ(L1["top_pairs"][0]["count"], 4);
    EXPECT_DOUBLE_EQ(j["summary"]["mean_max_over_mean"].get<double>(), 2.0);
    EXPECT_DOUBLE_EQ(L0["mean_distinct_prefill"].get<double>(), 4.0);
    EXPECT_DOUBLE_EQ(L1["mean_distinct_prefill"].get<double>(), 2.0);
}

// token_experts lists each token's choices per layer in trace order (layer-major in the trace).
TEST(RoutingStats, TokenExpertsFollowTheTrace) {
    RoutingStats rs(2, 4, 2, Gating::Softmax);
    ASSERT_TRUE(rs.add_pass(hand_trace(), RoutingPhase::Prefill));
    RouterTrace one = hand_trace();  // a decode pass of one token: its first row
    one.selected = {1, 0, 3, 2};
    one.logits.clear();
    ASSERT_TRUE(rs.add_pass(one, RoutingPhase::Decode));
    const auto te = rs.to_json()["token_experts"];
    using V = std::vector<std::vector<int32_t>>;
    ASSERT_EQ(te.size(), 5u);
    EXPECT_EQ(te[0].get<V>(), (V{{0, 1}, {2, 3}}));
    EXPECT_EQ(te[1].get<V>(), (V{{1, 0}, {3, 2}}));
    EXPECT_EQ(te[2].get<V>(), (V{{0, 2}, {2, 3}}));
    EXPECT_EQ(te[3].get<V>(), (V{{3, 0}, {2, 3}}));
    EXPECT_EQ(te[4].get<V>(), (V{{1, 0}, {3, 2}}));
    EXPECT_FALSE(rs.to_json()["token_experts_truncated"].get<bool>());
}

TEST(RoutingStats, TopTenPairsAndSigmoidEntropy) {
    // 8 experts, top-3: each token selects {0, 1, e}; pairs (0,1) dominates.
    RoutingStats rs(1, 8, 3, Gating::Sigmoid);
    RouterTrace t;
    t.n_expert = 8;
    t.n_expert_used = 3;
    for (int i = 0; i < 12; ++i) {
        const int e = 2 + i % 6;
        t.selected.insert(t.selected.end(), {0, 1, e});
        for (int x = 0; x < 8; ++x) t.logits.push_back(0.0f);  // sigmoid(0) everywhere: uniform
    }
    ASSERT_TRUE(rs.add_pass(t, RoutingPhase::Decode));
    const auto j = rs.to_json();
    const auto& L = j["layers"][0];
    const auto& p = L["top_pairs"];
    ASSERT_EQ(p.size(), 10u);  // 1 + 6 + 6 = 13 distinct pairs, top 10 kept
    EXPECT_EQ(p[0]["count"], 12);
    EXPECT_EQ(p[1]["count"], 2);
    EXPECT_NEAR(L["token_entropy_bits"].get<double>(), 3.0, 1e-12);
    EXPECT_EQ(j["model"]["gating"], "sigmoid");
    EXPECT_EQ(j["tokens"]["decode"], 12);
}

TEST(RoutingStats, RejectsMalformedTraces) {
    RoutingStats rs(2, 4, 2, Gating::Softmax);
    RouterTrace t = hand_trace();
    t.selected.pop_back();
    EXPECT_FALSE(rs.add_pass(t, RoutingPhase::Prefill));
    RouterTrace u = hand_trace();
    u.n_expert = 5;
    EXPECT_FALSE(rs.add_pass(u, RoutingPhase::Prefill));
    RouterTrace v = hand_trace();
    v.logits.resize(3);
    EXPECT_FALSE(rs.add_pass(v, RoutingPhase::Prefill));
    EXPECT_FALSE(rs.add_eval_tokens(hand_trace(), 5, 2, RoutingPhase::Prefill));
    // A dense model (no MoE layers) accepts empty traces and counts the tokens.
    RoutingStats dense(0, 0, 0, Gating::Softmax);
    EXPECT_TRUE(dense.add_pass(RouterTrace{}, RoutingPhase::Decode));
    EXPECT_TRUE(dense.add_eval_tokens(RouterTrace{}, 3, 2, RoutingPhase::Prefill));
    EXPECT_EQ(dense.n_tokens(), 3);
    EXPECT_EQ(dense.to_json()["tokens"]["prefill_passes"], 2);
}

TEST(RoutingStats, JsonRoundTrip) {
    RoutingStats rs(2, 4, 2, Gating::Softmax);
    ASSERT_TRUE(rs.add_pass(hand_trace(), RoutingPhase::Prefill));
    const std::string path = ::testing::TempDir() + "/moeinfer_routing_stats.json";
    ASSERT_TRUE(rs.write_json(path));
    auto j = read_routing_stats(path);
    ASSERT_TRUE(j) << j.message();
    EXPECT_EQ((*j)["layers"].size(), 2u);
    {
        std::ofstream f(path);
        f << "{\"format\": \"something else\"}";
    }
    EXPECT_FALSE(read_routing_stats(path));
    EXPECT_FALSE(read_routing_stats("/nonexistent/x.json"));
}

}  // namespace
}  // namespace moe
