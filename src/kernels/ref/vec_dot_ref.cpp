// Scalar reference dot products (see vec_dot_ref.h). Each function first turns a block into
// integer levels with the index math of the block dequantizers (quant_legacy/k/iq.cpp), then
// forms exact integer sums against the int8 activations; only the per-block scaling is float.
#include "kernels/ref/vec_dot_ref.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "kernels/ref/quant_blocks.h"
#include "kernels/ref/quant_common.h"

namespace moe::ref {

using detail::load_f16;
using detail::load_f32;
using detail::load_u16;
using detail::load_u32;
using kern::BlockQ8x32;

namespace {

// Σ a[i] * b[i] over f32 with 8 partial sums (the order the SIMD kernels' lanes follow).
template <class Load>
float dot_f32_with(const float* x, int64_t K, Load load) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= K; i += 8)
        for (int j = 0; j < 8; ++j) acc[j] += x[i + j] * load(i + j);
    for (; i < K; ++i) acc[i & 7] += x[i] * load(i);
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

BlockQ8x32 load_q8x32(const void* x, int64_t b) {
    BlockQ8x32 blk;
    std::memcpy(&blk, static_cast<const uint8_t*>(x) + b * int64_t(sizeof(BlockQ8x32)), sizeof blk);
    return blk;
}

int idot32(const int* u, const int8_t* q) {
    int s = 0;
    for (int i = 0; i < 32; ++i) s += u[i] * int(q[i]);
    return s;
}

// Nibble order shared by Q4_0/Q4_1/Q5_x/IQ4_NL/MXFP4: qs[j] low = element j, high = j + 16.
void nibbles(const uint8_t* qs, int* u) {
    for (int j = 0; j < 16; ++j) {
        u[j] = qs[j] & 0x0F;
        u[j + 16] = qs[j] >> 4;
    }
}

// One Q8_K activation block, decoded.
struct Q8K {
    float d;
    int8_t qs[256];
    int bsums[16];
};
Q8K load_q8k(const void* x, int64_t b) {
    const auto* p = static_cast<const uint8_t*>(x) + b * kern::kQ8KBytes;
    Q8K q;
    q.d = load_f32(p);
    std::memcpy(q.qs, p + 4, 256);
    for (int s = 0; s < 16; ++s) q.bsums[s] = int16_t(load_u16(p + 260 + 2 * s));
    return q;
}

// Legacy-style driver: per 32-block, `block(wb, u)` fills the integer levels u[32] and returns
// {scale of the integer dot, offset subtracted from each level, min (float, times x sum)}.
struct Block32 {
    float d;
    int offset;
    float m;
};
template <class Decode>
void dot_q8x32(int64_t K, const void* w, int block_bytes, const void* const* x, int nx, float* out,
               Decode decode) {
    for (int j = 0; j < nx; ++j) out[j] = 0.0f;
    const auto* wb = static_cast<const uint8_t*>(w);
    for (int64_t b = 0; b < K / 32; ++b, wb += block_bytes) {
        int u[32];
        const Block32 bw = decode(wb, u);
        for (int j = 0; j < nx; ++j) {
            const BlockQ8x32 xb = load_q8x32(x[j], b);
            const int isum = idot32(u, xb.qs) - bw.offset * xb.sum;
            out[j] += (bw.d * xb.d) * float(isum);
            if (bw.m != 0.0f) out[j] += (bw.m * xb.d) * float(xb.sum);
        }
    }
}

// K-quant driver: `decode(wb, u, scale, offset, sub, dmin_term)` fills 256 unsigned levels,
// per-sub-block integer scales (sub = 16 or 32 elements), per-sub-block level offsets and
// per-sub-block integer mins; returns {d, dmin}. Per super-block:
//   d * dx * Σ_s scale[s] * (Σ_{i in s} u[i] q[i] - offset[s] * Σ_{i in s} q[i])
//   - dmin * dx * Σ_s min[s] * Σ_{i in s} q[i]
struct SuperBlock {
    float d, dmin;
    int sub;  // elements per sub-block: 16 or 32
    int scale[16], offset[16], min[16];
};
template <class Decode>
void dot_q8k(int64_t K, const void* w, int block_bytes, const void* const* x, int nx, float* out,
             Decode decode) {
    for (int j = 0; j < nx; ++j) out[j] = 0.0f;
    const auto* wb = static_cast<const uint8_t*>(w);
    for (int64_t b = 0; b < K / 256; ++b, wb += block_bytes) {
        int u[256];
        SuperBlock sb{};
        decode(wb, u, sb);
        const int n_sub = 256 / sb.sub;
        for (int j = 0; j < nx; ++j) {
            const Q8K xb = load_q8k(x[j], b);
            int isum = 0, msum = 0;
            for (int s = 0; s < n_sub; ++s) {
                int dot = 0, qsum = 0;
                for (int i = s * sb.sub; i < (s + 1) * sb.sub; ++i) dot += u[i] * int(xb.qs[i]);
                for (int k = s * sb.sub / 16; k < (s + 1) * sb.sub / 16; ++k) qsum += xb.bsums[k];
                isum += sb.scale[s] * (dot - sb.offset[s] * qsum);
                msum += sb.min[s] * qsum;
            }
            out[j] += (sb.d * xb.d) * float(isum);
            if (msum != 0) out[j] -= (sb.dmin * xb.d) * float(msum);
        }
    }
}

}  // namespace

