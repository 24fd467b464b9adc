// The top-k override's logits on every f32 MoE fixture against a reference whose routing is
// written here from each family's Hugging Face modeling code (config.json, model.safetensors),
// never from the engine's MoE block (route_token / score_experts / top_k are not called).
//
// How: the reference run is the same model with Model::route_override set, so the engine's
// selection is replaced, per MoE layer, by hf_select() below working in float64 from the router
// logits of that layer. The engine's own run (with_top_k, no override) must give the same logits.
//   Independent of the engine: scoring (softmax / sigmoid), the DeepSeek-V3 selection bias (read
//     from the safetensors, not the GGUF), the group limit, top-k, gpt-oss's softmax after top-k,
//     norm_topk_prob renormalisation, routed_scaling_factor.
//   Shared with the engine: what precedes and follows selection (the router matmul that makes the
//     logits, attention, each expert's products, the weighted sum, shared experts).
// The shared part is tied to Hugging Face at the native k: the logits the override receives equal
// the fixture's ref_router_logits.f32 on every MoE layer (where the HF class returns them), and
// the reference run's logits equal HF's float64 ref_logits.f32 on every family.
// Where the HF forward is cheap to write in float64 (the standard-attention families: Mixtral,
// Qwen2-MoE, Qwen3-MoE, OLMoE; tests/hf_moe_forward_f64.h), a second test shares nothing at all
// with the engine but the GGUF conversion of the weights.
// Beyond the native k, the group limit follows the engine's documented override rule
// (models/top_k.h: widened to ceil(k / experts per group) groups only when the kept ones hold
// fewer than k experts); HF has no rule of its own there.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <numeric>
#include <string>

#include "fixtures.h"
#include "formats/override_source.h"
#include "hf_moe_forward_f64.h"
#include "models/common/moe_block.h"
#include "models/top_k.h"
#include "runtime/session.h"
#include "safetensors_f64.h"

