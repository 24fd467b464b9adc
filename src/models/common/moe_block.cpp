#include "models/common/moe_block.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "kernels/ops.h"

namespace moe {
namespace {

inline float sigmoid(float x) {
    return 1.0f / (1.0f + std::exp(-x));
}

// Indices of the k largest values (ties: lower index first).
void top_k(const float* v, int n, int k, int32_t* out) {
    std::vector<int32_t> idx(static_cast<size_t>(n));
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                      [&](int32_t a, int32_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); });
    std::copy(idx.begin(), idx.begin() + k, out);
}

}  // namespace

namespace {

// Stage 1a: scores (what the weights come from) and selection values (what top-k ranks: scores
// plus the selection bias, -inf for experts outside the kept groups).
void score_experts(const MoeConfig& c, const float* logits, const F32Vec& selection_bias,
                   std::vector<float>& scores, std::vector<float>& select) {
    const int n = c.n_expert;
    scores.assign(logits, logits + n);  // [n_expert]
    if (c.gating == Gating::Softmax) ops::softmax(scores.data(), n);
    if (c.gating == Gating::Sigmoid)
        for (float& s : scores) s = sigmoid(s);

    select = scores;
    if (!selection_bias.empty())
        for (int e = 0; e < n; ++e) select[size_t(e)] += selection_bias.p[e];

    if (c.n_group > 1) {  // keep only the experts of the n_group_used best groups
        const int per = n / c.n_group;
        std::vector<float> group_score(size_t(c.n_group));
        for (int g = 0; g < c.n_group; ++g) {
            const float* s = select.data() + g * per;
            if (c.group_score == GroupScore::Max) {
                group_score[size_t(g)] = *std::max_element(s, s + per);
            } else {
                int32_t best[2];
                top_k(s, per, std::min(2, per), best);
                group_score[size_t(g)] = s[best[0]] + (per > 1 ? s[best[1]] : 0.0f);
            }
        }
        std::vector<int32_t> keep(size_t(c.n_group_used));
        top_k(group_score.data(), c.n_group, c.n_group_used, keep.data());
        std::vector<uint8_t> kept(size_t(c.n_group), 0);
        for (int32_t g : keep) kept[size_t(g)] = 1;
        // -inf, not 0.0: a kept expert whose score + bias is negative must still beat every
        // dropped one (DeepSeek's code, transformers since #45441, the upstream engine).
        for (int e = 0; e < n; ++e)
            if (!kept[size_t(e / per)]) select[size_t(e)] = -std::numeric_limits<float>::infinity();
    }
}

}  // namespace

std::vector<float> selection_values(const MoeConfig& c, const float* logits,
                                    const F32Vec& selection_bias) {
    std::vector<float> scores, select;
    score_experts(c, logits, selection_bias, scores, select);
    return select;
}

float selection_margin(const MoeConfig& c, const float* logits, const F32Vec& selection_bias) {
    std::vector<float> scores, select;
    score_experts(c, logits, selection_bias, scores, select);
    std::sort(select.begin(), select.end(), std::greater<float>());
    const int k = c.n_expert_used;
    if (k >= c.n_expert || !std::isfinite(select[size_t(k)])) return INFINITY;
    return select[size_t(k - 1)] - select[size_t(k)];
}

void route_token(const MoeConfig& c, const float* logits, const F32Vec& selection_bias,
                 int32_t* ids, float* weights) {
    const int n = c.n_expert, k = c.n_expert_used;
    std::vector<float> scores, select;  // [n_expert]
    score_experts(c, logits, selection_bias, scores, select);
    top_k(select.data(), n, k, ids);
    if (c.gating == Gating::SoftmaxAfterTopK) {
        for (int i = 0; i < k; ++i) weights[i] = logits[ids[i]];
        ops::softmax(weights, k);
    } else {
        for (int i = 0; i < k; ++i) weights[i] = scores[size_t(ids[i])];
    }
    if (c.norm_topk) {
        double sum = 0;
        for (int i = 0; i < k; ++i) sum += weights[i];
        for (int i = 0; i < k; ++i) weights[i] = float(weights[i] / sum);
    }
    for (int i = 0; i < k; ++i) weights[i] *= c.weights_scale;
}

namespace {

// Router logits [T, n_expert] of x and each token's top-k ids and weights [T, k], by the
// family's rule or by `route` when set: what moe_forward routes with and (without an
// override, which is a test hook recording its calls) what the prefetch predicts with.
void route_rows(const MoeConfig& c, const MoeWeights& w, int il, const float* x, int64_t T,
                ThreadPool& pool, const RouteOverride* route, std::vector<float>& logits,
                std::vector<int32_t>& ids, std::vector<float>& wts) {
    const int n_exp = c.n_expert, k = c.n_expert_used;
    logits.resize(size_t(T * n_exp));
    ids.resize(size_t(T * k));
    wts.resize(size_t(T * k));
    ops::matmul(x, T, w.router, logits.data(), pool);
    ops::add_bias(logits.data(), T, n_exp, w.router_b.p);
    if (route && *route)
        (*route)(il, T, logits.data(), ids.data(), wts.data());
    else
        for (int64_t t = 0; t < T; ++t)
            route_token(c, logits.data() + t * n_exp, w.selection_bias, ids.data() + t * k,
                        wts.data() + t * k);
}

// The ids e with used[e] set, ascending.
std::vector<int32_t> marked_ids(const std::vector<uint8_t>& used) {
    std::vector<int32_t> out;
    for (size_t e = 0; e < used.size(); ++e)
        if (used[e]) out.push_back(int32_t(e));
    return out;
}

}  // namespace

