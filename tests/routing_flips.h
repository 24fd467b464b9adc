// Routing flips: tokens whose expert choice in a model under test differs from a reference
// routing, and whether that model's own router error explains each one (a near-tie that any
// rounding change can flip). Shared by test_families and test_fast_paths, so that exemptions
// come from measured margins, never from a list of token indices.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "fixtures.h"
#include "models/common/moe_block.h"
#include "models/model.h"
#include "runtime/session.h"

namespace moe::test {

// Logits [T, n_vocab] and routing of one evaluation of all of `toks`.
struct Eval {
    std::vector<float> logits;
    RouterTrace trace;
};

inline Eval evaluate(const Model& m, const std::vector<int32_t>& toks) {
    SessionOptions so;
    so.n_threads = 2;
    so.n_ctx = 64;
    Session s(m, so);
    Eval e;
    auto r = s.eval_tokens(toks, true, 0, &e.trace);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.message());
    if (r.ok()) e.logits = std::move(*r);
    return e;
}

// Index of the layer that is the `moe_layer`-th MoE layer of m.
inline int layer_of_moe(const Model& m, int moe_layer) {
    for (int l = 0, seen = -1; l < m.config.n_layer; ++l)
        if (m.config.is_moe[size_t(l)] && ++seen == moe_layer) return l;
    return -1;
}

// A routing flip is explained by the file's own precision when the reference's selection margin
// (k-th minus (k+1)-th selection value) is less than twice the largest change the file makes to
// any selection value of that token and layer: two competitors can move in opposite directions
// by that much. `m` supplies the routing rule (config, selection bias).
inline bool flip_explained(const Model& m, int moe_layer, const float* logits_ref,
                           const float* logits_q) {
    const auto& c = m.config.moe;
    const auto& bias = m.layers[size_t(layer_of_moe(m, moe_layer))].moe.selection_bias;
    const float margin = selection_margin(c, logits_ref, bias);
    const auto sr = selection_values(c, logits_ref, bias), sq = selection_values(c, logits_q, bias);
    float moved = 0;
    for (size_t e = 0; e < sr.size(); ++e)
        if (std::isfinite(sr[e]) && std::isfinite(sq[e]))
            moved = std::max(moved, std::abs(sr[e] - sq[e]));
    return margin < 2 * moved;
}

// Router logits [n_moe_layers, T, n_expert] and the experts chosen [n_moe_layers, T, k].
struct Routing {
    std::vector<float> logits;
    std::vector<int32_t> selected;
};

// The reference routing of fixture `name` on `toks`: the f32 GGUF's (which matches Hugging Face's
// router logits to ~1e-6, test_families RouterLogits) when there is one, else Hugging Face's
// router logits routed by m's rule. Empty when the fixture has neither.
inline Routing reference_routing(const std::string& name, const Model& m,
                                 const std::vector<int32_t>& toks) {
    Routing r;
    if (std::filesystem::exists(gguf_path(name, "f32"))) {
        auto f = load_model(gguf_path(name, "f32"));
        EXPECT_TRUE(f.ok()) << (f.ok() ? "" : f.message());
        if (!f.ok()) return r;
        Eval e = evaluate(**f, toks);
        return {std::move(e.trace.logits), std::move(e.trace.selected)};
    }
    const std::string hf = model_dir(name) + "/ref_router_logits.f32";
    if (!std::filesystem::exists(hf)) return r;
    r.logits = read_f32(hf);
    const int E = m.config.moe.n_expert, k = m.config.moe.n_expert_used;
    const size_t rows = r.logits.size() / size_t(E);
    r.selected.resize(rows * size_t(k));
    std::vector<float> weights(static_cast<size_t>(k));
    const int T = int(toks.size());
    for (size_t row = 0; row < rows; ++row) {
        const int il = layer_of_moe(m, int(row / size_t(T)));
        route_token(m.config.moe, r.logits.data() + row * size_t(E),
                    m.layers[size_t(il)].moe.selection_bias, r.selected.data() + row * size_t(k),
                    weights.data());
    }
    return r;
}

struct RoutingFlips {
    std::vector<uint8_t> flipped, explained;  // [T]
    int n_flipped = 0, first_flip = 0;        // first_flip: T when none
};

// Compares the routing of `got` (a trace of m) with `ref` token by token. A token is flipped when
// any MoE layer chose another set of experts; explained when flip_explained holds there.
inline RoutingFlips find_flips(const Model& m, const RouterTrace& got, const Routing& ref, int T) {
    RoutingFlips f;
    f.flipped.assign(size_t(T), 0);
    f.explained.assign(size_t(T), 1);
    f.first_flip = T;
    const int k = got.n_expert_used, E = got.n_expert, n_moe = m.config.n_moe_layers();
    if (ref.selected.size() != got.selected.size() || ref.logits.size() != got.logits.size()) {
        ADD_FAILURE() << "reference routing has another shape than the model's";
        f.explained.assign(size_t(T), 0);
        return f;
    }
    for (int t = 0; t < T; ++t)
        for (int l = 0; l < n_moe && !f.flipped[size_t(t)]; ++l) {
            const size_t o = (size_t(l) * size_t(T) + size_t(t)) * size_t(k);
            const std::set<int32_t> a(got.selected.begin() + long(o),
                                      got.selected.begin() + long(o + size_t(k)));
            const std::set<int32_t> b(ref.selected.begin() + long(o),
                                      ref.selected.begin() + long(o + size_t(k)));
            if (a == b) continue;
            f.flipped[size_t(t)] = 1;
            const size_t lo = (size_t(l) * size_t(T) + size_t(t)) * size_t(E);
            f.explained[size_t(t)] =
                flip_explained(m, l, ref.logits.data() + lo, got.logits.data() + lo);
        }
    for (int t = 0; t < T; ++t)
        if (f.flipped[size_t(t)]) {
            ++f.n_flipped;
            f.first_flip = std::min(f.first_flip, t);
        }
    return f;
}

// Rows [0, n) of a [T, V] matrix.
inline std::vector<float> first_rows(const std::vector<float>& m, int n, int V) {
    return std::vector<float>(m.begin(), m.begin() + long(n) * V);
}

}  // namespace moe::test
