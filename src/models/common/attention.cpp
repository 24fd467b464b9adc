#include "models/common/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/ops.h"

namespace moe {

void attention_forward(const AttentionConfig& c, const AttentionWeights& w, int il, const float* x,
                       const Batch& b, int n_embd, float rms_eps, KvCache& kv, ThreadPool& pool,
                       float* out) {
    const int64_t T = b.size();
    const int nh = c.n_head, nkv = c.n_head_kv, hd = c.head_dim;
    const int64_t q_w = int64_t(nh) * hd, kv_w = int64_t(nkv) * hd;
    std::vector<float> q(size_t(T * q_w)), k(size_t(T * kv_w)), v(size_t(T * kv_w));
    const ops::MatmulOut qkv[] = {{w.wq, q.data()},   // [T, nh*hd]
                                  {w.wk, k.data()},   // [T, nkv*hd]
                                  {w.wv, v.data()}};  // [T, nkv*hd]
    ops::matmul_group(x, T, qkv, pool);
    ops::add_bias(q.data(), T, q_w, w.bq.p);
    ops::add_bias(k.data(), T, kv_w, w.bk.p);
    ops::add_bias(v.data(), T, kv_w, w.bv.p);
    if (c.qk_norm == QkNorm::PerHead) {
        ops::rms_norm(q.data(), T * nh, hd, w.q_norm.p, rms_eps, q.data());
        ops::rms_norm(k.data(), T * nkv, hd, w.k_norm.p, rms_eps, k.data());
    } else if (c.qk_norm == QkNorm::Whole) {
        ops::rms_norm(q.data(), T, q_w, w.q_norm.p, rms_eps, q.data());
        ops::rms_norm(k.data(), T, kv_w, w.k_norm.p, rms_eps, k.data());
    }
    const Rope rope(c.rope);
    ops::rope(rope.params(), q.data(), T, q_w, nh, hd, b.pos.data());
    ops::rope(rope.params(), k.data(), T, kv_w, nkv, hd, b.pos.data());
    kv.store(il, b, k.data(), v.data());

    ops::AttentionParams a;
    a.n_head = nh, a.n_head_kv = nkv, a.k_dim = hd, a.v_dim = hd;
    a.scale = c.scale, a.sliding_window = c.sliding_window, a.sinks = w.sinks.p;
    std::vector<float> att(size_t(T * q_w));  // [T, nh*hd]
    ops::attention(a, q.data(), T, b.pos.data(), b.seq.data(), kv.pages(il), att.data(), pool);
    ops::matmul(att.data(), T, w.wo, out, pool);  // [T, n_embd]
    ops::add_bias(out, T, n_embd, w.bo.p);
}

void mla_forward(const MlaConfig& c, const MlaWeights& w, int il, const float* x, const Batch& b,
                 int n_embd, float rms_eps, KvCache& kv, ThreadPool& pool, float* out) {
    const int64_t T = b.size();
    const int nh = c.n_head, nope = c.qk_nope, nrope = c.qk_rope, lora = c.kv_lora_rank;
    const int qk = nope + nrope;
    const int64_t q_w = int64_t(nh) * qk;

    std::vector<float> q(size_t(T * q_w));  // [T, nh*(nope+rope)]
    const int64_t kva_w = lora + nrope;
    std::vector<float> kva(size_t(T * kva_w));  // [T, kv_lora + rope]: latent c | rotated key
    // The products of x (q or its low-rank half, and the latent) in one region.
    if (c.q_lora_rank > 0) {
        std::vector<float> qa(size_t(T * c.q_lora_rank));  // [T, q_lora]
        const ops::MatmulOut from_x[] = {{w.wq_a, qa.data()}, {w.wkv_a, kva.data()}};
        ops::matmul_group(x, T, from_x, pool);
        ops::rms_norm(qa.data(), T, c.q_lora_rank, w.q_a_norm.p, rms_eps, qa.data());
        ops::matmul(qa.data(), T, w.wq_b, q.data(), pool);
    } else {
        const ops::MatmulOut from_x[] = {{w.wq, q.data()}, {w.wkv_a, kva.data()}};
        ops::matmul_group(x, T, from_x, pool);
    }
    for (int64_t t = 0; t < T; ++t)
        ops::rms_norm(kva.data() + t * kva_w, 1, lora, w.kv_a_norm.p, rms_eps,
                      kva.data() + t * kva_w);
    const Rope rope(c.rope);
    ops::rope(rope.params(), kva.data() + lora, T, kva_w, 1, nrope, b.pos.data());
    ops::rope(rope.params(), q.data() + nope, T, q_w, nh, qk, b.pos.data());
    kv.store(il, b, kva.data(), nullptr);

    // Absorbed form: scores against the cached latent directly. q_abs[t, h] = [wk_b[h] ·
    // q_nope[t, h] | q_rope[t, h]], scored against a cache row [latent | rotated key].
    std::vector<float> q_lat(size_t(T * nh * lora));  // [T, nh, kv_lora]
    ops::per_head_matmul(q.data(), T, nh, q_w, qk, w.wk_b, q_lat.data(), pool);
    std::vector<float> q_abs(size_t(T * nh * kva_w));  // [T, nh, kv_lora + rope]
    for (int64_t th = 0; th < T * nh; ++th) {
        const int64_t t = th / nh, h = th % nh;
        std::copy_n(q_lat.data() + th * lora, lora, q_abs.data() + th * kva_w);
        std::copy_n(q.data() + t * q_w + h * qk + nope, nrope, q_abs.data() + th * kva_w + lora);
    }
    // One shared key head; the values are the latents themselves (the first kv_lora of a row).
    ops::KvPages pages = kv.pages(il);
    pages.v = pages.k, pages.v_row = pages.k_row, pages.v_type = pages.k_type;
    ops::AttentionParams a;
    a.n_head = nh, a.n_head_kv = 1, a.k_dim = int(kva_w), a.k_split = lora, a.v_dim = lora;
    a.scale = c.scale;
    std::vector<float> o_lat(size_t(T * nh * lora));  // [T, nh, kv_lora]
    ops::attention(a, q_abs.data(), T, b.pos.data(), b.seq.data(), pages, o_lat.data(), pool);

    // Per head: v[t,h] = wv_b[h] · o_lat[t,h]   ([v_head, kv_lora] · [kv_lora])
    std::vector<float> att(size_t(T * nh * c.v_head));  // [T, nh*v_head]
    ops::per_head_matmul(o_lat.data(), T, nh, int64_t(nh) * lora, lora, w.wv_b, att.data(), pool);
    ops::matmul(att.data(), T, w.wo, out, pool);
    (void)n_embd;
}

}  // namespace moe
