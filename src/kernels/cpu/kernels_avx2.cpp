// AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c; see CMakeLists.txt).
#define MOE_ISA_NS avx2
#define MOE_VNNI 0
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/x86_kernels.inc"
