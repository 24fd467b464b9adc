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
#include "runtime/step_mirror.h"

namespace moe {

struct SessionOptions {
    // Max positions of one sequence; 0: the model's training context, capped at 4096.
    int n_ctx = 0;
    int n_seq = 1;      // sequences that can be cached at once
    int n_threads = 0;  // 0: hardware concurrency
    int n_batch = 512;  // max tokens per forward pass when evaluating a prompt
    // KV pool capacity in tokens, shared by all sequences in pages of kv_page_tokens positions
    // (0: n_ctx * n_seq, every sequence can reach n_ctx at once).
    int64_t kv_tokens = 0;
    // The types K and V rows are stored in (f32: exact; f16 / bf16 halve the cache, q8_0 takes
    // 34/128 of it). Checked against the model by create().
    KvTypes kv_types;
    // Batch invariance: a row's result does not depend on what else is in the batch (same kernel
    // path and accumulation order whatever the number of rows an expert or matrix gets).
    bool deterministic = false;
    // Highest instruction set for this session's kernels (a kern::Isa value, clamped to the
    // machine); -1: the process default (the best supported, or MOE_ISA as read at the CLI edge).
    int isa = -1;
    // serve --expert-parallel on the leading process: every eval() and truncate() is first sent
    // to the followers (runtime/step_mirror.h), and a failed eval() ends the job (the followers
    // would be left in its collectives). Not owned; outlives the session.
    StepChannel* mirror = nullptr;
};

class Session {
  public:
    // Checks the options (threads against the machine, the KV pool against available memory)
    // and catches what construction can throw: the way to make a session from user input.
    static Result<std::unique_ptr<Session>> create(const Model& m, const SessionOptions& opt);
    // Unchecked: throws std::bad_alloc / std::system_error when the system refuses.
    Session(const Model& m, const SessionOptions& opt);
    // Most threads create() accepts: 4 x hardware concurrency, at most 1024.
    static int max_threads();

    const Model& model() const { return m_; }
    int n_ctx() const { return kv_.n_ctx(); }
    int n_past(int seq = 0) const { return n_past_[size_t(seq)]; }
    int n_seqs() const { return int(n_past_.size()); }
    void reset(int seq = 0) { truncate(seq, 0); }

    // KV pool (paged): positions are held in pages of kv_page_tokens(); a sequence takes pages as
    // it grows (in eval) and gives them back in truncate().
    int kv_page_tokens() const { return kv_.page_tokens(); }
    int64_t kv_pages_total() const { return kv_.pages_total(); }
    int64_t kv_pages_used() const { return kv_.pages_used(); }
    // Whether sequence `seq` can grow to n_pos positions with the pages free now.
    bool kv_can_grow(int seq, int64_t n_pos) const;
    // Pages sequence `seq` would need (beyond those it holds) to reach n_pos positions.
    int64_t kv_pages_needed(int seq, int64_t n_pos) const { return kv_.pages_needed(seq, n_pos); }
    // Keeps positions [0, n_keep) of sequence `seq` and returns the pages beyond to the pool
    // (n_keep = 0 frees the sequence). Used for prefix reuse and when a request ends.
    void truncate(int seq, int n_keep);
    ThreadPool& pool() { return pool_; }
    const KernelOptions& kernel_options() const { return pool_.kernel_options(); }
    size_t kv_bytes() const { return kv_.bytes(); }
    KvTypes kv_types() const { return kv_.types(); }

    // Evaluates an arbitrary batch; logits [n_outputs, n_vocab] in batch order.
    Result<std::vector<float>> eval(const Batch& b, RouterTrace* trace = nullptr);

    // Appends tokens to sequence `seq` (in chunks of n_batch). Returns logits of every token when
    // all_logits, else of the last one only. trace, if given, collects every chunk's routing.
    Result<std::vector<float>> eval_tokens(std::span<const int32_t> tokens, bool all_logits,
                                           int seq = 0, RouterTrace* trace = nullptr);

  private:
    Result<std::vector<float>> eval_here(const Batch& b, RouterTrace* trace);

    const Model& m_;
    KvCache kv_;
    ThreadPool pool_;
    int n_batch_;
    std::vector<int> n_past_;
    StepChannel* mirror_;
};

}  // namespace moe
