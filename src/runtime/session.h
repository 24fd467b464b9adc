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
    int n_ctx = 0;      // 0: the model's training context, capped at 4096
    int n_seq = 1;      // sequences that can be cached at once
    int n_threads = 0;  // 0: hardware concurrency
    int n_batch = 512;  // max tokens per forward pass when evaluating a prompt
};

class Session {
public:
    Session(const Model& m, const SessionOptions& opt);

    const Model& model() const { return m_; }
    int n_ctx() const { return kv_.n_ctx(); }
    int n_past(int seq = 0) const { return n_past_[size_t(seq)]; }
    void reset(int seq = 0) { n_past_[size_t(seq)] = 0; }
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
    int n_batch_;
    std::vector<int> n_past_;
};

}  // namespace moe
