// How many bytes one cached position takes, per layer: the single place this arithmetic lives
// (the KV cache allocates with it, inspect's memory estimate sums it).
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/result.h"
#include "models/model.h"

namespace moe {

// Elements of one position's rows in layer il: standard attention keeps K and V
// (n_head_kv * head_dim each), MLA the compressed latent plus the rotated shared key
// (kv_lora + rope) and no V.
struct KvRowWidth {
    int k = 0, v = 0;
};
KvRowWidth kv_row_width(const ModelConfig& c, int il);

// The types K and V rows are stored in (--cache-type-k / --cache-type-v): f32, f16, bf16 or
// q8_0. MLA's one row (latent | rotated key, which is also its value) takes k.
struct KvTypes {
    DType k = DType::F32, v = DType::F32;
};

// Checks every layer's rows can be stored in t: KV types only, and q8_0 needs each head's slice
// to be whole blocks (head_dim, MLA's kv_lora and rope widths multiples of 32). The error names
// the layer and the width.
Result<void> check_kv_types(const ModelConfig& c, KvTypes t);

// Bytes of one position in layer il (K + V rows in their types).
int64_t kv_layer_token_bytes(const ModelConfig& c, int il, KvTypes t);

}  // namespace moe
