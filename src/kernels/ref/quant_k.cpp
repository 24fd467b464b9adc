// K-quant super-block formats (256 elements): Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K.
//
// Each super-block has one or two f16 super-scales and per-sub-block integer scales. The loops
// below run over the output index i and compute, for each element, which bytes/bits hold it,
// rather than mirroring an optimized loop nest: that mapping is what SIMD kernels must match.
// Expressions keep the upstream evaluation order ((d * sc) * q - dmin * m) so results are
// bit-identical to the upstream dequantizer.
#include "kernels/ref/quant_blocks.h"
#include "kernels/ref/quant_common.h"

namespace moe::ref {

using detail::load_f16;
using detail::load_f32;

namespace {

// The 12-byte scale/min array of Q4_K and Q5_K: 8 six-bit scales and 8 six-bit mins.
//   bytes 0..3 : bits 0-5 = scale[0..3], bits 6-7 = bits 4-5 of scale[4..7]
//   bytes 4..7 : bits 0-5 = min[0..3],   bits 6-7 = bits 4-5 of min[4..7]
//   bytes 8..11: bits 0-3 = bits 0-3 of scale[4..7], bits 4-7 = bits 0-3 of min[4..7]
void k4_scale_min(int j, const uint8_t* s, int& scale, int& min) {
    if (j < 4) {
        scale = s[j] & 63;
        min = s[j + 4] & 63;
    } else {
        scale = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

}  // namespace

// Q2_K, 84 bytes: u8 scales[16] | u8 qs[64] | f16 d | f16 dmin.
//   16 sub-blocks of 16; scales[s]: low nibble = scale, high nibble = min (4-bit each).
//   Element i: h = i / 128, j = (i % 128) / 32, l = i % 32;
//     q = (qs[32h + l] >> 2j) & 3  (2-bit), s = i / 16
//     x = d * (scales[s] & 15) * q - dmin * (scales[s] >> 4)
void dequantize_block_q2_k(const uint8_t* b, float* y) {
    const uint8_t* scales = b;
    const uint8_t* qs = b + 16;
    const float d = load_f16(b + 80);
    const float dmin = load_f16(b + 82);
    for (int i = 0; i < 256; ++i) {
        const int h = i / 128, j = (i % 128) / 32, l = i % 32;
        const int q = (qs[32 * h + l] >> (2 * j)) & 3;
        const int sc = scales[i / 16];
        const float dl = d * float(sc & 0x0F);
        const float ml = dmin * float(sc >> 4);
        y[i] = dl * float(q) - ml;
    }
}

// Q3_K, 110 bytes: u8 hmask[32] | u8 qs[64] | u8 scales[12] | f16 d.
//   16 sub-blocks of 16 with signed 6-bit scales packed in 12 bytes: for s in 0..15,
//     low4  = s < 8 ? scales[s] & 15 : scales[s - 8] >> 4
//     high2 = (scales[8 + s % 4] >> (2 * (s / 4))) & 3
//     sc    = (low4 | high2 << 4) - 32
//   Element i: h = i / 128, j = (i % 128) / 32, l = i % 32;
//     low  = (qs[32h + l] >> 2j) & 3, hbit = (hmask[l] >> (4h + j)) & 1
//     q    = low - (hbit ? 0 : 4)   (range -4..3),  x = d * sc[i / 16] * q
void dequantize_block_q3_k(const uint8_t* b, float* y) {
    const uint8_t* hmask = b;
    const uint8_t* qs = b + 32;
    const uint8_t* sb = b + 96;
    const float d = load_f16(b + 108);
    int sc[16];
    for (int s = 0; s < 16; ++s) {
        const int low4 = s < 8 ? (sb[s] & 0x0F) : (sb[s - 8] >> 4);
        const int high2 = (sb[8 + s % 4] >> (2 * (s / 4))) & 3;
        sc[s] = (low4 | (high2 << 4)) - 32;
    }
    for (int i = 0; i < 256; ++i) {
        const int h = i / 128, j = (i % 128) / 32, l = i % 32;
        const int low = (qs[32 * h + l] >> (2 * j)) & 3;
        const int hbit = (hmask[l] >> (4 * h + j)) & 1;
        const int q = low - (hbit ? 0 : 4);
        const float dl = d * float(sc[i / 16]);
        y[i] = dl * float(q);
    }
}

// Q4_K, 144 bytes: f16 d | f16 dmin | u8 scales[12] | u8 qs[128].
//   8 sub-blocks of 32 with 6-bit (scale, min) pairs (see k4_scale_min).
//   Element i: c = i / 64, l = i % 32, s = i / 32;
//     q = (i % 64) < 32 ? qs[32c + l] & 15 : qs[32c + l] >> 4
//     x = d * scale[s] * q - dmin * min[s]
void dequantize_block_q4_k(const uint8_t* b, float* y) {
    const float d = load_f16(b);
    const float dmin = load_f16(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* qs = b + 16;
    for (int i = 0; i < 256; ++i) {
        const int c = i / 64, l = i % 32, s = i / 32;
        const uint8_t byte = qs[32 * c + l];
        const int q = (i % 64) < 32 ? (byte & 0x0F) : (byte >> 4);
        int sc, m;
        k4_scale_min(s, scales, sc, m);
        const float dl = d * float(sc);
        const float ml = dmin * float(m);
        y[i] = dl * float(q) - ml;
    }
}

// Q5_K, 176 bytes: f16 d | f16 dmin | u8 scales[12] | u8 qh[32] | u8 qs[128].
//   As Q4_K plus a fifth bit: for element i (s = i / 32), hbit = (qh[i % 32] >> s) & 1,
//     q = nibble + 16 * hbit  (0..31),  x = d * scale[s] * q - dmin * min[s]
void dequantize_block_q5_k(const uint8_t* b, float* y) {
    const float d = load_f16(b);
    const float dmin = load_f16(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* qh = b + 16;
    const uint8_t* qs = b + 48;
    for (int i = 0; i < 256; ++i) {
        const int c = i / 64, l = i % 32, s = i / 32;
        const uint8_t byte = qs[32 * c + l];
        const int nib = (i % 64) < 32 ? (byte & 0x0F) : (byte >> 4);
        const int q = nib + (((qh[l] >> s) & 1) << 4);
        int sc, m;
        k4_scale_min(s, scales, sc, m);
        const float dl = d * float(sc);
        const float ml = dmin * float(m);
        y[i] = dl * float(q) - ml;
    }
}

// Q6_K, 210 bytes: u8 ql[128] | u8 qh[64] | i8 scales[16] | f16 d.
//   Element i: h = i / 128, k = (i % 128) / 32, l = i % 32;
//     low4  = ql[64h + l + 32 * (k & 1)], low nibble if k < 2 else high nibble
//     high2 = (qh[32h + l] >> 2k) & 3
//     q     = (low4 | high2 << 4) - 32  (range -32..31),  x = d * scales[i / 16] * q
void dequantize_block_q6_k(const uint8_t* b, float* y) {
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const auto* scales = reinterpret_cast<const int8_t*>(b + 192);
    const float d = load_f16(b + 208);
    for (int i = 0; i < 256; ++i) {
        const int h = i / 128, k = (i % 128) / 32, l = i % 32;
        const uint8_t lb = ql[64 * h + l + 32 * (k & 1)];
        const int low4 = k < 2 ? (lb & 0x0F) : (lb >> 4);
        const int high2 = (qh[32 * h + l] >> (2 * k)) & 3;
        const int q = (low4 | (high2 << 4)) - 32;
        y[i] = d * float(scales[i / 16]) * float(q);
    }
}

// Q8_K, 292 bytes: f32 d | i8 qs[256] | i16 bsums[16].
//   x = d * qs[i]; bsums[s] = sum of qs[16s .. 16s+15] (used by dot products, not here).
void dequantize_block_q8_k(const uint8_t* b, float* y) {
    const float d = load_f32(b);
    const auto* qs = reinterpret_cast<const int8_t*>(b + 4);
    for (int i = 0; i < 256; ++i) y[i] = d * float(qs[i]);
}

}  // namespace moe::ref
