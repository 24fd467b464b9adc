// CPU feature detection and the kernel table. Compiled without ISA flags: it only calls the
// per-ISA files after checking the CPU (cpuid) and the OS (xgetbv: register state is saved).
#include "kernels/dispatch.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/ops.h"
#include "kernels/ref/quantize.h"
#include "kernels/ref/vec_dot_ref.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define MOE_X86 1
#endif

namespace moe::kern {
namespace {

#ifdef MOE_X86
uint64_t xgetbv0() {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t(hi) << 32) | lo;
}
#endif

CpuFeatures detect() {
    CpuFeatures f;
#ifdef MOE_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    const bool osxsave = (c >> 27) & 1;
    if (!osxsave) return f;
    const uint64_t xcr0 = xgetbv0();
    const bool os_ymm = (xcr0 & 0x6) == 0x6;    // SSE + AVX state
    const bool os_zmm = (xcr0 & 0xE6) == 0xE6;  // + opmask, ZMM_Hi256, Hi16_ZMM
    const bool avx = (c >> 28) & 1;
    const bool fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    unsigned a7, b7, c7, d7;
    if (!__get_cpuid_count(7, 0, &a7, &b7, &c7, &d7)) return f;
    if (avx && os_ymm) {
        f.avx2 = (b7 >> 5) & 1;
        f.fma = fma;
        f.f16c = f16c;
    }
    if (os_zmm) {
        f.avx512f = (b7 >> 16) & 1;
        f.avx512dq = (b7 >> 17) & 1;
        f.avx512bw = (b7 >> 30) & 1;
        f.avx512vl = (b7 >> 31) & 1;
        f.avx512vnni = (c7 >> 11) & 1;
        unsigned a71, b71, c71, d71;
        if (a7 >= 1 && __get_cpuid_count(7, 1, &a71, &b71, &c71, &d71))
            f.avx512bf16 = (a71 >> 5) & 1;
    }
#endif
    return f;
}

// -1: no override; else an Isa value.
std::atomic<int> g_override{-1};

Isa env_or_best() {
    Isa best = Isa::Scalar;
    if (isa_supported(Isa::Avx2)) best = Isa::Avx2;
    if (isa_supported(Isa::Avx512)) best = Isa::Avx512;
    if (const char* e = std::getenv("MOE_ISA")) {
        const std::string s(e);
        Isa want = best;
        if (s == "scalar")
            want = Isa::Scalar;
        else if (s == "avx2")
            want = Isa::Avx2;
        else if (s == "avx512")
            want = Isa::Avx512;
        if (int(want) < int(best)) best = want;
    }
    return best;
}

// The table: one row per (weight type, ISA). Tuning is data: to change which kernel a type
// uses on an ISA, edit its row; find_kernel falls back to lower ISAs for missing rows.
#define MOE_ROWS(ns, isa, R)                                                                     \
    {DType::F32, isa, ActFormat::F32, ns::vec_dot_f32_f32, R(ns, vec_dot_f32_f32)},              \
        {DType::F16, isa, ActFormat::F32, ns::vec_dot_f16_f32, R(ns, vec_dot_f16_f32)},          \
        {DType::BF16, isa, ActFormat::F32, ns::vec_dot_bf16_f32, R(ns, vec_dot_bf16_f32)},       \
        {DType::Q8_0, isa, ActFormat::Q8x32, ns::vec_dot_q8_0_q8x32, R(ns, vec_dot_q8_0_q8x32)}, \
        {DType::Q4_0, isa, ActFormat::Q8x32, ns::vec_dot_q4_0_q8x32, R(ns, vec_dot_q4_0_q8x32)}, \
        {DType::Q4_1, isa, ActFormat::Q8x32, ns::vec_dot_q4_1_q8x32, R(ns, vec_dot_q4_1_q8x32)}, \
        {DType::Q5_0, isa, ActFormat::Q8x32, ns::vec_dot_q5_0_q8x32, R(ns, vec_dot_q5_0_q8x32)}, \
        {DType::Q5_1, isa, ActFormat::Q8x32, ns::vec_dot_q5_1_q8x32, R(ns, vec_dot_q5_1_q8x32)}, \
        {DType::IQ4_NL, isa, ActFormat::Q8x32, ns::vec_dot_iq4_nl_q8x32,                         \
         R(ns, vec_dot_iq4_nl_q8x32)},                                                           \
        {DType::MXFP4, isa, ActFormat::Q8x32, ns::vec_dot_mxfp4_q8x32,                           \
         R(ns, vec_dot_mxfp4_q8x32)},                                                            \
        {DType::Q2_K, isa, ActFormat::Q8K, ns::vec_dot_q2_k_q8k, R(ns, vec_dot_q2_k_q8k)},       \
        {DType::Q3_K, isa, ActFormat::Q8K, ns::vec_dot_q3_k_q8k, R(ns, vec_dot_q3_k_q8k)},       \
        {DType::Q4_K, isa, ActFormat::Q8K, ns::vec_dot_q4_k_q8k, R(ns, vec_dot_q4_k_q8k)},       \
        {DType::Q5_K, isa, ActFormat::Q8K, ns::vec_dot_q5_k_q8k, R(ns, vec_dot_q5_k_q8k)},       \
        {DType::Q6_K, isa, ActFormat::Q8K, ns::vec_dot_q6_k_q8k, R(ns, vec_dot_q6_k_q8k)},       \
        {DType::IQ4_XS, isa, ActFormat::Q8K, ns::vec_dot_iq4_xs_q8k, R(ns, vec_dot_iq4_xs_q8k)},

#define MOE_NO_ROWS(ns, f) nullptr
#define MOE_X86_ROWS(ns, f) ns::f##_rows
const DotKernel kTable[] = {MOE_ROWS(ref, Isa::Scalar, MOE_NO_ROWS)
#ifdef MOE_X86
                                MOE_ROWS(cpu::avx2, Isa::Avx2, MOE_X86_ROWS)
                                    MOE_ROWS(cpu::avx512, Isa::Avx512, MOE_X86_ROWS)
#endif
};
#undef MOE_ROWS
#undef MOE_NO_ROWS
#undef MOE_X86_ROWS

}  // namespace

