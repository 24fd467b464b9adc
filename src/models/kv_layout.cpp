#include "models/kv_layout.h"

#include "kernels/ops.h"

namespace moe {

KvRowWidth kv_row_width(const ModelConfig& c, int il) {
    if (c.use_mla) return {c.mla.kv_lora_rank + c.mla.qk_rope, 0};
    if (il < 0 || size_t(il) >= c.attn.size()) return {};
    const auto& a = c.attn[size_t(il)];
    return {a.n_head_kv * a.head_dim, a.n_head_kv * a.head_dim};
}

namespace {
// A type's rows read per head (slices of `width` elements) must split at block boundaries.
Result<void> check_width(const char* what, DType t, int il, const char* part, int width) {
    const int block = traits(t).block_elems;
    if (width % block == 0) return {};
    return make_error(
        "--cache-type-{} {} needs widths that are multiples of {}: layer {}'s {} is {} wide "
        "(use f16 or bf16)",
        what, dtype_name(t), block, il, part, width);
}
}  // namespace

Result<void> check_kv_types(const ModelConfig& c, KvTypes t) {
    for (auto [what, type] : {std::pair{"k", t.k}, std::pair{"v", t.v}})
        if (!ops::kv_type_supported(type))
            return make_error("--cache-type-{} {}: the KV cache stores f32, f16, bf16 or q8_0",
                              what, dtype_name(type));
    for (int il = 0; il < c.n_layer; ++il) {
        if (c.use_mla) {  // one row in the k type; the value is its latent part
            if (auto r = check_width("k", t.k, il, "MLA latent", c.mla.kv_lora_rank); !r) return r;
            if (auto r = check_width("k", t.k, il, "MLA rotated key", c.mla.qk_rope); !r) return r;
            continue;
        }
        if (size_t(il) >= c.attn.size()) continue;
        const int hd = c.attn[size_t(il)].head_dim;
        if (auto r = check_width("k", t.k, il, "key head", hd); !r) return r;
        if (auto r = check_width("v", t.v, il, "value head", hd); !r) return r;
    }
    return {};
}

int64_t kv_layer_token_bytes(const ModelConfig& c, int il, KvTypes t) {
    const KvRowWidth w = kv_row_width(c, il);
    return dtype_row_bytes(t.k, w.k) + dtype_row_bytes(t.v, w.v);
}

}  // namespace moe
