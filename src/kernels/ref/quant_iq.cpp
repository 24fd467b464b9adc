// Codebook formats: IQ4_NL, IQ4_XS (non-linear 4-bit levels) and MXFP4 (OCP microscaling FP4).
#include "kernels/ref/quant_blocks.h"
#include "kernels/ref/quant_common.h"

namespace moe::ref {

using detail::load_f16;
using detail::load_u16;

// Non-uniform levels fitted to a bell-shaped weight distribution (denser near zero).
const int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                 1,    13,   25,  38,  53,  69,  89,  113};

// FP4 E2M1: bit 3 = sign, bits 1-2 = exponent (bias 1), bit 0 = mantissa, giving
// 0, 0.5, 1, 1.5, 2, 3, 4, 6. Stored doubled so the table is integral.
const int8_t kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// E8M0 is a bare biased exponent: scale = 2^(e - 127). Halved to 2^(e - 128) to undo the
// doubled table. Built from bits (exact, including the subnormal results for e = 0 and 1).
// e = 255 (NaN in the OCP spec) maps to 2^127 like upstream; quantizers never emit it.
float e8m0_to_f32_half(uint8_t e) {
    const uint32_t bits = e < 2 ? (0x00200000u << e) : (uint32_t(e - 1) << 23);
    return f32_from_bits(bits);
}

// IQ4_NL, 18 bytes: f16 d | u8 qs[16]. Nibble order as Q4_0 (low nibbles = elements 0..15).
//   x = d * kIq4nlValues[nibble]
void dequantize_block_iq4_nl(const uint8_t* b, float* y) {
    const float d = load_f16(b);
    const uint8_t* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
        y[j] = d * float(kIq4nlValues[qs[j] & 0x0F]);
        y[j + 16] = d * float(kIq4nlValues[qs[j] >> 4]);
    }
}

// IQ4_XS, 136 bytes: f16 d | u16 scales_h | u8 scales_l[4] | u8 qs[128].
//   8 sub-blocks of 32, each with a 6-bit scale:
//     ls[s] = ((scales_l[s / 2] >> (4 * (s % 2))) & 15) | (((scales_h >> 2s) & 3) << 4)
//   Sub-block s uses qs[16s .. 16s+15] in the IQ4_NL nibble order:
//     x = d * (ls[s] - 32) * kIq4nlValues[nibble]
void dequantize_block_iq4_xs(const uint8_t* b, float* y) {
    const float d = load_f16(b);
    const uint16_t scales_h = load_u16(b + 2);
    const uint8_t* scales_l = b + 4;
    const uint8_t* qs = b + 8;
    for (int s = 0; s < 8; ++s) {
        const int ls =
            ((scales_l[s / 2] >> (4 * (s % 2))) & 0x0F) | (((scales_h >> (2 * s)) & 3) << 4);
        const float dl = d * float(ls - 32);
        const uint8_t* q = qs + 16 * s;
        float* out = y + 32 * s;
        for (int j = 0; j < 16; ++j) {
            out[j] = dl * float(kIq4nlValues[q[j] & 0x0F]);
            out[j + 16] = dl * float(kIq4nlValues[q[j] >> 4]);
        }
    }
}

// MXFP4, 17 bytes: u8 e (E8M0 shared scale) | u8 qs[16] (FP4 E2M1, Q4_0 nibble order).
//   x = 2^(e - 127) * fp4(nibble) = e8m0_to_f32_half(e) * kMxfp4Values[nibble]
void dequantize_block_mxfp4(const uint8_t* b, float* y) {
    const float d = e8m0_to_f32_half(b[0]);
    const uint8_t* qs = b + 1;
    for (int j = 0; j < 16; ++j) {
        y[j] = d * float(kMxfp4Values[qs[j] & 0x0F]);
        y[j + 16] = d * float(kMxfp4Values[qs[j] >> 4]);
    }
}

}  // namespace moe::ref
