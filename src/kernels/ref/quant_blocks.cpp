// Dispatch from DType to the reference block dequantizers (quant_legacy/k/iq.cpp).
// Q8_K is left out on purpose: it is an activation format, never a stored weight type.
#include "kernels/ref/quant_blocks.h"

namespace moe::ref {

DequantizeBlockFn dequantize_block_fn(DType t) {
    switch (t) {
        case DType::Q4_0:
            return dequantize_block_q4_0;
        case DType::Q4_1:
            return dequantize_block_q4_1;
        case DType::Q5_0:
            return dequantize_block_q5_0;
        case DType::Q5_1:
            return dequantize_block_q5_1;
        case DType::Q2_K:
            return dequantize_block_q2_k;
        case DType::Q3_K:
            return dequantize_block_q3_k;
        case DType::Q4_K:
            return dequantize_block_q4_k;
        case DType::Q5_K:
            return dequantize_block_q5_k;
        case DType::Q6_K:
            return dequantize_block_q6_k;
        case DType::IQ4_NL:
            return dequantize_block_iq4_nl;
        case DType::IQ4_XS:
            return dequantize_block_iq4_xs;
        case DType::MXFP4:
            return dequantize_block_mxfp4;
        default:
            return nullptr;
    }
}

}  // namespace moe::ref
