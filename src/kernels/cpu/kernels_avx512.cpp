// AVX-512 (F/BW/VL/DQ + VNNI + BF16) kernels: the shared x86 kernels with vpdpbusd for the
// int8 dot products.
// GCC 12's AVX-512 headers self-initialize their "undefined" vectors, which -Wuninitialized
// reports at every use of a 512-bit conversion; the warnings are about the headers, not our code.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define MOE_ISA_NS avx512
#define MOE_VNNI 1
#define MOE_ZMM_KERNELS 1  // kernels/cpu/zmm_kernels.inc replaces some 256-bit dots
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/x86_kernels.inc"
