// ops::attention on CPU: one task per (token, head) over the pool; each walks its sequence's
// cache page by page (rows of one page are contiguous).
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/ops.h"

namespace moe::ops {
namespace {

// 16 independent partial sums: the compiler vectorizes them (a single running sum is a serial
// chain of dependent adds; prompt attention spent ~7% of a 128-token prefill there).
float dot(const float* a, const float* b, int64_t n) {
    float p[16] = {};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; ++j) p[j] += a[i + j] * b[i + j];
    float s = 0;
    for (; i < n; ++i) s += a[i] * b[i];
    for (int w = 8; w >= 1; w /= 2)
        for (int j = 0; j < w; ++j) p[j] += p[j + w];
    return s + p[0];
}

// Softmax over scores[0..n) with an optional extra sink logit that takes probability mass but
// contributes no value; scores become probabilities.
void softmax_with_sink(float* scores, int64_t n, const float* sink) {
    float mx = sink ? *sink : -INFINITY;
    for (int64_t i = 0; i < n; ++i) mx = std::max(mx, scores[i]);
    double sum = sink ? std::exp(double(*sink) - mx) : 0.0;
    for (int64_t i = 0; i < n; ++i) {
        scores[i] = std::exp(scores[i] - mx);
        sum += scores[i];
    }
    const float inv = float(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) scores[i] *= inv;
}

// KV positions from pos on that share a page with pos (up to end).
int64_t page_run(const KvPages& kv, int64_t pos, int64_t end) {
    return std::min(end, (pos / kv.page_tokens + 1) * kv.page_tokens) - pos;
}

}  // namespace

void attention(const AttentionParams& a, const float* q, int64_t T, const int32_t* pos,
               const int32_t* seq, const KvPages& kv, float* out, ThreadPool& pool) {
    const int nh = a.n_head, group = a.n_head / a.n_head_kv;
    const int64_t q_w = int64_t(nh) * a.k_dim, o_w = int64_t(nh) * a.v_dim;
    const int kd = a.k_dim, vd = a.v_dim, split = a.k_split;
    // Locals, not loads through `a` / `kv` that a float store into the scores might alias.
    const int64_t k_row = kv.k_row, v_row = kv.v_row;
    const float scale = a.scale, cap = a.soft_cap;
    pool.parallel_for(T * nh, [&](int64_t task) {
        const int64_t t = task / nh;
        const int h = int(task % nh), hk = h / group;
        const int s = seq[t];
        const int64_t last = pos[t];
        const int64_t p0 =
            a.sliding_window > 0 ? std::max<int64_t>(0, last - a.sliding_window + 1) : 0;
        const float* qh = q + t * q_w + int64_t(h) * kd;
        std::vector<float> sc(size_t(last - p0 + 1));  // [positions]
        for (int64_t p = p0, n; p <= last; p += n) {
            n = page_run(kv, p, last + 1);
            const float* kr = kv.k + kv.slot(s, p) * k_row + int64_t(hk) * kd;
            for (int64_t j = 0; j < n; ++j) {
                const float* k = kr + j * k_row;
                const float d = split > 0
                                    ? dot(qh, k, split) + dot(qh + split, k + split, kd - split)
                                    : dot(qh, k, kd);
                float v = d * scale;
                if (cap > 0) v = cap * std::tanh(v / cap);
                sc[size_t(p - p0 + j)] = v;
            }
        }
        softmax_with_sink(sc.data(), int64_t(sc.size()), a.sinks ? a.sinks + h : nullptr);
        float* o = out + t * o_w + int64_t(h) * vd;
        std::fill(o, o + vd, 0.0f);
        for (int64_t p = p0, n; p <= last; p += n) {
            n = page_run(kv, p, last + 1);
            const float* vr = kv.v + kv.slot(s, p) * v_row + int64_t(hk) * vd;
            for (int64_t j = 0; j < n; ++j) {
                const float pr = sc[size_t(p - p0 + j)];
                for (int i = 0; i < vd; ++i) o[i] += pr * vr[j * v_row + i];
            }
        }
    });
}

}  // namespace moe::ops
