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
// then splits the N rows over the pool; prompt batches are tiled so each weight row is loaded
// once per tile of tokens.
void matmul(const float* x, int64_t T, const TensorView& w, float* y, ThreadPool& pool);

// Activations prepared for the kernels of one weight type, once, for several matrices (e.g. the
// MoE block input shared by every expert's gate and up matrices). For f32-activation types it
// points at x itself, which must then outlive it.
struct PackedActs {
    int64_t T = 0, K = 0, row_bytes = 0;
    int act = -1;  // kern::ActFormat
    // The pool's KernelOptions at pack time, resolved: matmul_rows runs with them.
    int isa = 0;  // kern::Isa
    bool deterministic = false;
    ThreadPool* pool = nullptr;  // the pool packed for: its per-thread scratch serves the GEMM
    const uint8_t* base = nullptr;
    std::vector<uint8_t> storage;
    const void* row(int64_t t) const { return base + t * row_bytes; }
};
// Packs x[T, K] for weights of type wtype under the pool's kernel options (quantizing rows over
// the pool when `parallel`).
void pack_acts(const float* x, int64_t T, int64_t K, DType wtype, PackedActs& out, ThreadPool& pool,
               bool parallel = true);
// True if acts packed for one type can feed weights of type wtype.
bool acts_fit(const PackedActs& a, DType wtype);
// One task of a matmul: y[i * ldy + n] = dot(x row (rows ? rows[i] : i), w row n) for i < T and
// n in [n0, n1). Single-threaded; callers split (matrix, row block) tasks over a pool. With
// x.deterministic every row takes the same kernel path whatever T is (batch invariance).
void matmul_rows(const PackedActs& x, const int64_t* rows, int64_t T, const TensorView& w,
                 int64_t n0, int64_t n1, float* y, int64_t ldy);
// Rows per task that keeps every thread busy without making tasks tiny.
int64_t matmul_row_block(int64_t N, int64_t T, int n_threads);

// Copies row `id` of an embedding table [n_vocab, n_embd] to dst[n_embd].
void get_row(const TensorView& table, int64_t id, float* dst);

// y[T, n] = x / sqrt(mean(x^2) + eps) * w   (w may be empty: no scale).
void rms_norm(const float* x, int64_t T, int64_t n, const float* w, float eps, float* y);

// x[n] = softmax(x[n]) in place.
void softmax(float* x, int64_t n);

// out[n] = silu(gate[n]) * up[n]
void swiglu(const float* gate, const float* up, float* out, int64_t n);

}  // namespace moe::ops
