// Legacy 32-element block formats: Q4_0, Q4_1, Q5_0, Q5_1 (GGUF spec / ggml layouts).
//
// All four share one nibble arrangement: byte qs[j] (j < 16) holds element j in its low nibble
// and element j + 16 in its high nibble, so the block splits into two halves, not pairs.
#include "kernels/ref/quant_blocks.h"
#include "kernels/ref/quant_common.h"

namespace moe::ref {

using detail::load_f16;
using detail::load_u32;

// Q4_0, 18 bytes: f16 d | u8 qs[16].
//   q = 4-bit unsigned (0..15), x = d * (q - 8).
void dequantize_block_q4_0(const uint8_t* b, float* y) {
    const float d = load_f16(b);
    const uint8_t* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
        y[j] = d * float(int(qs[j] & 0x0F) - 8);
        y[j + 16] = d * float(int(qs[j] >> 4) - 8);
    }
}

// Q4_1, 20 bytes: f16 d | f16 m | u8 qs[16].
//   q = 4-bit unsigned, x = d * q + m  (m is the block minimum).
void dequantize_block_q4_1(const uint8_t* b, float* y) {
    const float d = load_f16(b);
    const float m = load_f16(b + 2);
    const uint8_t* qs = b + 4;
    for (int j = 0; j < 16; ++j) {
        y[j] = d * float(qs[j] & 0x0F) + m;
        y[j + 16] = d * float(qs[j] >> 4) + m;
    }
}

// Q5_0, 22 bytes: f16 d | u32 qh (little-endian) | u8 qs[16].
//   q = nibble | (bit i of qh) << 4 for element i (0..31), x = d * (q - 16).
void dequantize_block_q5_0(const uint8_t* b, float* y) {
    const float d = load_f16(b);
    const uint32_t qh = load_u32(b + 2);
    const uint8_t* qs = b + 6;
    for (int j = 0; j < 16; ++j) {
        const int q0 = int(qs[j] & 0x0F) | int(((qh >> j) & 1) << 4);
        const int q1 = int(qs[j] >> 4) | int(((qh >> (j + 16)) & 1) << 4);
        y[j] = d * float(q0 - 16);
        y[j + 16] = d * float(q1 - 16);
    }
}

// Q5_1, 24 bytes: f16 d | f16 m | u32 qh | u8 qs[16].
//   q as in Q5_0 (0..31), x = d * q + m.
void dequantize_block_q5_1(const uint8_t* b, float* y) {
    const float d = load_f16(b);
    const float m = load_f16(b + 2);
    const uint32_t qh = load_u32(b + 4);
    const uint8_t* qs = b + 8;
    for (int j = 0; j < 16; ++j) {
        const int q0 = int(qs[j] & 0x0F) | int(((qh >> j) & 1) << 4);
        const int q1 = int(qs[j] >> 4) | int(((qh >> (j + 16)) & 1) << 4);
        y[j] = d * float(q0) + m;
        y[j + 16] = d * float(q1) + m;
    }
}

}  // namespace moe::ref