std::string_view isa_name(Isa isa) {
    switch (isa) {
        case Isa::Scalar:
            return "scalar";
        case Isa::Avx2:
            return "avx2";
        case Isa::Avx512:
            return "avx512";
    }
    return "?";
}

const CpuFeatures& cpu_features() {
    static const CpuFeatures f = detect();
    return f;
}

bool isa_supported(Isa isa) {
    const auto& f = cpu_features();
    switch (isa) {
        case Isa::Scalar:
            return true;
        case Isa::Avx2:
            return f.avx2 && f.fma && f.f16c;
        case Isa::Avx512:
            return f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl &&
                   f.avx512dq && f.avx512vnni && f.avx512bf16;
    }
    return false;
}

Isa active_isa() {
    static const Isa from_env = env_or_best();
    const int o = g_override.load(std::memory_order_relaxed);
    return o >= 0 ? Isa(o) : from_env;
}

Isa resolve_isa(int requested) {
    if (requested < 0) return active_isa();
    for (int i = std::min(requested, int(Isa::Avx512)); i > 0; --i)
        if (isa_supported(Isa(i))) return Isa(i);
    return Isa::Scalar;
}

void set_isa_override(Isa isa) {
    g_override.store(int(isa), std::memory_order_relaxed);
}
void clear_isa_override() {
    g_override.store(-1, std::memory_order_relaxed);
}

ActFormat act_format(DType wtype) {
    const DotKernel* k = exact_kernel(wtype, Isa::Scalar);
    return k ? k->act : ActFormat::F32;
}

int act_block_elems(ActFormat f) {
    switch (f) {
        case ActFormat::F32:
            return 1;
        case ActFormat::Q8x32:
            return 32;
        case ActFormat::Q8K:
            return 256;
    }
    return 1;
}

int64_t act_row_bytes(ActFormat f, int64_t K) {
    switch (f) {
        case ActFormat::F32:
            return K * 4;
        case ActFormat::Q8x32:
            return K / 32 * int64_t(sizeof(BlockQ8x32));
        case ActFormat::Q8K:
            return K / 256 * kQ8KBytes;
    }
    return 0;
}

const DotKernel* exact_kernel(DType wtype, Isa isa) {
    for (const auto& k : kTable)
        if (k.wtype == wtype && k.isa == isa) return &k;
    return nullptr;
}

const DotKernel* find_kernel(DType wtype, Isa isa) {
    for (int i = int(isa); i >= 0; --i)
        if (isa_supported(Isa(i)))
            if (const DotKernel* k = exact_kernel(wtype, Isa(i))) return k;
    return nullptr;
}

