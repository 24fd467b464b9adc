// Scalar reference ops. Plain C++, no intrinsics; sums in f32 with 8 independent partial sums
// (the order fast paths also use), which keeps rounding error ~sqrt(K) ulp.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/check.h"
#include "kernels/ops.h"
#include "kernels/ref/vec_dot_ref.h"

namespace moe::ops {
namespace {

inline float dot_f32(const float* a, const float* b, int64_t n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
    for (; i < n; ++i) acc[i & 7] += a[i] * b[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

}  // namespace

}  // namespace moe::ops

namespace moe::ref {

// The reference matmul: dequantize each weight row to f32, f32 dot with x (no activation
// quantization). The fast ops::matmul is checked against it and against the vec_dot references.
void matmul_dequant(const float* x, int64_t T, const TensorView& w, float* y, ThreadPool& pool) {
    using ops::dequantize_row;
    MOE_CHECK(w.shape.rank == 2, "matmul weight must be 2-D, got {}", w.shape.str());
    const int64_t N = w.shape[0], K = w.shape[1];
    const bool direct = w.dtype == DType::F32;
    pool.parallel_range(N, 16, [&](int64_t n0, int64_t n1) {
        std::vector<float> buf(direct ? 0 : size_t(K));
        for (int64_t n = n0; n < n1; ++n) {
            const float* wr;
            if (direct) {
                wr = reinterpret_cast<const float*>(w.row(n));
            } else {
                dequantize_row(w.dtype, w.row(n), buf.data(), K);
                wr = buf.data();
            }
            for (int64_t t = 0; t < T; ++t) y[t * N + n] = ops::dot_f32(x + t * K, wr, K);
        }
    });
}

}  // namespace moe::ref

namespace moe::ops {

void get_row(const TensorView& table, int64_t id, float* dst) {
    dequantize_row(table.dtype, table.row(id), dst, table.shape.last());
}

void rms_norm(const float* x, int64_t T, int64_t n, const float* w, float eps, float* y) {
    for (int64_t t = 0; t < T; ++t) {
        const float* xr = x + t * n;
        float* yr = y + t * n;
        double ss = 0;
        for (int64_t i = 0; i < n; ++i) ss += double(xr[i]) * xr[i];
        const float scale = float(1.0 / std::sqrt(ss / double(n) + double(eps)));
        for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * scale * (w ? w[i] : 1.0f);
    }
}

void softmax(float* x, int64_t n) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
        x[i] = std::exp(x[i] - mx);
        sum += x[i];
    }
    const float inv = float(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const float g = gate[i];
        out[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
}

void sigmoid(float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) x[i] = 1.0f / (1.0f + std::exp(-x[i]));
}

void swiglu_clamped(const float* gate, const float* up, float* out, int64_t n, float alpha,
                    float limit) {
    for (int64_t i = 0; i < n; ++i) {
        const float g = std::min(gate[i], limit);
        const float u = std::clamp(up[i], -limit, limit);
        out[i] = (u + 1.0f) * (g * (1.0f / (1.0f + std::exp(-(alpha * g)))));
    }
}

void add(float* y, const float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void add_bias(float* y, int64_t T, int64_t n, const float* b) {
    if (!b) return;
    for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < n; ++i) y[t * n + i] += b[i];
}

void add_scaled_rows(float* y, const float* x, const float* s, int64_t T, int64_t n) {
    for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < n; ++i) y[t * n + i] += s[t] * x[t * n + i];
}

void rope(const RopeParams& p, float* x, int64_t T, int64_t row_stride, int n_heads,
          int head_stride, const int32_t* pos) {
    const int half = p.n_dims / 2;
    for (int64_t t = 0; t < T; ++t) {
        float* row = x + t * row_stride;
        for (int i = 0; i < half; ++i) {
            const double theta = double(pos[t]) * p.inv_freq[i];
            const float cs = float(std::cos(theta) * p.attn_factor);
            const float sn = float(std::sin(theta) * p.attn_factor);
            const int a = p.neox ? i : 2 * i, b = p.neox ? i + half : 2 * i + 1;
            for (int h = 0; h < n_heads; ++h) {
                float* v = row + int64_t(h) * head_stride;
                const float x0 = v[a], x1 = v[b];
                v[a] = x0 * cs - x1 * sn;
                v[b] = x0 * sn + x1 * cs;
            }
        }
    }
}

}  // namespace moe::ops
