// Reference quantizers: f32 -> GGUF blocks, for activation quantization and synthetic model
// files. They follow the upstream reference quantizers (no importance matrix) bit for bit, so
// a file written with them matches what the upstream tool writes from the same f32 data
// (checked on the fixtures for Q8_0, Q4_0, Q5_0, Q5_1; Q4_1 and Q8_K have no f32-twin data).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace moe::ref {

// Quantizes x[0..n) into n / block_elems consecutive blocks at dst (n a multiple of the
// type's block size; dst holds dtype_row_bytes(t, n) bytes).
using QuantizeRowFn = void (*)(const float* x, void* dst, int64_t n);

void quantize_row_q8_0(const float* x, void* dst, int64_t n);
void quantize_row_q4_0(const float* x, void* dst, int64_t n);
void quantize_row_q4_1(const float* x, void* dst, int64_t n);
void quantize_row_q5_0(const float* x, void* dst, int64_t n);
void quantize_row_q5_1(const float* x, void* dst, int64_t n);
// Q8_K: the activation format paired with K-quant weights (f32 scale, 256 int8, 16 block sums).
void quantize_row_q8_k(const float* x, void* dst, int64_t n);

// The quantizer of t, or nullptr if t has none.
QuantizeRowFn quantize_row_fn(DType t);

}  // namespace moe::ref
