// Reference dequantization of every supported weight type (block layouts of the GGUF spec).
#include <cstring>

#include "core/half.h"
#include "kernels/ops.h"
#include "kernels/ref/quant_blocks.h"

namespace moe::ops {

bool weight_type_supported(DType t) {
    switch (t) {
        case DType::F32: case DType::F16: case DType::BF16: case DType::Q8_0:
            return true;
        default:
            return ref::dequantize_block_fn(t) != nullptr;
    }
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
    switch (t) {
        case DType::F32:
            std::memcpy(dst, src, size_t(n) * 4);
            return;
        case DType::F16: {
            const auto* s = static_cast<const uint16_t*>(src);
            for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_f32(s[i]);
            return;
        }
        case DType::BF16: {
            const auto* s = static_cast<const uint16_t*>(src);
            for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
            return;
        }
        case DType::Q8_0: {
            // block: f16 scale d, 32 x int8 q; x = d * q
            const auto* b = static_cast<const uint8_t*>(src);
            for (int64_t i = 0; i < n; i += 32, b += 34) {
                uint16_t dh;
                std::memcpy(&dh, b, 2);
                const float d = fp16_to_f32(dh);
                const auto* q = reinterpret_cast<const int8_t*>(b + 2);
                for (int j = 0; j < 32; ++j) dst[i + j] = d * float(q[j]);
            }
            return;
        }
        default: {
            const auto fn = ref::dequantize_block_fn(t);
            const auto& tr = traits(t);
            const auto* b = static_cast<const uint8_t*>(src);
            for (int64_t i = 0; i < n; i += tr.block_elems, b += tr.block_bytes) fn(b, dst + i);
            return;
        }
    }
}

}  // namespace moe::ops
