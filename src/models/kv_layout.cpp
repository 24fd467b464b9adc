#include "models/kv_layout.h"

namespace moe {

KvRowWidth kv_row_width(const ModelConfig& c, int il) {
    if (c.use_mla) return {c.mla.kv_lora_rank + c.mla.qk_rope, 0};
    if (il < 0 || size_t(il) >= c.attn.size()) return {};
    const auto& a = c.attn[size_t(il)];
    return {a.n_head_kv * a.head_dim, a.n_head_kv * a.head_dim};
}

int64_t kv_layer_token_bytes(const ModelConfig& c, int il) {
    const KvRowWidth w = kv_row_width(c, il);
    return (int64_t(w.k) + int64_t(w.v)) * int64_t(sizeof(float));
}

}  // namespace moe
