// Attention's inner loops in 512-bit registers (kern::AttnRowsKernel): the portable loops of
// cpu/attention_cpu.cpp compile to SSE2 and were ~40% of a 512-token Qwen3-30B-A3B prefill.
// GCC 12's AVX-512 headers trip -Wuninitialized as in kernels_avx512.cpp.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/cpu_kernels.h"

namespace moe::cpu::avx512 {
namespace {

inline __mmask16 tail_mask(int64_t n) {
    return __mmask16((1u << n) - 1);
}

// Four key rows at a time against one query slice of n elements: the query chunk is loaded
// once for the four rows, and the four sums are independent chains.
inline void dot4(const float* q, const float* const* k, int64_t n, float* out) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 qv = _mm512_loadu_ps(q + i);
        for (int r = 0; r < 4; ++r) acc[r] = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k[r] + i), acc[r]);
    }
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 qv = _mm512_maskz_loadu_ps(m, q + i);
        for (int r = 0; r < 4; ++r)
            acc[r] = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k[r] + i), acc[r]);
    }
    for (int r = 0; r < 4; ++r) out[r] = _mm512_reduce_add_ps(acc[r]);
}

inline float dot1(const float* q, const float* k, int64_t n) {
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(k + i), acc);
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        acc =
            _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), _mm512_maskz_loadu_ps(m, k + i), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

}  // namespace

void attn_scores_f32(const float* q, const float* k, int64_t stride, int64_t n, int64_t kd,
                     int64_t split, float* out) {
    const bool two = split > 0 && split < kd;  // MLA: latent and rotary parts summed apart
    const int64_t n0 = two ? split : kd;
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const float* kr[4] = {k + j * stride, k + (j + 1) * stride, k + (j + 2) * stride,
                              k + (j + 3) * stride};
        dot4(q, kr, n0, out + j);
        if (two) {
            const float* kt[4] = {kr[0] + split, kr[1] + split, kr[2] + split, kr[3] + split};
            float rest[4];
            dot4(q + split, kt, kd - split, rest);
            for (int r = 0; r < 4; ++r) out[j + r] += rest[r];
        }
    }
    for (; j < n; ++j) {
        const float* kr = k + j * stride;
        out[j] = dot1(q, kr, n0) + (two ? dot1(q + split, kr + split, kd - split) : 0.0f);
    }
}

void attn_accum_f32(const float* p, const float* v, int64_t stride, int64_t n, int64_t vd,
                    float* o) {
    int64_t i = 0;
    for (; i + 64 <= vd; i += 64) {  // 64 outputs in registers over all n rows
        __m512 acc[4];
        for (int c = 0; c < 4; ++c) acc[c] = _mm512_loadu_ps(o + i + 16 * c);
        for (int64_t j = 0; j < n; ++j) {
            const __m512 pj = _mm512_set1_ps(p[j]);
            const float* vr = v + j * stride + i;
            for (int c = 0; c < 4; ++c)
                acc[c] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vr + 16 * c), acc[c]);
        }
        for (int c = 0; c < 4; ++c) _mm512_storeu_ps(o + i + 16 * c, acc[c]);
    }
    for (; i < vd; i += 16) {
        const __mmask16 m = vd - i >= 16 ? __mmask16(0xFFFF) : tail_mask(vd - i);
        __m512 acc = _mm512_maskz_loadu_ps(m, o + i);
        for (int64_t j = 0; j < n; ++j)
            acc = _mm512_fmadd_ps(_mm512_set1_ps(p[j]),
                                  _mm512_maskz_loadu_ps(m, v + j * stride + i), acc);
        _mm512_mask_storeu_ps(o + i, m, acc);
    }
}

}  // namespace moe::cpu::avx512
