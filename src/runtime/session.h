// A session: a loaded model plus its KV cache and thread pool. Evaluates batches of tokens from
// one or several sequences; prompt evaluation is batched, decoding is one token per step.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "models/batch.h"
#include "models/kv_cache.h"
#include "models/model.h"

namespace moe {

struct SessionOptions {
    int n_ctx = 0;      // max positions of one sequence; 0: the model's training context, capped at 4096
    int n_seq = 1;      // sequences that can be cached at once
    int n_threads = 0;  // 0: hardware concurrency
    int n_batch = 512;  // max tokens per forward pass when evaluating a prompt
    // KV pool capacity in tokens, shared by all sequences in pages of kv_page_tokens positions
    // (0: n_ctx * n_seq, every sequence can reach n_ctx at once).
    int64_t kv_tokens = 0;
    // Batch invariance: a row's result does not depend on what else is in the batch (same kernel
    // path and accumulation order whatever the number of rows an expert or matrix gets).
    bool deterministic = false;
};

class Session {
public:
    Session(const Model& m, const SessionOptions& opt);

    const Model& model() const { return m_; }
    int n_ctx() const { return kv_.n_ctx(); }
    int n_past(int seq = 0) const { return n_past_[size_t(seq)]; }
    void reset(int seq = 0) { truncate(seq, 0); }

    // KV pool (paged): positions are held in pages of kv_page_tokens(); a sequence takes pages as
    // it grows (in eval) and gives them back in truncate().
    int kv_page_tokens() const { return kPageTokens; }
    int64_t kv_pages_total() const { return pages_total_; }
    int64_t kv_pages_used() const { return pages_used_; }
    // Whether sequence `seq` can grow to n_pos positions with the pages free now.
    bool kv_can_grow(int seq, int64_t n_pos) const;
    // Pages sequence `seq` would need (beyond those it holds) to reach n_pos positions.
    int64_t kv_pages_needed(int seq, int64_t n_pos) const;
    // Keeps positions [0, n_keep) of sequence `seq` and returns the pages beyond to the pool
    // (n_keep = 0 frees the sequence). Used for prefix reuse and when a request ends.
    void truncate(int seq, int n_keep);
    ThreadPool& pool() { return pool_; }
    size_t kv_bytes() const { return kv_.bytes(); }

    // Evaluates an arbitrary batch; logits [n_outputs, n_vocab] in batch order.
    Result<std::vector<float>> eval(const Batch& b, RouterTrace* trace = nullptr);

    // Appends tokens to sequence `seq` (in chunks of n_batch). Returns logits of every token when
    // all_logits, else of the last one only. trace, if given, collects every chunk's routing.
    Result<std::vector<float>> eval_tokens(std::span<const int32_t> tokens, bool all_logits,
                                           int seq = 0, RouterTrace* trace = nullptr);

private:
    const Model& m_;
    KvCache kv_;
    ThreadPool pool_;
    static constexpr int kPageTokens = 16;
    int n_batch_;
    std::vector<int> n_past_;
    std::vector<int64_t> seq_pages_;  // pages held by each sequence
    int64_t pages_total_ = 0, pages_used_ = 0;
};

}  // namespace moe
