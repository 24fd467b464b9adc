// Reference dequantization of one block of the quantized formats beyond Q8_0.
// Every function reads exactly one block (traits(t).block_bytes bytes, little-endian as stored
// in GGUF files) and writes traits(t).block_elems floats. These are the scalar ground truth the
// SIMD / GPU kernels are tested against; each definition documents its layout and math.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace moe::ref {

// Writes traits(t).block_elems floats for one block of type t.
using DequantizeBlockFn = void (*)(const uint8_t* block, float* dst);

// The block dequantizer of t, or nullptr if t is not supported.
DequantizeBlockFn dequantize_block_fn(DType t);

// Legacy 32-element formats (quant_legacy.cpp).
void dequantize_block_q4_0(const uint8_t* block, float* dst);
void dequantize_block_q4_1(const uint8_t* block, float* dst);
void dequantize_block_q5_0(const uint8_t* block, float* dst);
void dequantize_block_q5_1(const uint8_t* block, float* dst);

// K-quants, 256-element super-blocks (quant_k.cpp).
void dequantize_block_q2_k(const uint8_t* block, float* dst);
void dequantize_block_q3_k(const uint8_t* block, float* dst);
void dequantize_block_q4_k(const uint8_t* block, float* dst);
void dequantize_block_q5_k(const uint8_t* block, float* dst);
void dequantize_block_q6_k(const uint8_t* block, float* dst);
void dequantize_block_q8_k(const uint8_t* block, float* dst);

// Non-linear codebook formats (quant_iq.cpp).
void dequantize_block_iq4_nl(const uint8_t* block, float* dst);
void dequantize_block_iq4_xs(const uint8_t* block, float* dst);
void dequantize_block_mxfp4(const uint8_t* block, float* dst);

// The 16-entry IQ4_NL / IQ4_XS codebook (signed int8 levels, scaled by the block scale).
extern const int8_t kIq4nlValues[16];
// FP4 E2M1 values times 2 (so they are integers); paired with the halved E8M0 scale below.
extern const int8_t kMxfp4Values[16];
// 2^(e - 128): the E8M0 scale with the factor 1/2 that undoes kMxfp4Values' doubling.
float e8m0_to_f32_half(uint8_t e);

}  // namespace moe::ref
