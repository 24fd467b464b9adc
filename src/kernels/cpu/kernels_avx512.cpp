// AVX-512 (F/BW/VL/DQ + VNNI + BF16) kernels: the shared x86 kernels with vpdpbusd for the
// int8 dot products.
#define MOE_ISA_NS avx512
#define MOE_VNNI 1
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/x86_kernels.inc"
