// Tensor element types. Values equal the GGUF/ggml type ids, so the GGUF reader needs no map.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace moe {

enum class DType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
    MXFP4 = 39,
};

struct DTypeTraits {
    DType type;
    std::string_view name;  // as the upstream tools print it: "q4_K"
    int block_elems;        // elements per block
    int block_bytes;        // bytes per block
    bool quantized;
};

// Traits of a known type id, or nullopt for ids the GGUF spec does not define.
std::optional<DTypeTraits> dtype_traits(uint32_t type_id);
const DTypeTraits& traits(DType t);  // t must be a known type
std::string_view dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view name);  // case-insensitive

// Bytes of a row of n elements. n must be a multiple of block_elems (checked by callers).
inline int64_t dtype_row_bytes(DType t, int64_t n) {
    const auto& tr = traits(t);
    return n / tr.block_elems * tr.block_bytes;
}

}  // namespace moe
