// ops::moe_experts on CPU. The input is packed (quantized) once per activation format and shared
// by every expert; region A computes blocks of gate and up rows for each expert's tokens and
// applies the activation right away, region B runs the down projections: two parallel regions
// of (expert, row block) tasks instead of three matmuls (and pool syncs) per expert.
#include <algorithm>
#include <utility>
#include <vector>

#include "core/check.h"
#include "kernels/cpu/matmul_tasks.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"

namespace moe::ops {
namespace {

// x[T, K] packed for each activation format the weights ask for, each packed once. Every format
// is packed before a parallel region; inside one, get() only reads.
class ActsByFormat {
  public:
    ActsByFormat(const float* x, int64_t T, int64_t K, ThreadPool& pool)
        : x_(x), T_(T), K_(K), pool_(pool) {}
    const PackedActs& get(DType wtype) {
        PackedActs& a = packs_[size_t(kern::act_format(wtype))];
        if (a.act < 0) pack_acts(x_, T_, K_, wtype, a, pool_);
        return a;
    }

  private:
    const float* x_;
    int64_t T_, K_;
    ThreadPool& pool_;
    PackedActs packs_[3];  // by kern::ActFormat
};

}  // namespace

void moe_experts(const float* x, int64_t T, int k, const int32_t* ids, const float* weights,
                 std::span<const ExpertWeights> experts, const GluParams& act, float* y,
                 ThreadPool& pool, ExpertRange only) {
    const int n_exp = int(experts.size());
    MOE_CHECK(k >= 1, "moe_experts: k = {}", k);
    // Dispatch: the (token, slot) pairs of each expert.
    std::vector<std::vector<int64_t>> rows_of(static_cast<size_t>(n_exp));
    for (int64_t i = 0; i < T * k; ++i) {
        MOE_CHECK(ids[i] >= 0 && ids[i] < n_exp, "moe_experts: expert id {} of {}", ids[i], n_exp);
        if (ids[i] >= only.begin && ids[i] < only.end) rows_of[size_t(ids[i])].push_back(i);
    }
    // Rows of g/u/h/d are grouped by expert: expert e owns rows [off[e], off[e + 1]), in
    // rows_of[e] order.
    std::vector<int64_t> off(size_t(n_exp) + 1, 0);
    std::vector<int> active, slot_of(size_t(n_exp), -1);  // slot_of[e]: index of e in active
    for (int e = 0; e < n_exp; ++e) {
        off[size_t(e) + 1] = off[size_t(e)] + int64_t(rows_of[size_t(e)].size());
        if (!rows_of[size_t(e)].empty())
            slot_of[size_t(e)] = int(active.size()), active.push_back(e);
    }
    if (active.empty()) return;  // y untouched: n_embd is only known from an active expert
    const int64_t n_embd = experts[size_t(active[0])].gate.shape[1];
    const int64_t n_ff = experts[size_t(active[0])].gate.shape[0];
    const int64_t n_rows = off[size_t(n_exp)];  // T * k
    // input row and own row of each expert row
    std::vector<int64_t> tok(static_cast<size_t>(n_rows)), own(static_cast<size_t>(n_rows));
    for (int e : active)
        for (size_t r = 0; r < rows_of[size_t(e)].size(); ++r) {
            tok[size_t(off[size_t(e)]) + r] = rows_of[size_t(e)][r] / k;
            own[size_t(off[size_t(e)]) + r] = off[size_t(e)] + int64_t(r);
        }
    // (expert, first row) tasks over n rows per expert, about 4 per thread overall.
    auto make_tasks = [&](int64_t n, int64_t& rb) {
        rb = std::min<int64_t>(n, matmul_row_block(n * int64_t(active.size()), T, pool.size()));
        std::vector<std::pair<int, int64_t>> tasks;
        for (int e : active)
            for (int64_t n0 = 0; n0 < n; n0 += rb) tasks.emplace_back(e, n0);
        return tasks;
    };

    ActsByFormat xa(x, T, n_embd, pool);
    for (int e : active) xa.get(experts[size_t(e)].gate.dtype), xa.get(experts[size_t(e)].up.dtype);
    // Each expert's tokens in the prompt GEMM's groups, packed once for all its row blocks (and
    // for both gate and up where their types share an activation format); a region of its own
    // only when some expert reaches the GEMM (not at decode).
    std::vector<GemmGroups> groups(active.size());  // [active experts]
    auto pack_expert_groups = [&](ActsByFormat& acts, const int64_t* rows, auto matrix) {
        bool any = false;
        for (size_t i = 0; i < active.size() && !any; ++i) {
            const int e = active[i];
            const DType t = (experts[size_t(e)].*matrix).dtype;
            any = gemm_tokens(acts.get(t), t, off[size_t(e) + 1] - off[size_t(e)]) > 0;
        }
        if (!any) return;
        pool.parallel_for(int64_t(active.size()), [&](int64_t i) {
            const int e = active[size_t(i)];
            const DType t = (experts[size_t(e)].*matrix).dtype;
            pack_gemm_groups(acts.get(t), rows + off[size_t(e)],
                             off[size_t(e) + 1] - off[size_t(e)], t, groups[size_t(i)]);
        });
    };
    pack_expert_groups(xa, tok.data(), &ExpertWeights::gate);
    std::vector<float> g(size_t(n_rows * n_ff)), u(size_t(n_rows * n_ff)),
        h(size_t(n_rows * n_ff));  // [T*k, n_ff]
    int64_t rb_a = 1;
    const auto tasks_a = make_tasks(n_ff, rb_a);
    pool.parallel_for(int64_t(tasks_a.size()), [&](int64_t ti) {
        const auto [e, n0] = tasks_a[size_t(ti)];
        const ExpertWeights& ew = experts[size_t(e)];
        const int64_t n1 = std::min<int64_t>(n_ff, n0 + rb_a), r0 = off[size_t(e)];
        const int64_t ne = off[size_t(e) + 1] - r0;
        const GemmGroups* eg = &groups[size_t(slot_of[size_t(e)])];
        matmul_rows(xa.get(ew.gate.dtype), tok.data() + r0, ne, ew.gate, n0, n1,
                    g.data() + r0 * n_ff, n_ff, eg);  // [ne, n_ff] columns [n0, n1)
        matmul_rows(xa.get(ew.up.dtype), tok.data() + r0, ne, ew.up, n0, n1, u.data() + r0 * n_ff,
                    n_ff, eg);
        for (int64_t r = r0; r < r0 + ne; ++r) {
            float* gr = g.data() + r * n_ff;
            float* ur = u.data() + r * n_ff;
            if (ew.gate_b)
                for (int64_t i = n0; i < n1; ++i) gr[i] += ew.gate_b[i];
            if (ew.up_b)
                for (int64_t i = n0; i < n1; ++i) ur[i] += ew.up_b[i];
            float* hr = h.data() + r * n_ff;
            if (act.clamped)
                swiglu_clamped(gr + n0, ur + n0, hr + n0, n1 - n0, act.alpha, act.limit);
            else
                swiglu(gr + n0, ur + n0, hr + n0, n1 - n0);
        }
    });

    ActsByFormat ha(h.data(), n_rows, n_ff, pool);
    for (int e : active) ha.get(experts[size_t(e)].down.dtype);
    for (GemmGroups& gr : groups) gr.act = -1;
    pack_expert_groups(ha, own.data(), &ExpertWeights::down);
    std::vector<float> d(size_t(n_rows * n_embd));  // [T*k, n_embd]
    int64_t rb_b = 1;
    const auto tasks_b = make_tasks(n_embd, rb_b);
    pool.parallel_for(int64_t(tasks_b.size()), [&](int64_t ti) {
        const auto [e, n0] = tasks_b[size_t(ti)];
        const ExpertWeights& ew = experts[size_t(e)];
        const int64_t n1 = std::min<int64_t>(n_embd, n0 + rb_b), r0 = off[size_t(e)];
        matmul_rows(ha.get(ew.down.dtype), own.data() + r0, off[size_t(e) + 1] - r0, ew.down, n0,
                    n1, d.data() + r0 * n_embd, n_embd, &groups[size_t(slot_of[size_t(e)])]);
    });

    // Combine: weighted scatter-add back to token order, expert by expert.
    if (!only.accumulate) std::fill(y, y + T * n_embd, 0.0f);
    for (int e : active) {
        const auto& rows = rows_of[size_t(e)];
        const float* bd = experts[size_t(e)].down_b;
        for (size_t r = 0; r < rows.size(); ++r) {
            const int64_t slot = rows[r], t = slot / k;
            const float wt = weights[slot];
            float* yr = y + t * n_embd;
            const float* dr = d.data() + (off[size_t(e)] + int64_t(r)) * n_embd;
            for (int64_t i = 0; i < n_embd; ++i) yr[i] += wt * (dr[i] + (bd ? bd[i] : 0.0f));
        }
    }
}

}  // namespace moe::ops
