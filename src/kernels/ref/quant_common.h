// Byte-level helpers shared by the reference block (de)quantizers. Internal to kernels/ref.
#pragma once

#include <cstdint>

#include "core/half.h"

namespace moe::ref::detail {

// GGUF stores everything little-endian; assembling bytes keeps the reference host-independent.
inline uint16_t load_u16(const uint8_t* p) {
    return uint16_t(p[0] | (p[1] << 8));
}
inline uint32_t load_u32(const uint8_t* p) {
    return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
inline float load_f16(const uint8_t* p) {
    return fp16_to_f32(load_u16(p));
}
inline float load_f32(const uint8_t* p) {
    return f32_from_bits(load_u32(p));
}

inline void store_u16(uint8_t* p, uint16_t v) {
    p[0] = uint8_t(v);
    p[1] = uint8_t(v >> 8);
}
inline void store_u32(uint8_t* p, uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}
inline void store_f16(uint8_t* p, float v) {
    store_u16(p, f32_to_fp16(v));
}

}  // namespace moe::ref::detail
