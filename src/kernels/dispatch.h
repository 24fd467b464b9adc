// Run-time selection of the CPU kernels: which instruction sets this machine has, which one to
// use (MOE_ISA=scalar|avx2|avx512 overrides), and one table of dot-product kernels per
// (weight type, ISA). Internal to kernels/ and its tests; model code only sees ops.h.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/dtype.h"

namespace moe::kern {

enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };
std::string_view isa_name(Isa isa);

struct CpuFeatures {
    bool avx2 = false, fma = false, f16c = false;                                // + OS saves YMM
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;  // + OS saves ZMM
    bool avx512vnni = false, avx512bf16 = false;
};
const CpuFeatures& cpu_features();

// True if this machine (CPU and OS) can run kernels of that ISA. The AVX-512 kernels also use
// VNNI and BF16, so Avx512 means F/BW/VL/DQ + VNNI + BF16.
bool isa_supported(Isa isa);
// The ISA matmul uses: the one forced by set_isa_override if any, else MOE_ISA if set (clamped
// to what is supported), else the best supported one.
Isa active_isa();
// The ISA a session's kernels use: `requested` (a KernelOptions::isa value) clamped to what this
// machine supports, or active_isa() when it is negative.
Isa resolve_isa(int requested);
// Forces the process default (tests, benchmarks) until clear_isa_override().
void set_isa_override(Isa isa);
void clear_isa_override();

// How activations are prepared for a weight type before the dot products.
enum class ActFormat : int {
    F32,    // f32 as is (F32, F16, BF16 weights)
    Q8x32,  // BlockQ8x32 per 32 elements (legacy formats, IQ4_NL, MXFP4)
    Q8K,    // GGUF Q8_K block per 256 elements (k-quants, IQ4_XS)
};

// 32 activations quantized to int8: x ≈ d * qs[i]; sum = Σ qs[i] (lets kernels fold the
// weight formats' offsets and minimums into one term per block). As in GGUF's Q8_0 blocks, qs
// are rounded with 1/(amax/127) and d is then rounded to f16: measured on the fixtures, this
// keeps every file's error (and its routing near-ties) at the upstream engine's, where an f32 d
// flipped more experts on mixtral-q4_k_m. Stored as f32 (kernels load it directly; a d beyond
// f16's range stays f32). 40 bytes, 4-byte aligned.
struct BlockQ8x32 {
    float d;
    int32_t sum;
    int8_t qs[32];
};
static_assert(sizeof(BlockQ8x32) == 40);
inline constexpr int kQ8KBytes = 292;  // f32 d | i8 qs[256] | i16 bsums[16]

// out[j] = dot(weight row w, activation row x[j]) for j < nx (1 <= nx <= kMaxNx); K elements.
// x[j] points at the row in the kernel's ActFormat.
inline constexpr int kMaxNx = 8;
using VecDotFn = void (*)(int64_t K, const void* w, const void* const* x, int nx, float* out);
// Quantizes one activation row of K elements into the ActFormat's blocks.
using QuantizeActFn = void (*)(const float* x, void* dst, int64_t K);

// Prompt GEMM (AVX-512 only, for the types where it pays): kGemmTokens activation rows packed
// into one group (kernels/cpu/zmm_gemm.inc), then rows x groups in one call.
inline constexpr int kGemmTokens = 16;
using GroupBytesFn = int64_t (*)(int64_t K);
using PackGroupFn = void (*)(const void* const* rows, int64_t K, void* dst);
// y[t * ldy + r] = dot(w row r, token t) for r < n_rows, t < n_tokens; token t is lane
// t % kGemmTokens of group t / kGemmTokens (the last group may be partly padding), except that a
// last group of at most kGemmTokens / 2 tokens is a pair group (pack_pairs: two K positions of
// a token per lane pair, no lane wasted on padding up to 8 tokens). unpack: the
// caller's gemm_unpack_bytes(K) bytes for the weight rows it decodes (no global scratch).
using GemmFn = void (*)(int64_t K, const void* w, int64_t wstride, int64_t n_rows, const void* xg,
                        int64_t n_tokens, float* y, int64_t ldy, void* unpack);
// 4 weight rows unpacked to levels and integer scales, at most 1.5 bytes per weight.
inline int64_t gemm_unpack_bytes(int64_t K) {
    return 4 * K * 3 / 2;
}
struct GemmKernel {
    DType wtype;
    ActFormat act;
    GroupBytesFn group_bytes;
    PackGroupFn pack;  // kGemmTokens rows
    GroupBytesFn pair_bytes;
    PackGroupFn pack_pairs;  // kGemmTokens / 2 rows
    GemmFn run;
};
// The GEMM for (wtype, isa), or nullptr (then the dot kernels do prompts too).
const GemmKernel* find_gemm(DType wtype, Isa isa);

// out[r] = dot(weight row r at w + r * stride, activation row x) for r < n: the single-token
// (decode) loop with the kernel inlined, where a call per row of a small matrix (MLA's per-head
// products, K = 128) cost as much as the row's products. stage: the caller's rows_stage_bytes(K)
// bytes, 64-byte aligned, where a kernel may stage the activation row once for all n rows (no
// global scratch).
using RowsFn = void (*)(int64_t K, const void* w, int64_t stride, int64_t n, const void* x,
                        float* out, void* stage);
// The AVX-512 32-element formats stage six zmm registers per 128 activations (XQuad in
// cpu/zmm_kernels.inc); the other kernels use none of it.
inline constexpr int64_t rows_stage_bytes(int64_t K) {
    return K / 128 * 6 * 64;
}

struct DotKernel {
    DType wtype;
    Isa isa;
    ActFormat act;
    VecDotFn dot;
    RowsFn rows = nullptr;  // nullptr: matmul_rows calls dot per row
};

ActFormat act_format(DType wtype);
int64_t act_row_bytes(ActFormat f, int64_t K);
int act_block_elems(ActFormat f);  // K must be a multiple of it (1 for F32)
// The kernel for (wtype, isa): the best entry at or below `isa` (scalar always exists), or
// nullptr if wtype has no dot kernel.
const DotKernel* find_kernel(DType wtype, Isa isa);
// The exact (wtype, isa) entry, or nullptr: what tests iterate over.
const DotKernel* exact_kernel(DType wtype, Isa isa);
// The activation quantizer of format f on isa (nullptr for F32).
QuantizeActFn find_quantizer(ActFormat f, Isa isa);

// n elements of a KV cache row stored as t (F16, BF16, Q8_0: n a multiple of 32) to f32, the
// same values as ops::dequantize_row. nullptr for F32 (read in place) and other types.
using RowToF32Fn = void (*)(const void* src, float* dst, int64_t n);
RowToF32Fn find_row_to_f32(DType t, Isa isa);

// Attention's inner loops over f32 rows (cpu/attention_rows_avx512.cpp). scores: out[j] = q . k_j
// over kd elements (with 0 < split < kd the sums over [0, split) and [split, kd) are added) for
// k_j = k + j * stride, j < n. accum: o[i] += sum_j p[j] * v_j[i] for i < vd, v_j = v + j * stride.
struct AttnRowsKernel {
    void (*scores)(const float* q, const float* k, int64_t stride, int64_t n, int64_t kd,
                   int64_t split, float* out);
    void (*accum)(const float* p, const float* v, int64_t stride, int64_t n, int64_t vd, float* o);
};
// nullptr: the portable loops in cpu/attention_cpu.cpp.
const AttnRowsKernel* find_attn_rows(Isa isa);

}  // namespace moe::kern
