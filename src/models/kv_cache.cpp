#include "models/kv_cache.h"

#include <algorithm>

namespace moe {
namespace {
int64_t pages_for(int64_t tokens) {
    return (std::max<int64_t>(0, tokens) + KvCache::kPageTokens - 1) / KvCache::kPageTokens;
}
}  // namespace

int64_t KvCache::token_bytes(const ModelConfig& c, KvTypes types) {
    int64_t b = 0;
    for (int il = 0; il < c.n_layer; ++il) b += kv_layer_token_bytes(c, il, types);
    return b;
}

int64_t KvCache::pool_bytes(const ModelConfig& c, int64_t pool_tokens, KvTypes types) {
    return pages_for(pool_tokens) * kPageTokens * token_bytes(c, types);
}

KvCache::KvCache(const ModelConfig& c, int n_ctx, int n_seq, int64_t pool_tokens, KvTypes types)
    : n_ctx_(n_ctx), n_seq_(n_seq), types_(types), table_(size_t(std::max(0, n_seq))) {
    if (pool_tokens <= 0) pool_tokens = int64_t(n_ctx) * n_seq;
    pages_total_ = pages_for(pool_tokens);
    const int64_t slots = pages_total_ * kPageTokens;
    for (int il = 0; il < c.n_layer; ++il) {
        const KvRowWidth w = kv_row_width(c, il);
        k_width_.push_back(w.k);
        v_width_.push_back(w.v);
        k_mem_.emplace_back(size_t(slots * dtype_row_bytes(types.k, w.k)));
        v_mem_.emplace_back(size_t(slots * dtype_row_bytes(types.v, w.v)));
        k_.push_back(k_mem_.back().as<uint8_t>());
        v_.push_back(v_mem_.back().as<uint8_t>());
    }
    // Page 0 is taken first, so a lone sequence fills the pool from its start as before.
    free_.resize(size_t(pages_total_));
    for (int64_t i = 0; i < pages_total_; ++i) free_[size_t(i)] = int32_t(pages_total_ - 1 - i);
}

int64_t KvCache::pages_needed(int seq, int64_t n_pos) const {
    return std::max<int64_t>(0, pages_for(n_pos) - pages_held(seq));
}

Result<void> KvCache::grow(int seq, int64_t n_pos) {
    if (seq < 0 || seq >= n_seq_)
        return make_error("sequence id {} out of range [0, {})", seq, n_seq_);
    if (n_pos > n_ctx_)
        return make_error("{} positions exceed the context of {} tokens", n_pos, n_ctx_);
    const int64_t need = pages_needed(seq, n_pos);
    if (need > int64_t(free_.size()))
        return make_error(
            "the KV pool is full: sequence {} needs {} more pages of {} tokens, {} free", seq, need,
            kPageTokens, free_.size());
    auto& t = table_[size_t(seq)];
    for (int64_t i = 0; i < need; ++i) t.push_back(free_.back()), free_.pop_back();
    return {};
}

void KvCache::shrink(int seq, int64_t n_keep) {
    auto& t = table_[size_t(seq)];
    const size_t keep = size_t(std::min<int64_t>(int64_t(t.size()), pages_for(n_keep)));
    // Last page first onto the free list: the next taker gets the lowest position's page back.
    while (t.size() > keep) free_.push_back(t.back()), t.pop_back();
}

size_t KvCache::bytes() const {
    size_t b = 0;
    for (size_t i = 0; i < k_mem_.size(); ++i) b += k_mem_[i].size() + v_mem_[i].size();
    return b;
}

void KvCache::store(int il, const Batch& b, const float* k, const float* v) {
    const int64_t kw = k_width(il), vw = v_width(il);
    for (int64_t t = 0; t < b.size(); ++t) {
        const int s = b.seq[size_t(t)], p = b.pos[size_t(t)];
        ops::convert_row(types_.k, k + t * kw, k_[size_t(il)] + slot(s, p) * k_row_bytes(il), kw);
        if (v)
            ops::convert_row(types_.v, v + t * vw, v_[size_t(il)] + slot(s, p) * v_row_bytes(il),
                             vw);
    }
}

}  // namespace moe
