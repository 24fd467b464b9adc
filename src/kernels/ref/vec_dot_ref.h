// Scalar reference dot products between one weight row and activation rows, per weight type,
// in the activation format the fast kernels use (kern::ActFormat). The exact math of each is
// stated in vec_dot_ref.cpp; the SIMD kernels compute the same integer sums and differ only in
// the order of the f32 additions.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/dispatch.h"

namespace moe::ref {

// f32 activations.
void vec_dot_f32_f32(int64_t K, const void* w, const void* const* x, int nx, float* out);
void vec_dot_f16_f32(int64_t K, const void* w, const void* const* x, int nx, float* out);
void vec_dot_bf16_f32(int64_t K, const void* w, const void* const* x, int nx, float* out);
// kern::BlockQ8x32 activations.
void vec_dot_q8_0_q8x32(int64_t K, const void* w, const void* const* x, int nx, float* out);
void vec_dot_q4_0_q8x32(int64_t K, const void* w, const void* const* x, int nx, float* out);
void vec_dot_q4_1_q8x32(int64_t K, const void* w, const void* const* x, int nx, float* out);
void vec_dot_q5_0_q8x32(int64_t K, const void* w, const void* const* x, int nx, float* out);
void vec_dot_q5_1_q8x32(int64_t K, const void* w, const void* const* x, int nx, float* out);
void vec_dot_iq4_nl_q8x32(int64_t K, const void* w, const void* const* x, int nx, float* out);
void vec_dot_mxfp4_q8x32(int64_t K, const void* w, const void* const* x, int nx, float* out);
// Q8_K activations.
void vec_dot_q2_k_q8k(int64_t K, const void* w, const void* const* x, int nx, float* out);
void vec_dot_q3_k_q8k(int64_t K, const void* w, const void* const* x, int nx, float* out);
void vec_dot_q4_k_q8k(int64_t K, const void* w, const void* const* x, int nx, float* out);
void vec_dot_q5_k_q8k(int64_t K, const void* w, const void* const* x, int nx, float* out);
void vec_dot_q6_k_q8k(int64_t K, const void* w, const void* const* x, int nx, float* out);
void vec_dot_iq4_xs_q8k(int64_t K, const void* w, const void* const* x, int nx, float* out);

// Activation quantizer for kern::BlockQ8x32: per 32 elements d = absmax / 127,
// q = round-half-even(x * (1 / d)) (0 when d = 0), sum = Σ q.
void quantize_row_q8x32(const float* x, void* dst, int64_t K);

// Integer levels of weight blocks as the kernels see them (shared with tests):
// the scale/min decoders of the k-quant formats.
void q3_k_scales(const uint8_t* sb, int sc[16]);          // signed, -32..31
void q4_k_scale_min(const uint8_t* s, int sc[8], int m[8]);  // 6-bit each

// Reference matmul y[T, N] = x[T, K] · w[N, K]^T: weight rows dequantized to f32, f32 dots.
void matmul_dequant(const float* x, int64_t T, const TensorView& w, float* y, ThreadPool& pool);

}  // namespace moe::ref