const GemmKernel* find_gemm(DType wtype, Isa isa) {
#ifdef MOE_X86
    using namespace cpu::avx512;
    static const GemmKernel kGemms[] = {
        {DType::Q4_K, ActFormat::Q8K, g16_bytes_q8k, pack_g16_q8k, p8_bytes_q8k, pack_p8_q8k,
         gemm_q4_k_g16},
        {DType::Q5_K, ActFormat::Q8K, g16_bytes_q8k, pack_g16_q8k, p8_bytes_q8k, pack_p8_q8k,
         gemm_q5_k_g16},
        {DType::Q6_K, ActFormat::Q8K, g16_bytes_q8k, pack_g16_q8k, p8_bytes_q8k, pack_p8_q8k,
         gemm_q6_k_g16},
        {DType::Q2_K, ActFormat::Q8K, g16_bytes_q8k, pack_g16_q8k, p8_bytes_q8k, pack_p8_q8k,
         gemm_q2_k_g16},
        {DType::Q3_K, ActFormat::Q8K, g16_bytes_q8k, pack_g16_q8k, p8_bytes_q8k, pack_p8_q8k,
         gemm_q3_k_g16},
        {DType::IQ4_XS, ActFormat::Q8K, g16_bytes_q8k, pack_g16_q8k, p8_bytes_q8k, pack_p8_q8k,
         gemm_iq4_xs_g16},
        {DType::Q8_0, ActFormat::Q8x32, g16_bytes_q8x32, pack_g16_q8x32, p8_bytes_q8x32,
         pack_p8_q8x32, gemm_q8_0_g16},
        {DType::Q4_0, ActFormat::Q8x32, g16_bytes_q8x32, pack_g16_q8x32, p8_bytes_q8x32,
         pack_p8_q8x32, gemm_q4_0_g16},
        {DType::Q5_0, ActFormat::Q8x32, g16_bytes_q8x32, pack_g16_q8x32, p8_bytes_q8x32,
         pack_p8_q8x32, gemm_q5_0_g16},
        {DType::IQ4_NL, ActFormat::Q8x32, g16_bytes_q8x32, pack_g16_q8x32, p8_bytes_q8x32,
         pack_p8_q8x32, gemm_iq4_nl_g16},
        {DType::MXFP4, ActFormat::Q8x32, g16_bytes_q8x32, pack_g16_q8x32, p8_bytes_q8x32,
         pack_p8_q8x32, gemm_mxfp4_g16},
    };
    if (isa != Isa::Avx512 || !isa_supported(Isa::Avx512)) return nullptr;
    for (const auto& g : kGemms)
        if (g.wtype == wtype) return &g;
#else
    (void)wtype, (void)isa;
#endif
    return nullptr;
}

QuantizeActFn find_quantizer(ActFormat f, Isa isa) {
    const bool x86 = (isa == Isa::Avx512 && isa_supported(Isa::Avx512)) ||
                     (isa >= Isa::Avx2 && isa_supported(Isa::Avx2));
    switch (f) {
        case ActFormat::F32:
            return nullptr;
        case ActFormat::Q8x32:
#ifdef MOE_X86
            if (x86)
                return isa == Isa::Avx512 && isa_supported(Isa::Avx512)
                           ? cpu::avx512::quantize_row_q8x32
                           : cpu::avx2::quantize_row_q8x32;
#endif
            return ref::quantize_row_q8x32;
        case ActFormat::Q8K:
#ifdef MOE_X86
            if (x86)
                return isa == Isa::Avx512 && isa_supported(Isa::Avx512)
                           ? cpu::avx512::quantize_row_q8_k
                           : cpu::avx2::quantize_row_q8_k;
#endif
            return ref::quantize_row_q8_k;
    }
    return nullptr;
}

namespace {
void ref_f16_to_f32(const void* s, float* d, int64_t n) {
    ops::dequantize_row(DType::F16, s, d, n);
}
void ref_bf16_to_f32(const void* s, float* d, int64_t n) {
    ops::dequantize_row(DType::BF16, s, d, n);
}
void ref_q8_0_to_f32(const void* s, float* d, int64_t n) {
    ops::dequantize_row(DType::Q8_0, s, d, n);
}
}  // namespace

const AttnRowsKernel* find_attn_rows(Isa isa) {
#ifdef MOE_X86
    static const AttnRowsKernel kZmm{cpu::avx512::attn_scores_f32, cpu::avx512::attn_accum_f32};
    if (isa == Isa::Avx512 && isa_supported(Isa::Avx512)) return &kZmm;
#else
    (void)isa;
#endif
    return nullptr;
}

RowToF32Fn find_row_to_f32(DType t, Isa isa) {
#ifdef MOE_X86
    // The 256-bit versions serve both ISAs (the conversion is memory-bound).
    if (isa >= Isa::Avx2 && isa_supported(Isa::Avx2)) {
        switch (t) {
            case DType::F16:
                return cpu::avx2::f16_to_f32_row;
            case DType::BF16:
                return cpu::avx2::bf16_to_f32_row;
            case DType::Q8_0:
                return cpu::avx2::q8_0_to_f32_row;
            default:
                break;
        }
    }
#endif
    switch (t) {
        case DType::F16:
            return ref_f16_to_f32;
        case DType::BF16:
            return ref_bf16_to_f32;
        case DType::Q8_0:
            return ref_q8_0_to_f32;
        default:
            return nullptr;
    }
}

}  // namespace moe::kern
