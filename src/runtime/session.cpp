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
      n_past_(size_t(std::max(1, opt.n_seq)), 0) {
    keep_activation_buffers_in_heap();
}

Result<std::vector<float>> Session::eval(const Batch& b, RouterTrace* trace) {
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
