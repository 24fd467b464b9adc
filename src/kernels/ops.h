// The kernel interface: the only kernel header model code includes. Activations are f32,
// row-major, outermost dimension first. Weights may be any supported DType.
// Every op has a plain scalar reference in kernels/ref/; fast paths are checked against it.
#pragma once

#include <cstdint>
#include <span>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace moe::ops {

// True if rows of this type can be dequantized / multiplied.
bool weight_type_supported(DType t);

// dst[0..n) = dequantized src row (n a multiple of the type's block size).
void dequantize_row(DType t, const void* src, float* dst, int64_t n);

// y[T, N] = x[T, K] · w[N, K]^T  (w: 2-D weight of any supported type; y must not alias x).
void matmul(const float* x, int64_t T, const TensorView& w, float* y, ThreadPool& pool);

// Copies row `id` of an embedding table [n_vocab, n_embd] to dst[n_embd].
void get_row(const TensorView& table, int64_t id, float* dst);

// y[T, n] = x / sqrt(mean(x^2) + eps) * w   (w may be empty: no scale).
void rms_norm(const float* x, int64_t T, int64_t n, const float* w, float eps, float* y);

// x[n] = softmax(x[n]) in place.
void softmax(float* x, int64_t n);

// out[n] = silu(gate[n]) * up[n]
void swiglu(const float* gate, const float* up, float* out, int64_t n);

}  // namespace moe::ops
