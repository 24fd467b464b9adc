// Reference quantizers for Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and Q8_K. Block layouts are documented
// with the dequantizers (quant_legacy.cpp, quant_k.cpp); this file states only the rounding.
// Scales are computed in f32 and the reciprocal of the unrounded f32 scale is used to pick
// levels (as upstream does), even though the stored f16 scale is slightly different.
// Levels are chosen by truncating x / d + offset + 0.5, which is floor (round half up) since
// the argument is never negative.
#include "kernels/ref/quantize.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "kernels/ref/quant_common.h"

namespace moe::ref {

using detail::store_f16;
using detail::store_u16;
using detail::store_u32;

namespace {

// The element with the largest magnitude, sign kept (the first one on ties).
float signed_absmax(const float* x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; ++j) {
        if (amax < std::fabs(x[j])) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    }
    return max;
}

// Writes the shared nibble layout: low nibbles = elements 0..15, high = 16..31.
void pack_nibbles(const int* q, uint8_t* qs) {
    for (int j = 0; j < 16; ++j) qs[j] = uint8_t((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
}

// Fifth bits: bit i of the little-endian u32 is bit 4 of element i.
uint32_t high_bits(const int* q) {
    uint32_t qh = 0;
    for (int j = 0; j < 32; ++j) qh |= uint32_t((q[j] >> 4) & 1) << j;
    return qh;
}

}  // namespace

// Q8_0: d = absmax / 127, q = round-half-away(x / d).
void quantize_row_q8_0(const float* x, void* dst, int64_t n) {
    auto* b = static_cast<uint8_t*>(dst);
    for (int64_t i = 0; i < n; i += 32, x += 32, b += 34) {
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_f16(b, d);
        for (int j = 0; j < 32; ++j) b[2 + j] = uint8_t(int8_t(std::round(x[j] * id)));
    }
}

// Q4_0: d = m / -8 where m is the signed absmax, so m itself maps to level 0 (value -8 d) and
// the opposite extreme to 16, clamped to 15. q = min(15, trunc(x / d + 8.5)).
void quantize_row_q4_0(const float* x, void* dst, int64_t n) {
    auto* b = static_cast<uint8_t*>(dst);
    for (int64_t i = 0; i < n; i += 32, x += 32, b += 18) {
        const float d = signed_absmax(x, 32) / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_f16(b, d);
        int q[32];
        for (int j = 0; j < 32; ++j) q[j] = std::min(15, int(x[j] * id + 8.5f));
        pack_nibbles(q, b + 2);
    }
}

// Q4_1: m = min, d = (max - min) / 15, q = min(15, trunc((x - m) / d + 0.5)).
void quantize_row_q4_1(const float* x, void* dst, int64_t n) {
    auto* b = static_cast<uint8_t*>(dst);
    for (int64_t i = 0; i < n; i += 32, x += 32, b += 20) {
        float lo = FLT_MAX, hi = -FLT_MAX;
        for (int j = 0; j < 32; ++j) {
            lo = std::min(lo, x[j]);
            hi = std::max(hi, x[j]);
        }
        const float d = (hi - lo) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_f16(b, d);
        store_f16(b + 2, lo);
        int q[32];
        for (int j = 0; j < 32; ++j) q[j] = std::min(15, int((x[j] - lo) * id + 0.5f));
        pack_nibbles(q, b + 4);
    }
}

// Q5_0: as Q4_0 with 32 levels: d = m / -16, q = min(31, trunc(x / d + 16.5)).
void quantize_row_q5_0(const float* x, void* dst, int64_t n) {
    auto* b = static_cast<uint8_t*>(dst);
    for (int64_t i = 0; i < n; i += 32, x += 32, b += 22) {
        const float d = signed_absmax(x, 32) / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_f16(b, d);
        int q[32];
        for (int j = 0; j < 32; ++j) q[j] = std::min(31, int(x[j] * id + 16.5f));
        store_u32(b + 2, high_bits(q));
        pack_nibbles(q, b + 6);
    }
}

// Q5_1: as Q4_1 with 32 levels: d = (max - min) / 31, q = min(31, trunc((x - m) / d + 0.5)).
void quantize_row_q5_1(const float* x, void* dst, int64_t n) {
    auto* b = static_cast<uint8_t*>(dst);
    for (int64_t i = 0; i < n; i += 32, x += 32, b += 24) {
        float lo = FLT_MAX, hi = -FLT_MAX;
        for (int j = 0; j < 32; ++j) {
            lo = std::min(lo, x[j]);
            hi = std::max(hi, x[j]);
        }
        const float d = (hi - lo) / 31.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_f16(b, d);
        store_f16(b + 2, lo);
        int q[32];
        for (int j = 0; j < 32; ++j) q[j] = std::min(31, int((x[j] - lo) * id + 0.5f));
        store_u32(b + 4, high_bits(q));
        pack_nibbles(q, b + 8);
    }
}

// Q8_K: iscale = -127 / m (m the signed absmax, so m maps to -127), q = min(127,
// round-half-even(iscale * x)), d = 1 / iscale stored as f32; bsums[s] = sum of q[16s..16s+15].
// An all-zero block stores d = 0 and q = 0.
void quantize_row_q8_k(const float* x, void* dst, int64_t n) {
    auto* b = static_cast<uint8_t*>(dst);
    for (int64_t i = 0; i < n; i += 256, x += 256, b += 292) {
        const float max = signed_absmax(x, 256);
        int q[256] = {};
        float d = 0.0f;
        if (max != 0.0f) {
            const float iscale = -127.0f / max;
            for (int j = 0; j < 256; ++j) q[j] = std::min(127, int(std::nearbyint(iscale * x[j])));
            d = 1.0f / iscale;
        }
        store_u32(b, bits_from_f32(d));
        for (int j = 0; j < 256; ++j) b[4 + j] = uint8_t(int8_t(q[j]));
        for (int s = 0; s < 16; ++s) {
            int sum = 0;
            for (int j = 0; j < 16; ++j) sum += q[16 * s + j];
            store_u16(b + 260 + 2 * s, uint16_t(int16_t(sum)));
        }
    }
}

QuantizeRowFn quantize_row_fn(DType t) {
    switch (t) {
        case DType::Q8_0:
            return quantize_row_q8_0;
        case DType::Q4_0:
            return quantize_row_q4_0;
        case DType::Q4_1:
            return quantize_row_q4_1;
        case DType::Q5_0:
            return quantize_row_q5_0;
        case DType::Q5_1:
            return quantize_row_q5_1;
        case DType::Q8_K:
            return quantize_row_q8_k;
        default:
            return nullptr;
    }
}

}  // namespace moe::ref