std::vector<int32_t> predict_experts(const MoeConfig& c, const MoeWeights& w, const float* h,
                                     int64_t T, ThreadPool& pool) {
    std::vector<float> logits, wts;
    std::vector<int32_t> ids;
    route_rows(c, w, /*il=*/-1, h, T, pool, /*route=*/nullptr, logits, ids, wts);
    std::vector<uint8_t> used(size_t(c.n_expert), 0);  // [n_expert]
    for (int32_t e : ids) used[size_t(e)] = 1;
    return marked_ids(used);
}

Result<void> moe_forward(const MoeConfig& c, const MoeWeights& w, int il, ExpertStore& store,
                         const float* x, int64_t T, int n_embd, ThreadPool& pool, float* y,
                         float* router_logits, int32_t* ids_out, float* weights_out,
                         const RouteOverride* route, ExpertShard* shard) {
    const int n_exp = c.n_expert, k = c.n_expert_used;

    // 1. route
    std::vector<float> logits;  // [T, n_expert]
    std::vector<int32_t> ids;   // [T, k]
    std::vector<float> wts;     // [T, k]
    route_rows(c, w, il, x, T, pool, route, logits, ids, wts);
    if (shard) MOE_TRY_VOID(shard->share_routing(il, ids.data(), wts.data(), ids.size()));
    if (router_logits) std::copy(logits.begin(), logits.end(), router_logits);
    if (ids_out) std::copy(ids.begin(), ids.end(), ids_out);
    if (weights_out) std::copy(wts.begin(), wts.end(), weights_out);

    // 2-4. the active set to the store, then dispatch, experts, combine over the runs of
    // acquired experts that are ready, in ascending id order (bit-identical to one call).
    // Expert parallelism: only the experts this process owns; `foreign` marks routed experts
    // another process computes, which no range of ids given to moe_experts here may cover.
    std::vector<uint8_t> used(size_t(n_exp), 0), foreign(size_t(n_exp), 0);  // [n_expert]
    int64_t computed = 0;  // rows x experts computed here
    for (int32_t e : ids) {
        if (!shard || shard->owns(il, e))
            used[size_t(e)] = 1, ++computed;
        else
            foreign[size_t(e)] = 1;
    }
    const std::vector<int32_t> active = marked_ids(used);  // distinct ids, ascending
    // Next foreign expert at or after e (n_exp when none): ranges end before it.
    std::vector<int32_t> next_foreign(size_t(n_exp) + 1, n_exp);
    for (int e = n_exp - 1; e >= 0; --e)
        next_foreign[size_t(e)] = foreign[size_t(e)] ? e : next_foreign[size_t(e) + 1];
    ops::GluParams act;
    act.clamped = c.act == Activation::SwiGLUClamped;
    act.alpha = c.swiglu_alpha, act.limit = c.swiglu_limit;
    bool first = true;
    for (size_t done = 0; done < active.size();) {
        const std::span<const int32_t> rest(active.data() + done, active.size() - done);
        MOE_TRY(const size_t pinned, store.acquire(il, rest));
        for (size_t i = 0; i < pinned;) {
            auto ready = store.wait_ready(il, i);
            if (!ready) {
                store.release(il);
                return make_error("layer {}: {}", il, ready.message());
            }
            size_t end = std::min(*ready, pinned);
            // A run of ready experts with a foreign one between them is split there.
            for (size_t j = i + 1; j < end; ++j)
                if (next_foreign[size_t(rest[j - 1])] < rest[j]) {
                    end = j;
                    break;
                }
            ops::ExpertRange only;
            only.begin = first ? 0 : rest[i];
            only.end = end == rest.size() ? n_exp : rest[end];
            if (shard) {
                only.begin = rest[i];
                only.end = std::min(only.end, next_foreign[size_t(rest[end - 1])]);
            }
            only.accumulate = !first;
            ops::moe_experts(x, T, k, ids.data(), wts.data(), store.views(il), act, y, pool, only);
            first = false;
            i = end;
        }
        store.release(il);
        done += pinned;
    }
    if (first) std::fill(y, y + T * n_embd, 0.0f);  // no tokens

    if (!w.shared.empty() && (!shard || shard->computes_shared())) {
        std::vector<float> s(size_t(T * n_embd));  // [T, n_embd]
        ffn_forward(w.shared, x, T, pool, s.data());
        std::vector<float> gate(size_t(T), 1.0f);  // [T]
        if (!w.shared_gate.empty()) {
            ops::matmul(x, T, w.shared_gate, gate.data(), pool);
            ops::sigmoid(gate.data(), T);
        }
        ops::add_scaled_rows(y, s.data(), gate.data(), T, n_embd);
    }
    if (shard) MOE_TRY_VOID(shard->combine(il, y, T, n_embd, ids, !w.shared.empty(), computed));
    return {};
}

void ffn_forward(const FfnWeights& w, const float* x, int64_t T, ThreadPool& pool, float* y) {
    const int64_t n_ff = w.gate.shape[0];
    std::vector<float> g(size_t(T * n_ff)), u(size_t(T * n_ff));  // [T, n_ff]
    const ops::MatmulOut gate_up[] = {{w.gate, g.data()}, {w.up, u.data()}};
    ops::matmul_group(x, T, gate_up, pool);  // one region for both
    ops::swiglu(g.data(), u.data(), g.data(), T * n_ff);
    ops::matmul(g.data(), T, w.down, y, pool);
}

}  // namespace moe
