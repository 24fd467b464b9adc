// Paged attention state shared by all sequences (as vLLM's PagedAttention): per layer one pool of
// fixed-size pages of page_tokens() positions, a page table per sequence and one free list, so a
// short request holds only the pages it reached and they return to the pool when it ends.
// Standard attention stores K [n_kv*hd] and V [n_kv*hd] per position; MLA stores the compressed
// latent plus the rotated shared key [kv_lora + rope] and no V. Rows are stored in the chosen
// KvTypes (f32 by default, for exactness; f16 / bf16 / q8_0 converted as they are written).
// A page id names the same slot in every layer's pool.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/result.h"
#include "core/zeroed_buffer.h"
#include "kernels/ops.h"
#include "models/batch.h"
#include "models/kv_layout.h"
#include "models/model.h"

namespace moe {

class KvCache {
  public:
    static constexpr int kPageTokens = 16;

    KvCache() = default;
    // n_ctx: max positions of one sequence; n_seq: sequence ids; pool_tokens: positions the
    // pool holds over all sequences (rounded up to whole pages; 0: n_ctx * n_seq); types: the
    // rows' storage, already checked with check_kv_types.
    KvCache(const ModelConfig& c, int n_ctx, int n_seq, int64_t pool_tokens = 0,
            KvTypes types = {});
    // Bytes one position takes over all layers, and the bytes a pool of pool_tokens spans (what
    // the constructor maps: whole pages).
    static int64_t token_bytes(const ModelConfig& c, KvTypes types);
    static int64_t pool_bytes(const ModelConfig& c, int64_t pool_tokens, KvTypes types);

    int n_ctx() const { return n_ctx_; }
    int n_seq() const { return n_seq_; }
    int k_width(int il) const { return k_width_[size_t(il)]; }
    int v_width(int il) const { return v_width_[size_t(il)]; }
    KvTypes types() const { return types_; }
    // Bytes of one stored row.
    int64_t k_row_bytes(int il) const { return dtype_row_bytes(types_.k, k_width(il)); }
    int64_t v_row_bytes(int il) const { return dtype_row_bytes(types_.v, v_width(il)); }

    // Rows of position pos of sequence seq (in their stored types), which must lie in a page the
    // sequence holds. Rows of one page are contiguous.
    const uint8_t* k(int il, int seq, int64_t pos) const {
        return k_[size_t(il)] + slot(seq, pos) * k_row_bytes(il);
    }
    const uint8_t* v(int il, int seq, int64_t pos) const {
        return v_[size_t(il)] + slot(seq, pos) * v_row_bytes(il);
    }
    // Writes the batch's rows, converted to the cache's types: k [T, k_width(il)] (and
    // v [T, v_width(il)] unless null) at each token's (sequence, position).
    void store(int il, const Batch& b, const float* k, const float* v);
    // Layer il as ops::attention reads it.
    ops::KvPages pages(int il) const {
        return {k_[size_t(il)], v_[size_t(il)], k_width(il), v_width(il),
                kPageTokens,    table_,         types_.k,    types_.v};
    }

    // Page accounting.
    int page_tokens() const { return kPageTokens; }
    int64_t pages_total() const { return pages_total_; }
    int64_t pages_used() const { return pages_total_ - int64_t(free_.size()); }
    int64_t pages_held(int seq) const { return int64_t(table_[size_t(seq)].size()); }
    // Pages sequence seq would take (beyond those it holds) to cover positions [0, n_pos).
    int64_t pages_needed(int seq, int64_t n_pos) const;
    // True if position pos of sequence seq lies in a page it holds.
    bool holds(int seq, int64_t pos) const {
        return pos >= 0 && pos / kPageTokens < pages_held(seq);
    }
    // Takes the pages sequence seq needs to cover [0, n_pos); all or none (error when the pool
    // or the context is too small).
    Result<void> grow(int seq, int64_t n_pos);
    // Keeps the pages covering [0, n_keep) of sequence seq and returns the rest to the pool.
    // Freed pages are taken again first (LIFO), so touched memory stays bounded by peak use.
    void shrink(int seq, int64_t n_keep);

    size_t bytes() const;  // bytes the pool spans (mapped lazily: untouched pages cost no RSS)

  private:
    int64_t slot(int seq, int64_t pos) const {
        return int64_t(table_[size_t(seq)][size_t(pos / kPageTokens)]) * kPageTokens +
               pos % kPageTokens;
    }

    int n_ctx_ = 0, n_seq_ = 0;
    int64_t pages_total_ = 0;
    KvTypes types_;
    std::vector<int> k_width_, v_width_;
    std::vector<ZeroedBuffer> k_mem_, v_mem_;  // [n_layer][pages * page_tokens] rows
    std::vector<uint8_t*> k_, v_;              // their bases
    std::vector<std::vector<int32_t>> table_;  // [n_seq][pages held]: page ids in position order
    std::vector<int32_t> free_;                // free page ids; the back is taken first
};

}  // namespace moe
