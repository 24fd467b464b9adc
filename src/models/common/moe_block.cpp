#include "models/common/moe_block.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "kernels/ops.h"

namespace moe {
namespace {

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// Indices of the k largest values (ties: lower index first).
void top_k(const float* v, int n, int k, int32_t* out) {
    std::vector<int32_t> idx(static_cast<size_t>(n));
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
        return v[a] > v[b] || (v[a] == v[b] && a < b);
    });
    std::copy(idx.begin(), idx.begin() + k, out);
}

// Activation between the two expert GEMMs: h[n] = act(gate[n], up[n]).
void expert_activation(const MoeConfig& c, const float* gate, const float* up, float* h, int64_t n) {
    if (c.act == Activation::SwiGLU) {
        ops::swiglu(gate, up, h, n);
        return;
    }
    // gpt-oss: gate clamped above, up clamped both sides, glu = g*sigmoid(alpha*g), h = (up+1)*glu
    for (int64_t i = 0; i < n; ++i) {
        const float g = std::min(gate[i], c.swiglu_limit);
        const float u = std::clamp(up[i], -c.swiglu_limit, c.swiglu_limit);
        h[i] = (u + 1.0f) * (g * sigmoid(c.swiglu_alpha * g));
    }
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

void moe_forward(const MoeConfig& c, const MoeWeights& w, const float* x, int64_t T, int n_embd,
                 ThreadPool& pool, float* y, float* router_logits, int32_t* ids_out,
                 float* weights_out) {
    const int n_exp = c.n_expert, k = c.n_expert_used, n_ff = c.n_ff_exp;

    // 1. route
    std::vector<float> logits(size_t(T * n_exp));  // [T, n_expert]
    ops::matmul(x, T, w.router, logits.data(), pool);
    if (!w.router_b.empty())
        for (int64_t t = 0; t < T; ++t)
            for (int e = 0; e < n_exp; ++e) logits[size_t(t * n_exp + e)] += w.router_b.p[e];
    std::vector<int32_t> ids(size_t(T * k));  // [T, k]
    std::vector<float> wts(size_t(T * k));    // [T, k]
    for (int64_t t = 0; t < T; ++t)
        route_token(c, logits.data() + t * n_exp, w.selection_bias, ids.data() + t * k,
                    wts.data() + t * k);
    if (router_logits) std::copy(logits.begin(), logits.end(), router_logits);
    if (ids_out) std::copy(ids.begin(), ids.end(), ids_out);
    if (weights_out) std::copy(wts.begin(), wts.end(), weights_out);

    // 2. dispatch: the (token, slot) pairs of each expert
    std::vector<std::vector<int64_t>> rows_of(static_cast<size_t>(n_exp));
    for (int64_t i = 0; i < T * k; ++i) rows_of[size_t(ids[size_t(i)])].push_back(i);

    // 3. experts: all active experts' work in two parallel regions of (expert, row block)
    //    tasks instead of three matmuls (and pool syncs) per expert. The input is packed
    //    (quantized) once and shared by every expert; each region-A task computes a block of
    //    gate and up rows for the expert's tokens and applies the activation right away; region
    //    B runs the down projections. Rows of g/u/h/d are grouped by expert: expert e owns rows
    //    [off[e], off[e + 1]), in rows_of[e] order.
    std::vector<int64_t> off(size_t(n_exp) + 1, 0);
    std::vector<int> active;
    for (int e = 0; e < n_exp; ++e) {
        off[size_t(e) + 1] = off[size_t(e)] + int64_t(rows_of[size_t(e)].size());
        if (!rows_of[size_t(e)].empty()) active.push_back(e);
    }
    const int64_t n_rows = off[size_t(n_exp)];  // T * k
    // input row and own row of each expert row
    std::vector<int64_t> tok(static_cast<size_t>(n_rows)), seq(static_cast<size_t>(n_rows));
    for (int e : active)
        for (size_t r = 0; r < rows_of[size_t(e)].size(); ++r) {
            tok[size_t(off[size_t(e)]) + r] = rows_of[size_t(e)][r] / k;
            seq[size_t(off[size_t(e)]) + r] = off[size_t(e)] + int64_t(r);
        }
    // (expert, first row) tasks over n rows per expert, about 4 per thread overall.
    auto make_tasks = [&](int64_t n, int64_t& rb) {
        rb = std::min<int64_t>(n, ops::matmul_row_block(n * int64_t(active.size()), T, pool.size()));
        std::vector<std::pair<int, int64_t>> tasks;
        for (int e : active)
            for (int64_t n0 = 0; n0 < n; n0 += rb) tasks.emplace_back(e, n0);
        return tasks;
    };

    ops::PackedActs xa, xa_up;
    ops::pack_acts(x, T, n_embd, w.gate_exps.dtype, xa, pool);
    const bool up_shares = ops::acts_fit(xa, w.up_exps.dtype);
    if (!up_shares) ops::pack_acts(x, T, n_embd, w.up_exps.dtype, xa_up, pool);
    std::vector<float> g(size_t(n_rows * n_ff)), u(size_t(n_rows * n_ff)),
        h(size_t(n_rows * n_ff));  // [T*k, n_ff]
    int64_t rb_a = 1;
    const auto tasks_a = make_tasks(n_ff, rb_a);
    pool.parallel_for(int64_t(tasks_a.size()), [&](int64_t ti) {
        const auto [e, n0] = tasks_a[size_t(ti)];
        const int64_t n1 = std::min<int64_t>(n_ff, n0 + rb_a), r0 = off[size_t(e)];
        const int64_t ne = off[size_t(e) + 1] - r0;
        ops::matmul_rows(xa, tok.data() + r0, ne, w.gate_exps.slice(e), n0, n1,
                         g.data() + r0 * n_ff, n_ff);  // [ne, n_ff] columns [n0, n1)
        ops::matmul_rows(up_shares ? xa : xa_up, tok.data() + r0, ne, w.up_exps.slice(e), n0, n1,
                         u.data() + r0 * n_ff, n_ff);
        const float* bg = w.gate_exps_b.empty()
                              ? nullptr
                              : static_cast<const float*>(w.gate_exps_b.data) + int64_t(e) * n_ff;
        const float* bu = w.up_exps_b.empty()
                              ? nullptr
                              : static_cast<const float*>(w.up_exps_b.data) + int64_t(e) * n_ff;
        for (int64_t r = r0; r < r0 + ne; ++r) {
            float* gr = g.data() + r * n_ff;
            float* ur = u.data() + r * n_ff;
            if (bg)
                for (int64_t i = n0; i < n1; ++i) gr[i] += bg[i], ur[i] += bu[i];
            expert_activation(c, gr + n0, ur + n0, h.data() + r * n_ff + n0, n1 - n0);
        }
    });

    ops::PackedActs ha;
    ops::pack_acts(h.data(), n_rows, n_ff, w.down_exps.dtype, ha, pool);
    std::vector<float> d(size_t(n_rows * n_embd));  // [T*k, n_embd]
    int64_t rb_b = 1;
    const auto tasks_b = make_tasks(n_embd, rb_b);
    pool.parallel_for(int64_t(tasks_b.size()), [&](int64_t ti) {
        const auto [e, n0] = tasks_b[size_t(ti)];
        const int64_t n1 = std::min<int64_t>(n_embd, n0 + rb_b), r0 = off[size_t(e)];
        ops::matmul_rows(ha, seq.data() + r0, off[size_t(e) + 1] - r0, w.down_exps.slice(e), n0,
                         n1, d.data() + r0 * n_embd, n_embd);
    });

    // 4. combine
    std::fill(y, y + T * n_embd, 0.0f);
    for (int e : active) {
        const auto& rows = rows_of[size_t(e)];
        const float* bd = w.down_exps_b.empty()
                              ? nullptr
                              : static_cast<const float*>(w.down_exps_b.data) + int64_t(e) * n_embd;
        for (size_t r = 0; r < rows.size(); ++r) {
            const int64_t slot = rows[r], t = slot / k;
            const float wt = wts[size_t(slot)];
            float* yr = y + t * n_embd;
            const float* dr = d.data() + (off[size_t(e)] + int64_t(r)) * n_embd;
            for (int i = 0; i < n_embd; ++i) yr[i] += wt * (dr[i] + (bd ? bd[i] : 0.0f));
        }
    }

    if (!w.shared.empty()) {
        std::vector<float> s(size_t(T * n_embd));  // [T, n_embd]
        ffn_forward(w.shared, x, T, pool, s.data());
        std::vector<float> gate(size_t(T), 1.0f);  // [T]
        if (!w.shared_gate.empty()) {
            ops::matmul(x, T, w.shared_gate, gate.data(), pool);
            for (float& v : gate) v = sigmoid(v);
        }
        for (int64_t t = 0; t < T; ++t)
            for (int i = 0; i < n_embd; ++i) y[t * n_embd + i] += gate[size_t(t)] * s[size_t(t * n_embd + i)];
    }
}

void ffn_forward(const FfnWeights& w, const float* x, int64_t T, ThreadPool& pool, float* y) {
    const int64_t n_ff = w.gate.shape[0];
    std::vector<float> g(size_t(T * n_ff)), u(size_t(T * n_ff));  // [T, n_ff]
    ops::matmul(x, T, w.gate, g.data(), pool);
    ops::matmul(x, T, w.up, u.data(), pool);
    ops::swiglu(g.data(), u.data(), g.data(), T * n_ff);
    ops::matmul(g.data(), T, w.down, y, pool);
}

}  // namespace moe
