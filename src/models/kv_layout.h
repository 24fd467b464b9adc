// How many bytes one cached position takes, per layer: the single place this arithmetic lives
// (the KV cache allocates with it, inspect's memory estimate sums it).
#pragma once

#include <cstdint>

#include "models/model.h"

namespace moe {

// f32 elements of one position's rows in layer il: standard attention keeps K and V
// (n_head_kv * head_dim each), MLA the compressed latent plus the rotated shared key
// (kv_lora + rope) and no V.
struct KvRowWidth {
    int k = 0, v = 0;
};
KvRowWidth kv_row_width(const ModelConfig& c, int il);

// Bytes of one position in layer il (K + V rows, f32).
int64_t kv_layer_token_bytes(const ModelConfig& c, int il);

}  // namespace moe