namespace moe {
namespace {

// One family's routing rule, as its Hugging Face class defines it.
struct HfRouting {
    enum class Score { Softmax, Sigmoid, SoftmaxAfterTopK } score = Score::Softmax;
    bool renorm = false;  // norm_topk_prob (Mixtral: always)
    double scale = 1.0;   // routed_scaling_factor
    int n_group = 1, topk_group = 1, experts = 0;
    std::map<int, std::vector<double>> bias;  // layer -> e_score_correction_bias
};

HfRouting hf_routing(const std::string& family, const nlohmann::json& cfg, const std::string& dir) {
    HfRouting r;
    r.experts =
        cfg.value("num_local_experts", cfg.value("num_experts", cfg.value("n_routed_experts", 0)));
    if (family == "gptoss") r.score = HfRouting::Score::SoftmaxAfterTopK;
    if (cfg.value("scoring_func", std::string("softmax")) == "sigmoid")
        r.score = HfRouting::Score::Sigmoid;
    r.renorm = family == "mixtral" || cfg.value("norm_topk_prob", false);
    r.scale = cfg.value("routed_scaling_factor", 1.0);
    if (cfg.value("topk_method", std::string()) == "noaux_tc") {
        r.n_group = cfg.value("n_group", 1);
        r.topk_group = cfg.value("topk_group", 1);
        const auto st = test::read_safetensors(dir + "/model.safetensors");
        for (int l = 0; l < cfg.value("num_hidden_layers", 0); ++l) {
            const std::string n =
                "model.layers." + std::to_string(l) + ".mlp.gate.e_score_correction_bias";
            if (st.t.count(n)) r.bias[l] = st.at(n);
        }
    }
    return r;
}

// Indices of v by decreasing value, ties to the lower index (a full stable sort).
std::vector<int> order_by_value(const std::vector<double>& v) {
    std::vector<int> o(v.size());
    std::iota(o.begin(), o.end(), 0);
    std::stable_sort(o.begin(), o.end(), [&](int a, int b) { return v[size_t(a)] > v[size_t(b)]; });
    return o;
}

// The k experts and weights of one token; *margin receives the gap that decides the choice (the
// k-th minus the (k+1)-th selection value, or the kept minus the first dropped group score).
// dropped: the selection value of experts outside the kept groups (0.0: transformers before
// #45441).
void hf_select(const HfRouting& r, int layer, const float* logits, int k, int32_t* ids,
               float* weights, double* margin, double dropped = -INFINITY) {
    const int E = r.experts;
    std::vector<double> s(logits, logits + E);
    if (r.score == HfRouting::Score::Softmax) {
        const double mx = *std::max_element(s.begin(), s.end());
        double z = 0;
        for (auto& x : s) z += (x = std::exp(x - mx));
        for (auto& x : s) x /= z;
    } else if (r.score == HfRouting::Score::Sigmoid) {
        for (auto& x : s) x = 1.0 / (1.0 + std::exp(-x));
    }
    std::vector<double> choice = s;  // gpt-oss ranks the raw logits
    if (r.bias.count(layer))
        for (int e = 0; e < E; ++e) choice[size_t(e)] += r.bias.at(layer)[size_t(e)];
    *margin = INFINITY;
    if (r.n_group > 1) {  // noaux_tc: a group's score is the sum of its two best
        const int per = E / r.n_group, keep = std::max(r.topk_group, (k + per - 1) / per);
        std::vector<double> gs(static_cast<size_t>(r.n_group));
        for (int g = 0; g < r.n_group; ++g) {
            std::vector<double> v(choice.begin() + g * per, choice.begin() + (g + 1) * per);
            std::sort(v.rbegin(), v.rend());
            gs[size_t(g)] = v[0] + (per > 1 ? v[1] : 0.0);
        }
        const auto go = order_by_value(gs);
        if (keep < r.n_group)
            *margin = gs[size_t(go[size_t(keep - 1)])] - gs[size_t(go[size_t(keep)])];
        // Experts of the dropped groups can never be chosen (-inf, as HF since transformers#45441).
        for (int j = keep; j < r.n_group; ++j)
            for (int e = go[size_t(j)] * per; e < (go[size_t(j)] + 1) * per; ++e)
                choice[size_t(e)] = dropped;
    }
    const auto o = order_by_value(choice);
    if (k < E && std::isfinite(choice[size_t(o[size_t(k)])]))
        *margin =
            std::min(*margin, choice[size_t(o[size_t(k - 1)])] - choice[size_t(o[size_t(k)])]);
    std::vector<double> w(static_cast<size_t>(k));
    for (int j = 0; j < k; ++j)
        w[size_t(j)] = r.score == HfRouting::Score::SoftmaxAfterTopK ? logits[o[size_t(j)]]
                                                                     : s[size_t(o[size_t(j)])];
    if (r.score == HfRouting::Score::SoftmaxAfterTopK) {  // softmax over the k chosen logits
        const double mx = *std::max_element(w.begin(), w.end());
        double z = 0;
        for (auto& x : w) z += (x = std::exp(x - mx));
        for (auto& x : w) x /= z;
    }
    if (r.renorm) {
        const double z = std::accumulate(w.begin(), w.end(), 0.0) + 1e-20;
        for (auto& x : w) x /= z;
    }
    for (int j = 0; j < k; ++j) {
        ids[j] = o[size_t(j)];
        weights[j] = float(w[size_t(j)] * r.scale);
    }
}

std::vector<float> run(const Model& m, const std::vector<int32_t>& ids) {
    SessionOptions so;
    so.n_ctx = 64;
    so.n_threads = 2;
    auto sess = Session::create(m, so);
    EXPECT_TRUE(sess) << sess.message();
    if (!sess) return {};
    auto got = (*sess)->eval_tokens(ids, true);
    EXPECT_TRUE(got) << got.message();
    return got ? *got : std::vector<float>{};
}

TEST(TopKReference, OverrideLogitsMatchHfRoutingOnEveryFamily) {
    for (const std::string family :
         {"mixtral", "qwen2moe", "qwen3moe", "olmoe", "deepseek2", "deepseek3", "gptoss"}) {
        const std::string dir = test::model_dir(family);
        std::ifstream cf(dir + "/config.json");
        const auto cfg = nlohmann::json::parse(cf);
        const HfRouting rule = hf_routing(family, cfg, dir);
        const auto ref = test::load_ref(family);
        const std::vector<int32_t> ids = ref["tokens"].get<std::vector<int32_t>>();
        const int64_t T = int64_t(ids.size());
        const auto hf_logits = test::read_f32(dir + "/ref_logits.f32");
        const auto hf_router = test::read_f32(dir + "/ref_router_logits.f32");  // [L_moe, T, E]
        // OLMoE's GGUF carries the converter's rms_eps 1e-5 where the model used 1e-6
        // (docs/accuracy.md): corrected as `--override-kv` does.
        std::vector<std::string> kv;
        if (family == "olmoe") kv = {"olmoe.attention.layer_norm_rms_epsilon=float:1e-6"};
        auto src = open_model_source(test::gguf_path(family, "f32"), kv);
        ASSERT_TRUE(src) << family << ": " << src.message();
        auto base = load_model(*src);
        ASSERT_TRUE(base) << family << ": " << base.message();
        const int E = rule.experts, native = cfg.value("num_experts_per_tok", 0);
        ASSERT_EQ((*base)->config.moe.n_expert, E) << family;
        ASSERT_EQ(native_top_k((*base)->config.moe), native) << family;

        std::vector<int> ks = {1, native - 1, native, native + 1, E};
        std::erase_if(ks, [&](int k) { return k < 1 || k > E; });
        std::sort(ks.begin(), ks.end());
        ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
        for (int k : ks) {
            auto engine = with_top_k(**base, k);
            ASSERT_TRUE(engine) << engine.message();
            const auto got = run(**engine, ids);

            auto hf = with_top_k(**base, k);
            ASSERT_TRUE(hf) << hf.message();
            std::vector<float> seen;  // router logits handed to the override, MoE layer order
            double min_margin = INFINITY;
            (*hf)->route_override = [&](int layer, int64_t n, const float* lg, int32_t* sel,
                                        float* w) {
                seen.insert(seen.end(), lg, lg + n * E);
                for (int64_t t = 0; t < n; ++t) {
                    double margin = 0;
                    hf_select(rule, layer, lg + t * E, k, sel + t * k, w + t * k, &margin);
                    min_margin = std::min(min_margin, margin);
                }
            };
            const auto want = run(**hf, ids);
            ASSERT_EQ(got.size(), size_t(T) * size_t(cfg.value("vocab_size", 0))) << family;
            ASSERT_EQ(want.size(), got.size()) << family;
            ASSERT_EQ(seen.size(), size_t((*base)->config.n_moe_layers() * T * E)) << family;
            const double mr = test::max_rel(got, want), rr = test::rms_rel(got, want);
            std::printf(
                "  %-9s k=%d: engine vs HF-routing reference max_rel %.2e rms_rel %.2e "
                "(smallest decision margin %.1e)\n",
                family.c_str(), k, mr, rr, min_margin);
            RecordProperty(family + "_k" + std::to_string(k) + "_max_rel", std::to_string(mr));
            // A miss with a tiny margin would be a near-tie flipped by rounding (float vs double
            // selection); the fixtures route decisively, so it would be news either way.
            EXPECT_LT(mr, 1e-6) << family << " k=" << k << ", smallest margin " << min_margin;
            if (k == native) {  // the shared part against Hugging Face itself
                if (!hf_router.empty()) {
                    ASSERT_EQ(hf_router.size(), seen.size()) << family;
                    EXPECT_LT(test::max_rel(seen, hf_router), 1e-5) << family;
                }
                const double hr = test::max_rel(want, hf_logits);
                std::printf("  %-9s k=%d: reference vs HF float64 logits max_rel %.2e%s\n",
                            family.c_str(), k, hr,
                            hf_router.empty() ? "" : ", router logits checked on every layer");
                EXPECT_LT(hr, 2e-6) << family;
            }
        }
    }
}

// The engine's override against a float64 Hugging Face forward written in the test (nothing from
// the engine), itself checked against HF's float64 logits at the native k.
TEST(TopKReference, OverrideMatchesFloat64HfForward) {
    for (const std::string family : {"mixtral", "qwen2moe", "qwen3moe", "olmoe"}) {
        const std::string dir = test::model_dir(family);
        const auto w = test::read_safetensors(dir + "/model.safetensors");
        std::ifstream cf(dir + "/config.json");
        const auto cfg = nlohmann::json::parse(cf);
        const std::vector<int> tokens = test::load_ref(family)["tokens"].get<std::vector<int>>();
        const int native = cfg["num_experts_per_tok"];
        const auto at_native = test::hf_moe_forward(family, w, cfg, tokens, native);
        const double self = test::max_rel(at_native, test::read_f32(dir + "/ref_logits.f32"));
        std::printf("  %-9s float64 forward vs HF float64 logits: max_rel %.2e\n", family.c_str(),
                    self);
        ASSERT_LT(self, 1e-6) << family;

        std::vector<std::string> kv;  // OLMoE's converter eps, as in the test above
        if (family == "olmoe") kv = {"olmoe.attention.layer_norm_rms_epsilon=float:1e-6"};
        auto src = open_model_source(test::gguf_path(family, "f32"), kv);
        ASSERT_TRUE(src) << family << ": " << src.message();
        auto base = load_model(*src);
        ASSERT_TRUE(base) << family << ": " << base.message();
        const std::vector<int32_t> ids(tokens.begin(), tokens.end());
        const int E = (*base)->config.moe.n_expert;
        std::vector<float> first;
        for (int k : {1, native + 1, E}) {
            auto m = with_top_k(**base, k);
            ASSERT_TRUE(m) << m.message();
            const auto got = run(**m, ids);
            const auto want = test::hf_moe_forward(family, w, cfg, tokens, k);
            const double mr = test::max_rel(got, want);
            std::printf("  %-9s k=%d: engine vs float64 HF forward max_rel %.2e\n", family.c_str(),
                        k, mr);
            RecordProperty(family + "_f64_k" + std::to_string(k) + "_max_rel", std::to_string(mr));
            EXPECT_LT(mr, 2e-6) << family << " k=" << k;
            if (first.empty())
                first = want;
            else
                EXPECT_GT(test::rms_rel(first, want), 1e-3) << family << ": k changes nothing";
        }
    }
}

// The fixture's e_score_correction_bias is all zero. Here the same DeepSeek-V3 model gets a
// selection bias that makes many kept experts' score + bias negative, in the engine's run and in
// the reference alike, so the bias and the group mask are exercised in the full logits; the test
// also counts the tokens where the old 0.0 fill would have chosen other experts.
TEST(TopKReference, DeepSeekV3NegativeBiasFullLogits) {
    const std::string dir = test::model_dir("deepseek3");
    std::ifstream cf(dir + "/config.json");
    const auto cfg = nlohmann::json::parse(cf);
    HfRouting rule = hf_routing("deepseek3", cfg, dir);
    const std::vector<int32_t> ids =
        test::load_ref("deepseek3")["tokens"].get<std::vector<int32_t>>();
    auto base = load_model(test::gguf_path("deepseek3", "f32"));
    ASSERT_TRUE(base) << base.message();
    const int E = rule.experts;
    const std::vector<float> bias = {-0.2f, -0.9f, 0.1f, -0.7f, -0.95f, 0.3f, -0.5f, -0.6f};
    ASSERT_EQ(int(bias.size()), E);
    for (int l = 0; l < (*base)->config.n_layer; ++l)
        if ((*base)->config.is_moe[size_t(l)]) rule.bias[l].assign(bias.begin(), bias.end());
    int zero_fill_differs = 0;
    for (int k : {2, 3}) {
        std::vector<float> logits[2];
        for (int pass = 0; pass < 2; ++pass) {  // 0: the engine's routing, 1: the reference
            auto m = with_top_k(**base, k);
            ASSERT_TRUE(m) << m.message();
            for (auto& L : (*m)->layers)
                if (L.is_moe) {
                    ASSERT_FALSE(L.moe.selection_bias.empty());
                    L.moe.selection_bias = F32Vec{bias.data(), int64_t(bias.size())};
                }
            if (pass == 1)
                (*m)->route_override = [&](int layer, int64_t n, const float* lg, int32_t* sel,
                                           float* w) {
                    for (int64_t t = 0; t < n; ++t) {
                        double margin = 0;
                        hf_select(rule, layer, lg + t * E, k, sel + t * k, w + t * k, &margin);
                        std::vector<int32_t> a(sel + t * k, sel + t * k + k),
                            b(static_cast<size_t>(k));
                        std::vector<float> wb(static_cast<size_t>(k));
                        hf_select(rule, layer, lg + t * E, k, b.data(), wb.data(), &margin, 0.0);
                        std::sort(a.begin(), a.end());
                        std::sort(b.begin(), b.end());
                        zero_fill_differs += a != b;
                    }
                };
            logits[pass] = run(**m, ids);
        }
        const double mr = test::max_rel(logits[0], logits[1]);
        std::printf("  deepseek3 negative bias k=%d: engine vs HF-routing reference max_rel %.2e\n",
                    k, mr);
        EXPECT_LT(mr, 1e-6) << "k=" << k;
    }
    std::printf("  token-layer decisions where a 0.0 fill would choose otherwise: %d\n",
                zero_fill_differs);
    EXPECT_GT(zero_fill_differs, 0) << "the bias does not exercise the mask";
}

// DeepSeek-V3 group masking, on hand-built router logits. Experts outside the kept groups are
// excluded outright (-inf), as DeepSeek's inference code, its Hub modeling code since
// DeepSeek-V3-0324, transformers since #45441 and the upstream engine do. (transformers before that
// filled them with 0.0, which lets a dropped expert beat a kept one whose score + bias is
// negative.) The fixture's e_score_correction_bias is all zero, so sigmoid scores (> 0) cannot show
// it.
TEST(TopKReference, DeepSeekV3DroppedGroupsNeverChosen) {
    MoeConfig c;
    c.n_expert = 8, c.n_expert_used = 4;
    c.gating = Gating::Sigmoid;
    c.norm_topk = true, c.weights_scale = 2.5f;
    c.n_group = 4, c.n_group_used = 2;
    c.group_score = GroupScore::Top2Sum;
    const float logits[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // every score sigmoid(0) = 0.5
    // choice = 0.5 + bias: group 0 {1.5, 1.5} -> 3.0, group 1 {-0.1, -0.2} -> -0.3,
    // group 2 {-1.5, -1.5} -> -3.0, group 3 {-2.5, -2.5} -> -5.0: groups 0 and 1 are kept.
    const float bias_v[8] = {1.0f, 1.0f, -0.6f, -0.7f, -2.0f, -2.0f, -3.0f, -3.0f};
    const F32Vec bias{bias_v, 8};
    int32_t ids[4];
    float w[4];
    route_token(c, logits, bias, ids, w);
    std::vector<int32_t> got(ids, ids + 4);
    std::sort(got.begin(), got.end());
    // -inf: the four experts of groups 0 and 1. (0.0 would give {0, 1, 4, 5}.)
    EXPECT_EQ(got, (std::vector<int32_t>{0, 1, 2, 3}));
    for (float x : w) EXPECT_FLOAT_EQ(x, 2.5f * 0.5f / 2.0f);  // unbiased 0.5 each, renormalised
    const auto sel = selection_values(c, logits, bias);
    for (int e = 4; e < 8; ++e) EXPECT_EQ(sel[size_t(e)], -INFINITY) << e;
    EXPECT_FLOAT_EQ(sel[2], -0.1f);
    // k = 3 within the kept groups: expert 3 (-0.2) is the one left out, not a dropped one.
    c.n_expert_used = 3;
    route_token(c, logits, bias, ids, w);
    got.assign(ids, ids + 3);
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, (std::vector<int32_t>{0, 1, 2}));
}

}  // namespace
}  // namespace moe
