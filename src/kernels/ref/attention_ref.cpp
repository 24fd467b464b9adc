// Reference attention and per-head products (contracts in kernels/ops.h).
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/ref/ops_ref.h"

namespace moe::ref {
namespace {

double dot(const float* a, const float* b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += double(a[i]) * b[i];
    return s;
}

// w row n of a 2-D weight, dequantized.
std::vector<float> weight_row(const TensorView& w, int64_t n) {
    std::vector<float> r(size_t(w.shape.last()));
    ops::dequantize_row(w.dtype, w.row(n), r.data(), w.shape.last());
    return r;
}

}  // namespace

void attention(const ops::AttentionParams& p, const float* q, int64_t T, const int32_t* pos,
               const int32_t* seq, const ops::KvPages& kv, float* out) {
    const int group = p.n_head / p.n_head_kv;
    for (int64_t t = 0; t < T; ++t)
        for (int h = 0; h < p.n_head; ++h) {
            const float* qh = q + (t * p.n_head + h) * p.k_dim;
            const int g = h / group;
            const int64_t first =
                p.sliding_window > 0 ? std::max<int64_t>(0, pos[t] - p.sliding_window + 1) : 0;
            std::vector<double> score;                                  // [positions first..pos[t]]
            std::vector<float> k(size_t(p.k_dim)), v(size_t(p.v_dim));  // stored rows, as f32
            for (int64_t j = first; j <= pos[t]; ++j) {
                ops::dequantize_row(kv.k_type, kv.k_at(kv.slot(seq[t], j), int64_t(g) * p.k_dim),
                                    k.data(), p.k_dim);
                double s = dot(qh, k.data(), p.k_dim) * p.scale;
                if (p.soft_cap > 0) s = p.soft_cap * std::tanh(s / p.soft_cap);
                score.push_back(s);
            }
            double mx = p.sinks ? p.sinks[h] : -INFINITY;
            for (double s : score) mx = std::max(mx, s);
            double sum = p.sinks ? std::exp(p.sinks[h] - mx) : 0.0;
            for (double& s : score) sum += (s = std::exp(s - mx));
            std::vector<double> o(size_t(p.v_dim), 0.0);
            for (int64_t j = first; j <= pos[t]; ++j) {
                ops::dequantize_row(kv.v_type, kv.v_at(kv.slot(seq[t], j), int64_t(g) * p.v_dim),
                                    v.data(), p.v_dim);
                for (int i = 0; i < p.v_dim; ++i)
                    o[size_t(i)] += score[size_t(j - first)] / sum * v[size_t(i)];
            }
            for (int i = 0; i < p.v_dim; ++i)
                out[(t * p.n_head + h) * p.v_dim + i] = float(o[size_t(i)]);
        }
}

void per_head_matmul(const float* x, int64_t T, int nh, int64_t x_tok, int64_t x_head,
                     const TensorView& w, float* y) {
    const int64_t N = w.shape[1], K = w.shape[2];
    for (int h = 0; h < nh; ++h) {
        const TensorView wh = w.slice(h);
        for (int64_t n = 0; n < N; ++n) {
            const std::vector<float> r = weight_row(wh, n);
            for (int64_t t = 0; t < T; ++t)
                y[(t * nh + h) * N + n] = float(dot(x + t * x_tok + h * x_head, r.data(), K));
        }
    }
}

}  // namespace moe::ref
