#include "runtime/session.h"

#include <algorithm>
#include <thread>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "models/forward.h"

namespace moe {

namespace {
int default_threads(int n) {
    if (n > 0) return n;
    return std::max(1, int(std::thread::hardware_concurrency()));
}
// A forward pass allocates its per-layer activations (MBs for prompts) and frees them again.
// glibc serves blocks over its mmap threshold with fresh mappings, so every layer paid page
// faults and zeroing of new pages (measured: pp128 on OLMoE shapes 50 -> 78 t/s once they are
// reused). Keep such blocks in the heap and do not trim it back after each pass.
void keep_activation_buffers_in_heap() {
#if defined(__GLIBC__)
    static const bool done = [] {
        mallopt(M_MMAP_THRESHOLD, 1 << 30);
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
        return true;
    }();
    (void)done;
#endif
}
int default_ctx(const Model& m, int n) {
    if (n > 0) return n;
    return std::min(m.config.n_ctx_train > 0 ? m.config.n_ctx_train : 4096, 4096);
}
}  // namespace

Session::Session(const Model& m, const SessionOptions& opt)
    : m_(m),
      kv_(m.config, default_ctx(m, opt.n_ctx), std::max(1, opt.n_seq)),
      pool_(default_threads(opt.n_threads)),
      n_batch_(std::max(1, opt.n_batch)),
      n_past_(size_t(std::max(1, opt.n_seq)), 0),
      seq_pages_(size_t(std::max(1, opt.n_seq)), 0) {
    const int64_t tokens =
        opt.kv_tokens > 0 ? opt.kv_tokens : int64_t(kv_.n_ctx()) * int64_t(kv_.n_seq());
    pages_total_ = (tokens + kPageTokens - 1) / kPageTokens;
    keep_activation_buffers_in_heap();
}

int64_t Session::kv_pages_needed(int seq, int64_t n_pos) const {
    const int64_t need = (n_pos + kPageTokens - 1) / kPageTokens;
    return std::max<int64_t>(0, need - seq_pages_[size_t(seq)]);
}

bool Session::kv_can_grow(int seq, int64_t n_pos) const {
    if (seq < 0 || seq >= kv_.n_seq() || n_pos > kv_.n_ctx()) return false;
    return kv_pages_needed(seq, n_pos) <= pages_total_ - pages_used_;
}

void Session::truncate(int seq, int n_keep) {
    int& np = n_past_[size_t(seq)];
    np = std::min(np, std::max(0, n_keep));
    const int64_t keep_pages = (int64_t(np) + kPageTokens - 1) / kPageTokens;
    int64_t& held = seq_pages_[size_t(seq)];
    if (held > keep_pages) pages_used_ -= held - keep_pages, held = keep_pages;
}

Result<std::vector<float>> Session::eval(const Batch& b, RouterTrace* trace) {
    // Take the pages the batch's positions need before writing them.
    std::vector<int64_t> reach(seq_pages_.size(), 0);
    for (int64_t t = 0; t < b.size(); ++t) {
        const int s = b.seq[size_t(t)];
        if (s < 0 || s >= kv_.n_seq()) return make_error("sequence id {} out of range", s);
        reach[size_t(s)] = std::max<int64_t>(reach[size_t(s)], b.pos[size_t(t)] + 1);
    }
    int64_t need = 0;
    for (size_t s = 0; s < reach.size(); ++s) need += kv_pages_needed(int(s), reach[s]);
    if (need > pages_total_ - pages_used_)
        return make_error("the KV pool is full: the batch needs {} more pages of {} tokens, {} free",
                          need, kPageTokens, pages_total_ - pages_used_);
    for (size_t s = 0; s < reach.size(); ++s) {
        const int64_t more = kv_pages_needed(int(s), reach[s]);
        seq_pages_[s] += more, pages_used_ += more;
    }
    std::vector<float> logits;
    MOE_TRY_VOID(forward(m_, b, kv_, pool_, logits, trace));
    for (int64_t t = 0; t < b.size(); ++t) {
        int& np = n_past_[size_t(b.seq[size_t(t)])];
        np = std::max(np, b.pos[size_t(t)] + 1);
    }
    return logits;
}

Result<std::vector<float>> Session::eval_tokens(std::span<const int32_t> tokens, bool all_logits,
                                                int seq, RouterTrace* trace) {
    if (seq < 0 || seq >= kv_.n_seq()) return make_error("sequence id {} out of range", seq);
    if (tokens.empty()) return make_error("no tokens to evaluate");
    if (int64_t(n_past_[size_t(seq)]) + int64_t(tokens.size()) > kv_.n_ctx())
        return make_error("{} tokens after {} cached exceed the context of {} (raise -c)",
                          tokens.size(), n_past_[size_t(seq)], kv_.n_ctx());
    std::vector<float> out;
    RouterTrace chunk_trace;
    for (size_t i0 = 0; i0 < tokens.size(); i0 += size_t(n_batch_)) {
        const size_t i1 = std::min(tokens.size(), i0 + size_t(n_batch_));
        Batch b;
        for (size_t i = i0; i < i1; ++i)
            b.add(tokens[i], n_past_[size_t(seq)] + int32_t(i - i0), seq,
                  all_logits || i + 1 == tokens.size());
        MOE_TRY(auto logits, eval(b, trace ? &chunk_trace : nullptr));
        out.insert(out.end(), logits.begin(), logits.end());
        if (trace) {
            trace->n_expert = chunk_trace.n_expert;
            trace->n_expert_used = chunk_trace.n_expert_used;
            // Chunks append layer-major blocks; callers that need [layer, token] order across
            // chunks use a single chunk (n_batch >= prompt length).
            trace->logits.insert(trace->logits.end(), chunk_trace.logits.begin(),
                                 chunk_trace.logits.end());
            trace->selected.insert(trace->selected.end(), chunk_trace.selected.begin(),
                                   chunk_trace.selected.end());
            trace->weights.insert(trace->weights.end(), chunk_trace.weights.begin(),
                                  chunk_trace.weights.end());
        }
    }
    return out;
}

}  // namespace moe