void q3_k_scales(const uint8_t* sb, int sc[16]) {
    for (int s = 0; s < 16; ++s) {
        const int low4 = s < 8 ? (sb[s] & 0x0F) : (sb[s - 8] >> 4);
        const int high2 = (sb[8 + s % 4] >> (2 * (s / 4))) & 3;
        sc[s] = (low4 | (high2 << 4)) - 32;
    }
}

void q4_k_scale_min(const uint8_t* s, int sc[8], int m[8]) {
    for (int j = 0; j < 8; ++j) {
        if (j < 4) {
            sc[j] = s[j] & 63;
            m[j] = s[j + 4] & 63;
        } else {
            sc[j] = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
            m[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
    }
}

// --- f32 activations: Σ w[i] * x[i], w converted exactly to f32 -----------------------------

void vec_dot_f32_f32(int64_t K, const void* w, const void* const* x, int nx, float* out) {
    const auto* p = static_cast<const uint8_t*>(w);
    for (int j = 0; j < nx; ++j)
        out[j] = dot_f32_with(static_cast<const float*>(x[j]), K,
                              [&](int64_t i) { return load_f32(p + 4 * i); });
}

void vec_dot_f16_f32(int64_t K, const void* w, const void* const* x, int nx, float* out) {
    const auto* p = static_cast<const uint8_t*>(w);
    for (int j = 0; j < nx; ++j)
        out[j] = dot_f32_with(static_cast<const float*>(x[j]), K,
                              [&](int64_t i) { return load_f16(p + 2 * i); });
}

void vec_dot_bf16_f32(int64_t K, const void* w, const void* const* x, int nx, float* out) {
    const auto* p = static_cast<const uint8_t*>(w);
    for (int j = 0; j < nx; ++j)
        out[j] = dot_f32_with(static_cast<const float*>(x[j]), K,
                              [&](int64_t i) { return bf16_to_f32(load_u16(p + 2 * i)); });
}

// --- 32-element formats x BlockQ8x32: Σ_b (dw * dx) * (Σ u q - offset * sum) + mw * dx * sum --

// Q8_0: u = q (signed), offset 0.
void vec_dot_q8_0_q8x32(int64_t K, const void* w, const void* const* x, int nx, float* out) {
    dot_q8x32(K, w, 34, x, nx, out, [](const uint8_t* b, int* u) {
        for (int i = 0; i < 32; ++i) u[i] = int8_t(b[2 + i]);
        return Block32{load_f16(b), 0, 0.0f};
    });
}

// Q4_0: u = nibble (0..15), offset 8.
void vec_dot_q4_0_q8x32(int64_t K, const void* w, const void* const* x, int nx, float* out) {
    dot_q8x32(K, w, 18, x, nx, out, [](const uint8_t* b, int* u) {
        nibbles(b + 2, u);
        return Block32{load_f16(b), 8, 0.0f};
    });
}

// Q4_1: u = nibble, offset 0, min m.
void vec_dot_q4_1_q8x32(int64_t K, const void* w, const void* const* x, int nx, float* out) {
    dot_q8x32(K, w, 20, x, nx, out, [](const uint8_t* b, int* u) {
        nibbles(b + 4, u);
        return Block32{load_f16(b), 0, load_f16(b + 2)};
    });
}

// Q5_0: u = nibble | qh bit << 4 (0..31), offset 16.
void vec_dot_q5_0_q8x32(int64_t K, const void* w, const void* const* x, int nx, float* out) {
    dot_q8x32(K, w, 22, x, nx, out, [](const uint8_t* b, int* u) {
        nibbles(b + 6, u);
        const uint32_t qh = load_u32(b + 2);
        for (int i = 0; i < 32; ++i) u[i] |= int((qh >> i) & 1) << 4;
        return Block32{load_f16(b), 16, 0.0f};
    });
}

// Q5_1: u as Q5_0, offset 0, min m.
void vec_dot_q5_1_q8x32(int64_t K, const void* w, const void* const* x, int nx, float* out) {
    dot_q8x32(K, w, 24, x, nx, out, [](const uint8_t* b, int* u) {
        nibbles(b + 8, u);
        const uint32_t qh = load_u32(b + 4);
        for (int i = 0; i < 32; ++i) u[i] |= int((qh >> i) & 1) << 4;
        return Block32{load_f16(b), 0, load_f16(b + 2)};
    });
}

// IQ4_NL: u = kIq4nlValues[nibble] (signed), offset 0.
void vec_dot_iq4_nl_q8x32(int64_t K, const void* w, const void* const* x, int nx, float* out) {
    dot_q8x32(K, w, 18, x, nx, out, [](const uint8_t* b, int* u) {
        nibbles(b + 2, u);
        for (int i = 0; i < 32; ++i) u[i] = kIq4nlValues[u[i]];
        return Block32{load_f16(b), 0, 0.0f};
    });
}

// MXFP4: u = kMxfp4Values[nibble] (doubled FP4), d = e8m0_to_f32_half(e), offset 0.
void vec_dot_mxfp4_q8x32(int64_t K, const void* w, const void* const* x, int nx, float* out) {
    dot_q8x32(K, w, 17, x, nx, out, [](const uint8_t* b, int* u) {
        nibbles(b + 1, u);
        for (int i = 0; i < 32; ++i) u[i] = kMxfp4Values[u[i]];
        return Block32{e8m0_to_f32_half(b[0]), 0, 0.0f};
    });
}

// --- 256-element formats x Q8_K (see dot_q8k for the formula) -------------------------------

// Q2_K: u = 2-bit level, scale = scales[s] & 15, min = scales[s] >> 4 (sub 16), offset 0.
void vec_dot_q2_k_q8k(int64_t K, const void* w, const void* const* x, int nx, float* out) {
    dot_q8k(K, w, 84, x, nx, out, [](const uint8_t* b, int* u, SuperBlock& sb) {
        for (int i = 0; i < 256; ++i) {
            const int h = i / 128, j = (i % 128) / 32, l = i % 32;
            u[i] = (b[16 + 32 * h + l] >> (2 * j)) & 3;
        }
        sb.sub = 16;
        for (int s = 0; s < 16; ++s) sb.scale[s] = b[s] & 0x0F, sb.min[s] = b[s] >> 4;
        sb.d = load_f16(b + 80);
        sb.dmin = load_f16(b + 82);
    });
}

// Q3_K: u = low2 + 4 * hbit (0..7) = q + 4, offset 4, signed 6-bit scales (sub 16), no min.
void vec_dot_q3_k_q8k(int64_t K, const void* w, const void* const* x, int nx, float* out) {
    dot_q8k(K, w, 110, x, nx, out, [](const uint8_t* b, int* u, SuperBlock& sb) {
        for (int i = 0; i < 256; ++i) {
            const int h = i / 128, j = (i % 128) / 32, l = i % 32;
            const int low = (b[32 + 32 * h + l] >> (2 * j)) & 3;
            const int hbit = (b[l] >> (4 * h + j)) & 1;
            u[i] = low + 4 * hbit;
        }
        sb.sub = 16;
        q3_k_scales(b + 96, sb.scale);
        for (int s = 0; s < 16; ++s) sb.offset[s] = 4;
        sb.d = load_f16(b + 108);
    });
}

// Q4_K: u = nibble, 6-bit scale and min per 32 (sub 32), offset 0.
void vec_dot_q4_k_q8k(int64_t K, const void* w, const void* const* x, int nx, float* out) {
    dot_q8k(K, w, 144, x, nx, out, [](const uint8_t* b, int* u, SuperBlock& sb) {
        for (int i = 0; i < 256; ++i) {
            const uint8_t byte = b[16 + 32 * (i / 64) + i % 32];
            u[i] = (i % 64) < 32 ? (byte & 0x0F) : (byte >> 4);
        }
        sb.sub = 32;
        q4_k_scale_min(b + 4, sb.scale, sb.min);
        sb.d = load_f16(b);
        sb.dmin = load_f16(b + 2);
    });
}

// Q5_K: u = nibble + 16 * hbit, otherwise as Q4_K.
void vec_dot_q5_k_q8k(int64_t K, const void* w, const void* const* x, int nx, float* out) {
    dot_q8k(K, w, 176, x, nx, out, [](const uint8_t* b, int* u, SuperBlock& sb) {
        for (int i = 0; i < 256; ++i) {
            const uint8_t byte = b[48 + 32 * (i / 64) + i % 32];
            const int nib = (i % 64) < 32 ? (byte & 0x0F) : (byte >> 4);
            u[i] = nib + (((b[16 + i % 32] >> (i / 32)) & 1) << 4);
        }
        sb.sub = 32;
        q4_k_scale_min(b + 4, sb.scale, sb.min);
        sb.d = load_f16(b);
        sb.dmin = load_f16(b + 2);
    });
}

// Q6_K: u = low4 | high2 << 4 (0..63) = q + 32, offset 32, int8 scales (sub 16), no min.
void vec_dot_q6_k_q8k(int64_t K, const void* w, const void* const* x, int nx, float* out) {
    dot_q8k(K, w, 210, x, nx, out, [](const uint8_t* b, int* u, SuperBlock& sb) {
        for (int i = 0; i < 256; ++i) {
            const int h = i / 128, k = (i % 128) / 32, l = i % 32;
            const uint8_t lb = b[64 * h + l + 32 * (k & 1)];
            const int low4 = k < 2 ? (lb & 0x0F) : (lb >> 4);
            const int high2 = (b[128 + 32 * h + l] >> (2 * k)) & 3;
            u[i] = low4 | (high2 << 4);
        }
        sb.sub = 16;
        for (int s = 0; s < 16; ++s) sb.scale[s] = int8_t(b[192 + s]), sb.offset[s] = 32;
        sb.d = load_f16(b + 208);
    });
}

// IQ4_XS: u = kIq4nlValues[nibble] (signed), scale = ls - 32 (sub 32), offset 0, no min.
void vec_dot_iq4_xs_q8k(int64_t K, const void* w, const void* const* x, int nx, float* out) {
    dot_q8k(K, w, 136, x, nx, out, [](const uint8_t* b, int* u, SuperBlock& sb) {
        const uint16_t scales_h = load_u16(b + 2);
        for (int s = 0; s < 8; ++s) {
            nibbles(b + 8 + 16 * s, u + 32 * s);
            for (int i = 0; i < 32; ++i) u[32 * s + i] = kIq4nlValues[u[32 * s + i]];
            const int ls =
                ((b[4 + s / 2] >> (4 * (s % 2))) & 0x0F) | (((scales_h >> (2 * s)) & 3) << 4);
            sb.scale[s] = ls - 32;
        }
        sb.sub = 32;
        sb.d = load_f16(b);
    });
}

void quantize_row_q8x32(const float* x, void* dst, int64_t K) {
    auto* out = static_cast<uint8_t*>(dst);
    for (int64_t b = 0; b < K / 32; ++b, x += 32, out += sizeof(BlockQ8x32)) {
        float amax = 0.0f;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
        BlockQ8x32 blk{};
        blk.d = amax / 127.0f;
        const float id = blk.d != 0.0f ? 1.0f / blk.d : 0.0f;
        for (int i = 0; i < 32; ++i) {
            blk.qs[i] = int8_t(std::nearbyint(x[i] * id));
            blk.sum += blk.qs[i];
        }
        if (blk.d <= 65504.0f) blk.d = fp16_to_f32(f32_to_fp16(blk.d));  // f32 beyond f16's range
        std::memcpy(out, &blk, sizeof blk);
    }
}

}  // namespace moe::ref
