// Block formats: Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K, IQ4_NL, IQ4_XS, MXFP4 (GGUF spec layouts).
#include "kernels/ref/quant_blocks.h"

namespace moe::ref {

DequantizeBlockFn dequantize_block_fn(DType t) {
    switch (t) {
        default:
            return nullptr;
    }
}

}  // namespace moe::ref
