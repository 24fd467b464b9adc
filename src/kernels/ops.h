// The kernel interface: the only kernel header model code includes. Activations are f32,
// row-major, outermost dimension first. Weights may be any supported DType.
// Every op has a plain scalar reference in kernels/ref/; fast paths are checked against it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace moe::ops {

// True if rows of this type can be dequantized / multiplied.
bool weight_type_supported(DType t);

// dst[0..n) = dequantized src row (n a multiple of the type's block size).
void dequantize_row(DType t, const void* src, float* dst, int64_t n);

// y[T, N] = x[T, K] · w[N, K]^T  (w: 2-D weight of any supported type; y must not alias x).
// Quantizes x once per row where the weight type's kernel wants it (see kernels/dispatch.h),
// then splits the N rows over the pool (kernels/cpu/matmul_cpu.cpp).
void matmul(const float* x, int64_t T, const TensorView& w, float* y, ThreadPool& pool);

// One product of matmul_group: y[T, N] = x · w^T, w [N, K].
struct MatmulOut {
    TensorView w;
    float* y = nullptr;
};
// Several products of the same x[T, K] (attention's q, k and v): each y as matmul computes it,
// bit for bit, but x is packed once per activation format and all the (matrix, row block) tasks
// run in one pool region, so a decode step pays one fork/join for them instead of one each.
void matmul_group(const float* x, int64_t T, std::span<const MatmulOut> outs, ThreadPool& pool);

// y[t, h, :] = w[h] · x(h, t) for every head h: w is [nh, N, K], x(h, t) = x + t * x_tok +
// h * x_head (K floats), y is [T, nh, N] (MLA's per-head products with the absorbed matrices).
void per_head_matmul(const float* x, int64_t T, int nh, int64_t x_tok, int64_t x_head,
                     const TensorView& w, float* y, ThreadPool& pool);

// One expert's FFN: gate and up [n_ff, n_embd], down [n_embd, n_ff] (any supported types, each
// expert its own), optional f32 biases. Views: slices of a layer's stacked tensors, or whatever an
// expert store hands in.
struct ExpertWeights {
    TensorView gate, up, down;
    const float* gate_b = nullptr;  // [n_ff]
    const float* up_b = nullptr;    // [n_ff]
    const float* down_b = nullptr;  // [n_embd]
};
// The activation between an expert's two products: swiglu, or swiglu_clamped(alpha, limit).
struct GluParams {
    bool clamped = false;
    float alpha = 1.702f, limit = 7.0f;
};
// The routed experts of one MoE layer: y[t] = sum_j weights[t, j] * E_{ids[t, j]}(x[t]) for
// t < T, j < k, where E(x) = down · act(gate · x + gate_b, up · x + up_b) + down_b.
// x and y are [T, n_embd] (y overwritten), ids and weights [T, k]; experts is indexed by id.
// The CPU split (kernels/cpu/moe_experts.cpp) runs every active expert's rows in two parallel
// regions (gate+up+act, down) over (expert, row block) tasks.
// `only` restricts a call to the experts with ids in [begin, end) (the other views are not read)
// and, with accumulate, adds to y instead of overwriting it. The combine adds experts in
// ascending id order, so calls over consecutive ascending ranges give the bits of one call: an
// expert store that holds only some experts at a time computes them range by range.
struct ExpertRange {
    int begin = 0, end = 1 << 30;
    bool accumulate = false;
};
void moe_experts(const float* x, int64_t T, int k, const int32_t* ids, const float* weights,
                 std::span<const ExpertWeights> experts, const GluParams& act, float* y,
                 ThreadPool& pool, ExpertRange only = {});

// Types a KV cache row can be stored in: F32, F16, BF16, Q8_0.
bool kv_type_supported(DType t);
// dst = src[0..n) stored as t (a KV type): f16 / bf16 rounded to nearest even, Q8_0 as GGUF's
// blocks (fp16 scale + 32 int8, n a multiple of 32). dequantize_row reads it back.
void convert_row(DType t, const float* src, void* dst, int64_t n);

