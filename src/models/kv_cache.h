// Per-sequence attention state: for each layer, rows of keys and values by position. Standard
// attention stores K [n_kv*hd] and V [n_kv*hd] per position; MLA stores the compressed latent
// plus the rotated shared key [kv_lora + rope] and no V. Kept in f32 for exactness.
#pragma once

#include <cstdint>
#include <vector>

#include "core/result.h"
#include "core/zeroed_buffer.h"
#include "models/model.h"

namespace moe {

class KvCache {
  public:
    KvCache() = default;
    KvCache(const ModelConfig& c, int n_ctx, int n_seq);

    int n_ctx() const { return n_ctx_; }
    int n_seq() const { return n_seq_; }
    int k_width(int il) const { return k_width_[size_t(il)]; }
    int v_width(int il) const { return v_width_[size_t(il)]; }
    float* k(int il, int seq, int64_t pos) {
        return k_[size_t(il)].as<float>() + (int64_t(seq) * n_ctx_ + pos) * k_width_[size_t(il)];
    }
    float* v(int il, int seq, int64_t pos) {
        return v_[size_t(il)].as<float>() + (int64_t(seq) * n_ctx_ + pos) * v_width_[size_t(il)];
    }
    size_t bytes() const;

  private:
    int n_ctx_ = 0, n_seq_ = 0;
    std::vector<int> k_width_, v_width_;
    std::vector<ZeroedBuffer> k_, v_;  // [n_layer][n_seq * n_ctx * width] f32, pages on first use
};

}  // namespace moe
