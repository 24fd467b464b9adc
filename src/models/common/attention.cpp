#include "models/common/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/ops.h"

namespace moe {
namespace {

void add_bias(float* y, int64_t T, int64_t n, const F32Vec& b) {
    if (b.empty()) return;
    for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < n; ++i) y[t * n + i] += b.p[i];
}

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
// contributes no value (gpt-oss). Returns nothing; scores become probabilities.
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

// y[t, h, :] = w[h] · x[h, t, :] for every head h: w is [nh, N, K], x is [nh, T, K], y is
// [T, nh, N]. One parallel region over (head, row block) tasks: MLA's per-head matmuls are small
// (tens of KiB each), so a region and a pool sync per head cost more than the products at T = 1.
void per_head_matmul(const float* x, int64_t T, int nh, const TensorView& w, float* y,
                     ThreadPool& pool) {
    const int64_t N = w.shape[1], K = w.shape[2];
    std::vector<ops::PackedActs> xa(static_cast<size_t>(nh));
    for (int h = 0; h < nh; ++h)
        ops::pack_acts(x + int64_t(h) * T * K, T, K, w.dtype, xa[size_t(h)], pool,
                       /*parallel=*/false);
    const int64_t rb = std::min<int64_t>(N, ops::matmul_row_block(N * nh, T, pool.size()));
    const int64_t per_head = (N + rb - 1) / rb;
    pool.parallel_for(nh * per_head, [&](int64_t task) {
        const int h = int(task / per_head);
        const int64_t n0 = (task % per_head) * rb, n1 = std::min(N, n0 + rb);
        ops::matmul_rows(xa[size_t(h)], nullptr, T, w.slice(h), n0, n1, y + int64_t(h) * N,
                         int64_t(nh) * N);
    });
}

}  // namespace

void attention_forward(const AttentionConfig& c, const AttentionWeights& w, int il, const float* x,
                       const Batch& b, int n_embd, float rms_eps, KvCache& kv, ThreadPool& pool,
                       float* out) {
    const int64_t T = b.size();
    const int nh = c.n_head, nkv = c.n_head_kv, hd = c.head_dim;
    const int64_t q_w = int64_t(nh) * hd, kv_w = int64_t(nkv) * hd;
    std::vector<float> q(size_t(T * q_w)), k(size_t(T * kv_w)), v(size_t(T * kv_w));
    ops::matmul(x, T, w.wq, q.data(), pool);  // [T, nh*hd]
    ops::matmul(x, T, w.wk, k.data(), pool);  // [T, nkv*hd]
    ops::matmul(x, T, w.wv, v.data(), pool);  // [T, nkv*hd]
    add_bias(q.data(), T, q_w, w.bq);
    add_bias(k.data(), T, kv_w, w.bk);
    add_bias(v.data(), T, kv_w, w.bv);
    if (c.qk_norm == QkNorm::PerHead) {
        ops::rms_norm(q.data(), T * nh, hd, w.q_norm.p, rms_eps, q.data());
        ops::rms_norm(k.data(), T * nkv, hd, w.k_norm.p, rms_eps, k.data());
    } else if (c.qk_norm == QkNorm::Whole) {
        ops::rms_norm(q.data(), T, q_w, w.q_norm.p, rms_eps, q.data());
        ops::rms_norm(k.data(), T, kv_w, w.k_norm.p, rms_eps, k.data());
    }
    const Rope rope(c.rope);
    for (int64_t t = 0; t < T; ++t) {
        rope.apply(q.data() + t * q_w, nh, hd, b.pos[size_t(t)]);
        rope.apply(k.data() + t * kv_w, nkv, hd, b.pos[size_t(t)]);
        std::copy_n(k.data() + t * kv_w, kv_w, kv.k(il, b.seq[size_t(t)], b.pos[size_t(t)]));
        std::copy_n(v.data() + t * kv_w, kv_w, kv.v(il, b.seq[size_t(t)], b.pos[size_t(t)]));
    }

    std::vector<float> att(size_t(T * q_w));  // [T, nh*hd]
    const int group = nh / nkv;
    pool.parallel_for(T * nh, [&](int64_t task) {
        const int64_t t = task / nh;
        const int h = int(task % nh), hk = h / group;
        const int s = b.seq[size_t(t)];
        const int64_t pos = b.pos[size_t(t)];
        const int64_t p0 =
            c.sliding_window > 0 ? std::max<int64_t>(0, pos - c.sliding_window + 1) : 0;
        const float* qh = q.data() + t * q_w + int64_t(h) * hd;
        std::vector<float> sc(size_t(pos - p0 + 1));
        // The cache is walked page by page: rows of one page are contiguous.
        for (int64_t p = p0, n; p <= pos; p += n) {
            n = KvCache::run(p, pos + 1);
            const float* kr = kv.k(il, s, p) + int64_t(hk) * hd;
            for (int64_t j = 0; j < n; ++j)
                sc[size_t(p - p0 + j)] = dot(qh, kr + j * kv_w, hd) * c.scale;
        }
        softmax_with_sink(sc.data(), int64_t(sc.size()), w.sinks.empty() ? nullptr : w.sinks.p + h);
        float* o = att.data() + t * q_w + int64_t(h) * hd;
        std::fill(o, o + hd, 0.0f);
        for (int64_t p = p0, n; p <= pos; p += n) {
            n = KvCache::run(p, pos + 1);
            const float* vr = kv.v(il, s, p) + int64_t(hk) * hd;
            for (int64_t j = 0; j < n; ++j) {
                const float pr = sc[size_t(p - p0 + j)];
                for (int i = 0; i < hd; ++i) o[i] += pr * vr[j * kv_w + i];
            }
        }
    });
    ops::matmul(att.data(), T, w.wo, out, pool);  // [T, n_embd]
    add_bias(out, T, n_embd, w.bo);
}

