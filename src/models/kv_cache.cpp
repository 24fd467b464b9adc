#include "models/kv_cache.h"

namespace moe {

KvCache::KvCache(const ModelConfig& c, int n_ctx, int n_seq) : n_ctx_(n_ctx), n_seq_(n_seq) {
    for (int il = 0; il < c.n_layer; ++il) {
        int kw, vw;
        if (c.use_mla) {
            kw = c.mla.kv_lora_rank + c.mla.qk_rope;
            vw = 0;
        } else {
            const auto& a = c.attn[size_t(il)];
            kw = vw = a.n_head_kv * a.head_dim;
        }
        k_width_.push_back(kw);
        v_width_.push_back(vw);
        k_.emplace_back(size_t(int64_t(n_seq) * n_ctx * kw) * sizeof(float));
        v_.emplace_back(size_t(int64_t(n_seq) * n_ctx * vw) * sizeof(float));
    }
}

size_t KvCache::bytes() const {
    size_t b = 0;
    for (size_t i = 0; i < k_.size(); ++i) b += k_[i].size() + v_[i].size();
    return b;
}

}  // namespace moe
