// ops::attention on CPU: one task per (token, head) over the pool; each walks its sequence's
// cache page by page (rows of one page are contiguous), in the cache's row types.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/dispatch.h"
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

// The portable inner loops (kern::AttnRowsKernel's contract), where no ISA version is taken.
void scores_portable(const float* q, const float* k, int64_t stride, int64_t n, int64_t kd,
                     int64_t split, float* out) {
    for (int64_t j = 0; j < n; ++j) {
        const float* kr = k + j * stride;
        out[j] =
            split > 0 ? dot(q, kr, split) + dot(q + split, kr + split, kd - split) : dot(q, kr, kd);
    }
}
void accum_portable(const float* p, const float* v, int64_t stride, int64_t n, int64_t vd,
                    float* o) {
    for (int64_t j = 0; j < n; ++j)
        for (int64_t i = 0; i < vd; ++i) o[i] += p[j] * v[j * stride + i];
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
    const int64_t k_bytes = dtype_row_bytes(kv.k_type, kv.k_row);
    const int64_t v_bytes = dtype_row_bytes(kv.v_type, kv.v_row);
    const float scale = a.scale, cap = a.soft_cap;
    // Rows stored in f16 / bf16 / q8_0 are converted a page run at a time (at most page_tokens
    // head slices, L1-sized) into scratch, then read as f32 rows; f32 rows are read in place.
    const kern::Isa isa = kern::resolve_isa(pool.kernel_options().isa);
    const kern::RowToF32Fn k_conv = kern::find_row_to_f32(kv.k_type, isa);
    const kern::RowToF32Fn v_conv = kern::find_row_to_f32(kv.v_type, isa);
    const int64_t k_head_bytes = dtype_row_bytes(kv.k_type, kd);
    const int64_t v_head_bytes = dtype_row_bytes(kv.v_type, vd);
    const int64_t k_stride = k_conv ? kd : kv.k_row, v_stride = v_conv ? vd : kv.v_row;
    const size_t conv_floats = size_t(kv.page_tokens) * size_t(std::max(kd, vd));
    const kern::AttnRowsKernel* fast = kern::find_attn_rows(isa);
    const auto scores = fast ? fast->scores : scores_portable;
    const auto accum = fast ? fast->accum : accum_portable;
    pool.parallel_for(T * nh, [&](int64_t task) {
        const int64_t t = task / nh;
        const int h = int(task % nh), hk = h / group;
        const int s = seq[t];
        const int64_t last = pos[t];
        const int64_t p0 =
            a.sliding_window > 0 ? std::max<int64_t>(0, last - a.sliding_window + 1) : 0;
        const float* qh = q + t * q_w + int64_t(h) * kd;
        float* conv = nullptr;  // [page_tokens, max(kd, vd)]
        if (k_conv || v_conv) {
            auto& scratch = pool.scratch();
            if (scratch.size() < conv_floats * sizeof(float))
                scratch.resize(conv_floats * sizeof(float));
            conv = reinterpret_cast<float*>(scratch.data());
        }
        // Rows [p, p + n) of one page: in place (f32) or converted into conv.
        auto rows = [&](const void* base, int64_t p, int64_t n, int64_t row_bytes, int64_t head,
                        int64_t width, kern::RowToF32Fn cv) -> const float* {
            const uint8_t* r = static_cast<const uint8_t*>(base) + kv.slot(s, p) * row_bytes + head;
            if (!cv) return reinterpret_cast<const float*>(r);
            for (int64_t j = 0; j < n; ++j) cv(r + j * row_bytes, conv + j * width, width);
            return conv;
        };
        std::vector<float> sc(size_t(last - p0 + 1));  // [positions]
        for (int64_t p = p0, n; p <= last; p += n) {
            n = page_run(kv, p, last + 1);
            const float* kr = rows(kv.k, p, n, k_bytes, hk * k_head_bytes, kd, k_conv);
            float* sp = sc.data() + (p - p0);
            scores(qh, kr, k_stride, n, kd, split, sp);
            for (int64_t j = 0; j < n; ++j) {
                float v = sp[j] * scale;
                if (cap > 0) v = cap * std::tanh(v / cap);
                sp[j] = v;
            }
        }
        softmax_with_sink(sc.data(), int64_t(sc.size()), a.sinks ? a.sinks + h : nullptr);
        float* o = out + t * o_w + int64_t(h) * vd;
        std::fill(o, o + vd, 0.0f);
        for (int64_t p = p0, n; p <= last; p += n) {
            n = page_run(kv, p, last + 1);
            const float* vr = rows(kv.v, p, n, v_bytes, hk * v_head_bytes, vd, v_conv);
            accum(sc.data() + (p - p0), vr, v_stride, n, vd, o);
        }
    });
}

}  // namespace moe::ops
