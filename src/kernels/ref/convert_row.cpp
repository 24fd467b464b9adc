// f32 rows stored in the KV cache's types (the write side of dequantize_row for them).
#include <cstring>

#include "core/check.h"
#include "core/half.h"
#include "kernels/ops.h"
#include "kernels/ref/quantize.h"

namespace moe::ops {

bool kv_type_supported(DType t) {
    return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::Q8_0;
}

void convert_row(DType t, const float* src, void* dst, int64_t n) {
    if (n <= 0) return;  // an empty row (MLA has no value rows): nothing to write
    auto* d16 = static_cast<uint16_t*>(dst);
    switch (t) {
        case DType::F32:
            std::memcpy(dst, src, size_t(n) * sizeof(float));
            return;
        case DType::F16:
            for (int64_t i = 0; i < n; ++i) d16[i] = f32_to_fp16(src[i]);
            return;
        case DType::BF16:
            for (int64_t i = 0; i < n; ++i) d16[i] = f32_to_bf16(src[i]);
            return;
        case DType::Q8_0:
            ref::quantize_row_q8_0(src, dst, n);  // the upstream reference quantizer's blocks
            return;
        default:
            MOE_CHECK(false, "convert_row: {} is not a KV cache type", dtype_name(t));
    }
}

}  // namespace moe::ops
