#include "runtime/session.h"

#include <algorithm>
#include <new>
#include <system_error>
#include <thread>

#include "core/sysinfo.h"
#include "models/forward.h"

namespace moe {

namespace {
int default_threads(int n) {
    if (n > 0) return n;
    return std::max(1, int(std::thread::hardware_concurrency()));
}
int default_ctx(const Model& m, int n) {
    if (n > 0) return n;
    return std::min(m.config.n_ctx_train > 0 ? m.config.n_ctx_train : 4096, 4096);
}
}  // namespace

Session::Session(const Model& m, const SessionOptions& opt)
    : m_(m),
      kv_(m.config, default_ctx(m, opt.n_ctx), std::max(1, opt.n_seq), opt.kv_tokens, opt.kv_types),
      pool_(default_threads(opt.n_threads)),
      n_batch_(std::max(1, opt.n_batch)),
      n_past_(size_t(std::max(1, opt.n_seq)), 0),
      mirror_(opt.mirror) {
    pool_.set_kernel_options(KernelOptions{opt.isa, opt.deterministic});
}

int Session::max_threads() {
    return ThreadPool::max_threads();
}

Result<std::unique_ptr<Session>> Session::create(const Model& m, const SessionOptions& opt) {
    if (opt.n_ctx < 0) return make_error("context size {} is negative", opt.n_ctx);
    if (opt.n_seq < 1) return make_error("{} sequences: need at least 1", opt.n_seq);
    if (opt.n_threads < 0 || opt.n_threads > max_threads())  // ThreadPool::create's message
        return ThreadPool::create(opt.n_threads).error();
    if (opt.kv_tokens < 0) return make_error("KV pool of {} tokens is negative", opt.kv_tokens);
    MOE_TRY_VOID(check_kv_types(m.config, opt.kv_types));
    // The pool is mapped lazily, but a pool beyond the memory there is would fail mid-request.
    const int n_ctx = default_ctx(m, opt.n_ctx);
    const int64_t tokens = opt.kv_tokens > 0 ? opt.kv_tokens : int64_t(n_ctx) * opt.n_seq;
    const double bytes = double(tokens) * double(KvCache::token_bytes(m.config, opt.kv_types));
    const auto mem = read_meminfo();
    const double limit = mem ? double(mem->available) : double(int64_t(1) << 62);
    if (bytes > limit)
        return make_error(
            "the KV cache needs {:.0f} bytes ({:.1f} GiB: {} positions = context {} x {} "
            "sequences) but {:.0f} bytes are available; lower the context (-c){}",
            bytes, bytes / double(1 << 30), tokens, n_ctx, opt.n_seq, limit,
            opt.n_seq > 1 ? " or the number of sequences" : "");
    try {
        return std::unique_ptr<Session>(new Session(m, opt));
    } catch (const std::bad_alloc&) {
        return make_error("cannot allocate the KV cache ({:.0f} bytes for context {})", bytes,
                          n_ctx);
    } catch (const std::system_error& e) {
        return make_error("cannot start {} threads: {}", opt.n_threads, e.what());
    }
}

bool Session::kv_can_grow(int seq, int64_t n_pos) const {
    if (seq < 0 || seq >= kv_.n_seq() || n_pos > kv_.n_ctx()) return false;
    return kv_.pages_needed(seq, n_pos) <= kv_.pages_total() - kv_.pages_used();
}

void Session::truncate(int seq, int n_keep) {
    if (mirror_)
        if (auto r = send_truncate(*mirror_, seq, n_keep); !r)
            mirror_->abort("sending a step to the other ranks: " + r.message());
    int& np = n_past_[size_t(seq)];
    np = std::min(np, std::max(0, n_keep));
    kv_.shrink(seq, np);
}

Result<std::vector<float>> Session::eval(const Batch& b, RouterTrace* trace) {
    if (!mirror_) return eval_here(b, trace);
    if (auto r = send_eval(*mirror_, b); !r)
        mirror_->abort("sending a step to the other ranks: " + r.message());
    auto logits = eval_here(b, trace);
    if (!logits) mirror_->abort(logits.message());
    return logits;
}

Result<std::vector<float>> Session::eval_here(const Batch& b, RouterTrace* trace) {
    // Take the pages the batch's positions need before writing them: all or none.
    std::vector<int64_t> reach(size_t(kv_.n_seq()), 0);
    for (int64_t t = 0; t < b.size(); ++t) {
        const int s = b.seq[size_t(t)];
        if (s < 0 || s >= kv_.n_seq()) return make_error("sequence id {} out of range", s);
        reach[size_t(s)] = std::max<int64_t>(reach[size_t(s)], int64_t(b.pos[size_t(t)]) + 1);
    }
    int64_t need = 0;
    for (size_t s = 0; s < reach.size(); ++s)
        need += kv_.pages_needed(int(s), std::min<int64_t>(reach[s], kv_.n_ctx()));
    const int64_t free_pages = kv_.pages_total() - kv_.pages_used();
    if (need > free_pages)
        return make_error(
            "the KV pool is full: the batch needs {} more pages of {} tokens, {} free", need,
            kv_.page_tokens(), free_pages);
    for (size_t s = 0; s < reach.size(); ++s)
        if (reach[s] <= kv_.n_ctx()) MOE_TRY_VOID(kv_.grow(int(s), reach[s]));
    std::vector<float> logits;
    if (auto r = forward(m_, b, kv_, pool_, logits, trace); !r.ok()) {
        // A refused batch (bad token id, ...) gives the pages it took back.
        for (size_t s = 0; s < reach.size(); ++s) kv_.shrink(int(s), n_past_[s]);
        return r.error();
    }
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
