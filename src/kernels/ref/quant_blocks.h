// Reference dequantization of one block of the quantized formats beyond Q8_0.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace moe::ref {

// Writes traits(t).block_elems floats for one block of type t.
using DequantizeBlockFn = void (*)(const uint8_t* block, float* dst);

// The block dequantizer of t, or nullptr if t is not supported.
DequantizeBlockFn dequantize_block_fn(DType t);

}  // namespace moe::ref