// One layer's paged KV cache as attention reads it: position pos of sequence s is row
// pages[s][pos / page_tokens] * page_tokens + pos % page_tokens of k (k_row elements stored as
// k_type) and of v. A head's slice starts at a whole block (q8_0: head widths of 32k).
struct KvPages {
    const void* k = nullptr;
    const void* v = nullptr;
    int64_t k_row = 0, v_row = 0;
    int page_tokens = 1;
    std::span<const std::vector<int32_t>> pages;  // [n_seq]: page ids in position order
    DType k_type = DType::F32, v_type = DType::F32;
    int64_t slot(int s, int64_t pos) const {
        return int64_t(pages[size_t(s)][size_t(pos / page_tokens)]) * page_tokens +
               pos % page_tokens;
    }
    // Element e (at a block boundary) of the k / v row of a slot.
    const uint8_t* k_at(int64_t slot, int64_t e) const {
        return static_cast<const uint8_t*>(k) + slot * dtype_row_bytes(k_type, k_row) +
               dtype_row_bytes(k_type, e);
    }
    const uint8_t* v_at(int64_t slot, int64_t e) const {
        return static_cast<const uint8_t*>(v) + slot * dtype_row_bytes(v_type, v_row) +
               dtype_row_bytes(v_type, e);
    }
};

// What varies between the attentions of the families, as data.
struct AttentionParams {
    int n_head = 0, n_head_kv = 0;  // query heads, key/value heads (n_head a multiple)
    int k_dim = 0;  // q·k width: q head h at h * k_dim, key head g at g * k_dim of a k row
    // > 0: q·k summed as two dot products, [0, k_split) and [k_split, k_dim) (MLA: the latent
    // and the rotated key, kept apart as the model computes them).
    int k_split = 0;
    int v_dim = 0;  // value width: value head g at g * v_dim of a v row, out head h at h * v_dim
    float scale = 0.0f;            // score = q·k * scale
    float soft_cap = 0.0f;         // > 0: score = soft_cap * tanh(score / soft_cap)
    int sliding_window = 0;        // > 0: a token sees positions pos - sliding_window + 1 .. pos
    const float* sinks = nullptr;  // [n_head] or null: a logit per head that takes probability
                                   // mass and adds no value (gpt-oss)
};
// Causal attention of T tokens over their sequences' cached keys and values (this batch's rows
// already stored): out[t, h] = sum_p softmax_p(score(q[t, h], k[p])) v[p] over the positions p
// of sequence seq[t] up to pos[t]; head h reads key/value head h / (n_head / n_head_kv).
// q is [T, n_head * k_dim], out [T, n_head * v_dim].
void attention(const AttentionParams& p, const float* q, int64_t T, const int32_t* pos,
               const int32_t* seq, const KvPages& kv, float* out, ThreadPool& pool);

// Copies row `id` of an embedding table [n_vocab, n_embd] to dst[n_embd].
void get_row(const TensorView& table, int64_t id, float* dst);

// Element-wise ops. One implementation each, plain scalar C++ (kernels/ref/ops_ref.cpp) that the
// compiler vectorizes; they run on the calling thread.

// y[T, n] = x / sqrt(mean(x^2) + eps) * w   (w may be null: no scale; y may be x).
void rms_norm(const float* x, int64_t T, int64_t n, const float* w, float eps, float* y);

// x[n] = softmax(x[n]) in place.
void softmax(float* x, int64_t n);

// x[n] = 1 / (1 + exp(-x[n])) in place.
void sigmoid(float* x, int64_t n);

// out[n] = silu(gate[n]) * up[n]   (out may be gate).
void swiglu(const float* gate, const float* up, float* out, int64_t n);

// gpt-oss's clamped GLU: g = min(gate, limit), u = clamp(up, -limit, limit),
// out[n] = (u + 1) * g * sigmoid(alpha * g).
void swiglu_clamped(const float* gate, const float* up, float* out, int64_t n, float alpha,
                    float limit);

// y[n] += x[n]   (the residual stream).
void add(float* y, const float* x, int64_t n);

// y[t, i] += b[i] for t < T, i < n   (b null: nothing).
void add_bias(float* y, int64_t T, int64_t n, const float* b);

// y[t, i] += s[t] * x[t, i] for t < T, i < n.
void add_scaled_rows(float* y, const float* x, const float* s, int64_t T, int64_t n);

// Rotary position embedding of one model: the first n_dims of every head turn by
// pos * inv_freq[i] (pairs (2i, 2i+1), or (i, i + n_dims/2) when neox), cos and sin times
// attn_factor. The frequencies (YaRN, Llama 3 scaling) are model math: models/common/rope.h.
struct RopeParams {
    int n_dims = 0;
    bool neox = false;
    double attn_factor = 1.0;
    const double* inv_freq = nullptr;  // [n_dims / 2]
};
// Rotates T rows in place: row t at x + t * row_stride holds n_heads heads, head_stride apart,
// at position pos[t].
void rope(const RopeParams& p, float* x, int64_t T, int64_t row_stride, int n_heads,
          int head_stride, const int32_t* pos);

}  // namespace moe::ops
