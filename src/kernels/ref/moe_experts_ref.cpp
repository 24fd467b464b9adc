// Reference routed experts (contract in kernels/ops.h): token by token, slot by slot.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/ref/ops_ref.h"

namespace moe::ref {
namespace {

// y[N] = w[N, K] · x[K], weight rows dequantized, sums in double.
std::vector<double> matvec(const TensorView& w, const float* x) {
    const int64_t N = w.shape[0], K = w.shape[1];
    std::vector<float> r(static_cast<size_t>(K));
    std::vector<double> y(static_cast<size_t>(N));
    for (int64_t n = 0; n < N; ++n) {
        ops::dequantize_row(w.dtype, w.row(n), r.data(), K);
        double s = 0;
        for (int64_t i = 0; i < K; ++i) s += double(r[size_t(i)]) * x[i];
        y[size_t(n)] = s;
    }
    return y;
}

double silu(double v) {
    return v / (1.0 + std::exp(-v));
}

}  // namespace

void moe_experts(const float* x, int64_t T, int k, const int32_t* ids, const float* weights,
                 std::span<const ops::ExpertWeights> experts, const ops::GluParams& act, float* y) {
    for (int64_t t = 0; t < T; ++t) {
        const ops::ExpertWeights& e0 = experts[size_t(ids[t * k])];
        const int64_t n_embd = e0.gate.shape[1];
        std::vector<double> acc(size_t(n_embd), 0.0);
        for (int j = 0; j < k; ++j) {
            const ops::ExpertWeights& e = experts[size_t(ids[t * k + j])];
            const int64_t n_ff = e.gate.shape[0];
            std::vector<double> g = matvec(e.gate, x + t * n_embd),
                                u = matvec(e.up, x + t * n_embd);
            std::vector<float> hid(static_cast<size_t>(n_ff));  // [n_ff]
            for (int64_t i = 0; i < n_ff; ++i) {
                double gi = g[size_t(i)] + (e.gate_b ? e.gate_b[i] : 0.0);
                double ui = u[size_t(i)] + (e.up_b ? e.up_b[i] : 0.0);
                if (act.clamped) {
                    gi = std::min<double>(gi, act.limit);
                    ui = std::clamp<double>(ui, -act.limit, act.limit);
                    hid[size_t(i)] = float((ui + 1.0) * gi / (1.0 + std::exp(-act.alpha * gi)));
                } else {
                    hid[size_t(i)] = float(silu(gi) * ui);
                }
            }
            const std::vector<double> d = matvec(e.down, hid.data());
            for (int64_t i = 0; i < n_embd; ++i)
                acc[size_t(i)] +=
                    weights[t * k + j] * (d[size_t(i)] + (e.down_b ? e.down_b[i] : 0.0));
        }
        for (int64_t i = 0; i < n_embd; ++i) y[t * n_embd + i] = float(acc[size_t(i)]);
    }
}

}  // namespace moe::ref