void mla_forward(const MlaConfig& c, const MlaWeights& w, int il, const float* x, const Batch& b,
                 int n_embd, float rms_eps, KvCache& kv, ThreadPool& pool, float* out) {
    const int64_t T = b.size();
    const int nh = c.n_head, nope = c.qk_nope, nrope = c.qk_rope, lora = c.kv_lora_rank;
    const int qk = nope + nrope;
    const int64_t q_w = int64_t(nh) * qk;

    std::vector<float> q(size_t(T * q_w));  // [T, nh*(nope+rope)]
    if (c.q_lora_rank > 0) {
        std::vector<float> qa(size_t(T * c.q_lora_rank));  // [T, q_lora]
        ops::matmul(x, T, w.wq_a, qa.data(), pool);
        ops::rms_norm(qa.data(), T, c.q_lora_rank, w.q_a_norm.p, rms_eps, qa.data());
        ops::matmul(qa.data(), T, w.wq_b, q.data(), pool);
    } else {
        ops::matmul(x, T, w.wq, q.data(), pool);
    }
    const int64_t kva_w = lora + nrope;
    std::vector<float> kva(size_t(T * kva_w));  // [T, kv_lora + rope]
    ops::matmul(x, T, w.wkv_a, kva.data(), pool);

    const Rope rope(c.rope);
    for (int64_t t = 0; t < T; ++t) {
        float* row = kva.data() + t * kva_w;
        ops::rms_norm(row, 1, lora, w.kv_a_norm.p, rms_eps, row);  // latent c
        rope.apply(row + lora, 1, nrope, b.pos[size_t(t)]);        // shared rotated key
        rope.apply(q.data() + t * q_w + nope, nh, qk, b.pos[size_t(t)]);
        std::copy_n(row, kva_w, kv.k(il, b.seq[size_t(t)], b.pos[size_t(t)]));
    }

    // Absorb: q_lat[t,h] = wk_b[h] · q_nope[t,h]   ([kv_lora, nope] · [nope])
    std::vector<float> q_lat(size_t(T * nh * lora));  // [T, nh, kv_lora]
    std::vector<float> qn(size_t(nh * T * nope));     // [nh, T, nope]
    for (int h = 0; h < nh; ++h)
        for (int64_t t = 0; t < T; ++t)
            std::copy_n(q.data() + t * q_w + int64_t(h) * qk, nope,
                        qn.data() + (int64_t(h) * T + t) * nope);
    per_head_matmul(qn.data(), T, nh, w.wk_b, q_lat.data(), pool);
    std::vector<float> o_lat(size_t(T * nh * lora));  // [T, nh, kv_lora]
    pool.parallel_for(T * nh, [&](int64_t task) {
        const int64_t t = task / nh;
        const int h = int(task % nh);
        const int s = b.seq[size_t(t)];
        const int64_t pos = b.pos[size_t(t)];
        const float* ql = q_lat.data() + (t * nh + h) * lora;
        const float* qr = q.data() + t * q_w + int64_t(h) * qk + nope;
        std::vector<float> sc(size_t(pos + 1));
        for (int64_t p = 0, n; p <= pos; p += n) {  // page by page, as above
            n = KvCache::run(p, pos + 1);
            const float* rows = kv.k(il, s, p);
            for (int64_t j = 0; j < n; ++j) {
                const float* row = rows + j * kva_w;
                sc[size_t(p + j)] = (dot(ql, row, lora) + dot(qr, row + lora, nrope)) * c.scale;
            }
        }
        softmax_with_sink(sc.data(), pos + 1, nullptr);
        float* o = o_lat.data() + (t * nh + h) * lora;
        std::fill(o, o + lora, 0.0f);
        for (int64_t p = 0, n; p <= pos; p += n) {
            n = KvCache::run(p, pos + 1);
            const float* rows = kv.k(il, s, p);
            for (int64_t j = 0; j < n; ++j)
                for (int i = 0; i < lora; ++i) o[i] += sc[size_t(p + j)] * rows[j * kva_w + i];
        }
    });

    // Per head: v[t,h] = wv_b[h] · o_lat[t,h]   ([v_head, kv_lora] · [kv_lora])
    std::vector<float> att(size_t(T * nh * c.v_head));  // [T, nh*v_head]
    std::vector<float> ol(size_t(nh * T * lora));       // [nh, T, kv_lora]
    for (int h = 0; h < nh; ++h)
        for (int64_t t = 0; t < T; ++t)
            std::copy_n(o_lat.data() + (t * nh + h) * lora, lora,
                        ol.data() + (int64_t(h) * T + t) * lora);
    per_head_matmul(ol.data(), T, nh, w.wv_b, att.data(), pool);
    ops::matmul(att.data(), T, w.wo, out, pool);
    (void)n_embd;
}

}  // namespace moe
