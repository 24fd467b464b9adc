// Entry points of the per-ISA kernel files (kernels_avx2.cpp, kernels_avx512.cpp). Both compile
// the same templates (x86_kernels.inc) with their own flags, in their own namespace; the AVX-512
// file adds the 512-bit dots (zmm_kernels.inc) and the prompt GEMM (zmm_gemm.inc). Only
// kernels/dispatch.cpp refers to them, after checking the CPU supports the ISA.
#pragma once

#include <cstdint>

namespace moe::cpu {

// Each dot kernel comes with a _rows version for one activation row (decode): out[r] = dot(row r
// at w + r * stride, x) for r < n, the kernel inlined into the row loop (kern::RowsFn: stage is
// the caller's staging buffer).
#define MOE_DECLARE_DOT(name)                                                            \
    void name(int64_t K, const void* w, const void* const* x, int nx, float* out);       \
    void name##_rows(int64_t K, const void* w, int64_t stride, int64_t n, const void* x, \
                     float* out, void* stage);
#define MOE_DECLARE_CPU_KERNELS                                    \
    MOE_DECLARE_DOT(vec_dot_f32_f32)                               \
    MOE_DECLARE_DOT(vec_dot_f16_f32)                               \
    MOE_DECLARE_DOT(vec_dot_bf16_f32)                              \
    MOE_DECLARE_DOT(vec_dot_q8_0_q8x32)                            \
    MOE_DECLARE_DOT(vec_dot_q4_0_q8x32)                            \
    MOE_DECLARE_DOT(vec_dot_q4_1_q8x32)                            \
    MOE_DECLARE_DOT(vec_dot_q5_0_q8x32)                            \
    MOE_DECLARE_DOT(vec_dot_q5_1_q8x32)                            \
    MOE_DECLARE_DOT(vec_dot_iq4_nl_q8x32)                          \
    MOE_DECLARE_DOT(vec_dot_mxfp4_q8x32)                           \
    MOE_DECLARE_DOT(vec_dot_q2_k_q8k)                              \
    MOE_DECLARE_DOT(vec_dot_q3_k_q8k)                              \
    MOE_DECLARE_DOT(vec_dot_q4_k_q8k)                              \
    MOE_DECLARE_DOT(vec_dot_q5_k_q8k)                              \
    MOE_DECLARE_DOT(vec_dot_q6_k_q8k)                              \
    MOE_DECLARE_DOT(vec_dot_iq4_xs_q8k)                            \
    void quantize_row_q8x32(const float* x, void* dst, int64_t K); \
    void quantize_row_q8_k(const float* x, void* dst, int64_t K);  \
    void f16_to_f32_row(const void* src, float* dst, int64_t n);   \
    void bf16_to_f32_row(const void* src, float* dst, int64_t n);  \
    void q8_0_to_f32_row(const void* src, float* dst, int64_t n);

namespace avx2 {
MOE_DECLARE_CPU_KERNELS
}
namespace avx512 {
MOE_DECLARE_CPU_KERNELS
// Prompt GEMM (zmm_gemm.inc); see kern::GemmKernel.
int64_t g16_bytes_q8k(int64_t K);
int64_t g16_bytes_q8x32(int64_t K);
void pack_g16_q8k(const void* const* rows, int64_t K, void* dst);
void pack_g16_q8x32(const void* const* rows, int64_t K, void* dst);
// Attention's inner loops (attention_rows_avx512.cpp); see kern::AttnRowsKernel.
void attn_scores_f32(const float* q, const float* k, int64_t stride, int64_t n, int64_t kd,
                     int64_t split, float* out);
void attn_accum_f32(const float* p, const float* v, int64_t stride, int64_t n, int64_t vd,
                    float* o);
int64_t p8_bytes_q8k(int64_t K);
int64_t p8_bytes_q8x32(int64_t K);
void pack_p8_q8k(const void* const* rows, int64_t K, void* dst);
void pack_p8_q8x32(const void* const* rows, int64_t K, void* dst);
#define MOE_DECLARE_GEMM(name)                                                           \
    void name(int64_t K, const void* w, int64_t wstride, int64_t n_rows, const void* xg, \
              int64_t n_tokens, float* y, int64_t ldy, void* unpack);
MOE_DECLARE_GEMM(gemm_q4_k_g16)
MOE_DECLARE_GEMM(gemm_q5_k_g16)
MOE_DECLARE_GEMM(gemm_q6_k_g16)
MOE_DECLARE_GEMM(gemm_q2_k_g16)
MOE_DECLARE_GEMM(gemm_q3_k_g16)
MOE_DECLARE_GEMM(gemm_iq4_xs_g16)
MOE_DECLARE_GEMM(gemm_q8_0_g16)
MOE_DECLARE_GEMM(gemm_q4_0_g16)
MOE_DECLARE_GEMM(gemm_q5_0_g16)
MOE_DECLARE_GEMM(gemm_iq4_nl_g16)
MOE_DECLARE_GEMM(gemm_mxfp4_g16)
#undef MOE_DECLARE_GEMM
}  // namespace avx512

#undef MOE_DECLARE_CPU_KERNELS
#undef MOE_DECLARE_DOT

}  // namespace moe::cpu
