// The continuous-batching scheduler behind runtime/scheduler.h.
//
// Policy, one step at a time (the scheduler thread sleeps while there is nothing to do):
//  1. Cancelled requests leave (their slot's pages return to the pool).
//  The step's token budget (step_tokens, serve --step-tokens; vLLM's max_num_batched_tokens):
//  decoding sequences come first and all of them are in every step (step_tokens >= n_slots, so
//  they always fit); prompt chunks fill what is left, oldest request first, a prompt split across
//  as many steps as it needs. A decoding sequence thus waits at most one budget of prompt tokens
//  per token instead of whole prompts, and a prompt is never passed by a younger one. A step
//  with no decoding sequence stalls nobody: its budget is max(step_tokens, prefill_step_tokens).
//  2. Decode: every running sequence that has sampled a token gets that token evaluated, oldest
//     admission first. If the pool has no page for it, idle prefix caches are given back (least
//     recently used first), then the most recently admitted sequence is preempted: its pages
//     are freed and it goes back to the head of the queue with prompt + generated tokens, its
//     sampler and stream kept, to be recomputed later (as vLLM does). The oldest sequence can
//     always proceed, so nothing deadlocks.
//  3. Prefill: running sequences with prompt left get chunks, oldest first, within the step's
//     token budget and the free pages.
//  4. Admission (not in a step that had to preempt): while budget and a free slot remain, the
//     request at the head of the queue (FIFO) enters the free slot whose cached tokens share the
//     longest prefix with it (prefix reuse; at least its last token is evaluated again for
//     logits), if the pages of its first chunk are free (after giving back idle caches); else
//     it waits.
//  5. One forward pass over the batch; each sequence whose tokens are all evaluated samples its
//     next token, streams its text (whole UTF-8, held back while it may begin a stop string)
//     and ends on a stop string, an end-of-generation token, max_tokens or the context limit.
//     A finished sequence's slot keeps its tokens and pages as a prefix cache.
#include "runtime/scheduler.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "runtime/detokenizer.h"
#include "runtime/stop_strings.h"
#include "runtime/weight_traffic.h"

namespace moe {

const char* finish_reason_name(FinishReason f) {
    switch (f) {
        case FinishReason::Stop:
            return "stop";
        case FinishReason::Length:
            return "length";
        case FinishReason::Cancelled:
            return "cancelled";
        case FinishReason::Error:
            return "error";
    }
    return "error";
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

// What the scheduler thread waits on; streams poke it when they are cancelled.
struct Wakeup {
    std::mutex mu;
    std::condition_variable cv;
};

class Stream final : public GenStream {
  public:
    explicit Stream(std::shared_ptr<Wakeup> w) : wakeup_(std::move(w)) {}

    GenEvent next(std::chrono::milliseconds timeout) override {
        std::unique_lock lk(mu_);
        cv_.wait_for(lk, timeout, [&] { return !events_.empty(); });
        if (events_.empty()) return std::monostate{};
        GenEvent e = std::move(events_.front());
        events_.pop_front();
        return e;
    }
    void cancel() override {
        cancelled_.store(true);
        { std::lock_guard lk(wakeup_->mu); }  // the scheduler is waiting or will see the flag
        wakeup_->cv.notify_all();
    }

    void push(GenEvent e) {
        {
            std::lock_guard lk(mu_);
            events_.push_back(std::move(e));
        }
        cv_.notify_all();
    }
    bool cancelled() const { return cancelled_.load(); }

  private:
    std::shared_ptr<Wakeup> wakeup_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<GenEvent> events_;
    std::atomic<bool> cancelled_{false};
};

// A request on its way through the scheduler.
struct Sequence {
    Sequence(GenRequest r, const Tokenizer& tok)
        : req(std::move(r)),
          tokens(req.prompt),
          sampler(req.sampling),
          detok(tok, req.prompt),
          stop(req.stop) {
        for (int32_t t : req.prompt) sampler.accept(t);
    }

    GenRequest req;
    std::shared_ptr<Stream> stream;
    std::vector<int32_t> tokens;  // prompt + generated so far
    int n_eval = 0;               // tokens[0, n_eval) are in the slot's KV cache
    int n_generated = 0;
    int slot = -1;         // -1 while queued
    int64_t admitted = 0;  // admission order; preemption takes the most recent
    int64_t id = 0;        // submission order (StepChunk::request)
    bool started = false;  // admitted once (queue time and cached prefix counted)
    Sampler sampler;
    IncrementalDecoder detok;
    StopMatcher stop;
    GenSummary summary;
    Clock::time_point t_submit;
    bool done = false;

    int pending() const { return int(tokens.size()) - n_eval; }
    bool decoding() const { return n_generated > 0 && pending() == 1; }
};

struct Slot {
    Sequence* seq = nullptr;      // running sequence, or null when idle
    std::vector<int32_t> cached;  // idle: tokens whose keys/values the slot still holds
    int64_t last_used = 0;        // idle caches are given back least recently used first
};

// One row of the step's batch that returns logits.
struct Output {
    Sequence* seq;
    int64_t row;  // index in the batch
};

class SchedulerImpl final : public Scheduler {
  public:
    SchedulerImpl(const Model& m, const Tokenizer& tok, const SchedulerOptions& opt,
                  std::unique_ptr<Session> session)
        : model_(m),
          tok_(tok),
          opt_(opt),
          owned_session_(std::move(session)),
          session_(*owned_session_),
          slots_(size_t(opt_.n_slots)),
          traffic_(weight_traffic(m)),
          wakeup_(std::make_shared<Wakeup>()) {
        ctx_limit_ = int(std::min<int64_t>(session_.n_ctx(),
                                           session_.kv_pages_total() * session_.kv_page_tokens()));
        metrics_.kv_pages_total = session_.kv_pages_total();
        metrics_.kv_page_tokens = session_.kv_page_tokens();
        metrics_.dense_bytes_per_step = traffic_.dense_bytes;
        metrics_.processes = opt_.session.mirror ? opt_.session.mirror->processes() : 1;
        thread_ = std::thread([this] { run(); });
    }

    ~SchedulerImpl() override {
        {
            std::lock_guard lk(wakeup_->mu);
            stopping_ = true;
        }
        wakeup_->cv.notify_all();
        thread_.join();
        for (auto& s : running_) finish(*s, FinishReason::Cancelled);
        for (auto& s : queue_) finish(*s, FinishReason::Cancelled);
    }

    std::variant<std::shared_ptr<GenStream>, Refusal> submit(GenRequest r) override;
    SchedulerMetrics metrics() const override {
        std::lock_guard lk(wakeup_->mu);
        SchedulerMetrics m = metrics_;
        m.queue_length = int(queue_.size());
        return m;
    }
    const SchedulerOptions& options() const override { return opt_; }

  private:
    void run();
    void step();
    void drop_cancelled();
    void schedule_decodes(Batch& b, std::vector<Output>& outs);
    void schedule_prefills(Batch& b, std::vector<Output>& outs);
    void admit(Batch& b, std::vector<Output>& outs);
    void add_chunk(Sequence& s, int n, Batch& b, std::vector<Output>& outs);
    bool make_room(int64_t pages, size_t self);
    bool drop_idle_caches(int64_t pages, int except_slot);
    void preempt_last();
    void sample_and_stream(Sequence& s, const float* logits, const RouterTrace& trace, int64_t row,
                           int64_t n_rows);
    void finish(Sequence& s, FinishReason why, const std::string& error = {});
    void release_slot(Sequence& s, bool keep_cache);
    void publish_slots_locked();  // running, KV page counts into metrics_ (wakeup_->mu held)
    void record_step(const Batch& b, const RouterTrace& trace, int n_decode);
    void report_step(int n_decode) const;  // opt_.on_step, before n_eval moves on
    int64_t pages_for(int64_t n_tokens) const {
        return (n_tokens + session_.kv_page_tokens() - 1) / session_.kv_page_tokens();
    }
    // Pages not held and not promised to the step being built (Session::eval takes them).
    int64_t free_pages() const {
        return session_.kv_pages_total() - session_.kv_pages_used() - reserved_;
    }

    const Model& model_;
    const Tokenizer& tok_;
    SchedulerOptions opt_;
    std::unique_ptr<Session> owned_session_;
    Session& session_;
    std::vector<Slot> slots_;
    WeightTraffic traffic_;
    int ctx_limit_ = 0;       // longest sequence: the context, or the whole pool if smaller
    int64_t clock_ = 0;       // admissions and slot uses, for ordering
    int64_t next_id_ = 0;     // submissions (under wakeup_->mu)
    int budget_ = 0;          // tokens left in the step being built
    int64_t reserved_ = 0;    // pages the step being built will take
    bool preempted_ = false;  // the step being built sent a sequence back to the queue
    std::vector<std::pair<Sequence*, int>> chunks_;  // the step's sequences and token counts

    // Owned by the scheduler thread.
    std::vector<std::unique_ptr<Sequence>> running_;  // in admission order
    // Shared with submit() and metrics(), under wakeup_->mu.
    std::shared_ptr<Wakeup> wakeup_;
    std::deque<std::unique_ptr<Sequence>> queue_;
    SchedulerMetrics metrics_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace

SessionOptions scheduler_session_options(const SchedulerOptions& o) {
    SessionOptions s = o.session;
    s.n_seq = std::max(1, o.n_slots);
    s.n_batch = std::max({1, o.step_tokens, o.prefill_step_tokens});
    return s;
}

namespace {

std::variant<std::shared_ptr<GenStream>, Scheduler::Refusal> SchedulerImpl::submit(GenRequest r) {
    auto invalid = [](std::string msg) { return Refusal{SubmitError::Invalid, std::move(msg)}; };
    if (r.prompt.empty()) return invalid("the prompt is empty");
    for (int32_t t : r.prompt)
        if (t < 0 || t >= model_.config.n_vocab)
            return invalid(fmt::format("prompt token id {} is out of range [0, {})", t,
                                       model_.config.n_vocab));
    if (int64_t(r.prompt.size()) + 1 > ctx_limit_)
        return invalid(fmt::format(
            "the prompt has {} tokens; the context holds {} (with room for one generated token)",
            r.prompt.size(), ctx_limit_));
    if (r.max_tokens < 1)
        return invalid(fmt::format("max_tokens must be >= 1, got {}", r.max_tokens));
    if (r.top_logprobs < -1 || r.top_logprobs > 20)
        return invalid(fmt::format("top_logprobs must be in [0, 20], got {}", r.top_logprobs));
    if (auto ok = r.sampling.validate(); !ok) return invalid(ok.message());

    auto seq = std::make_unique<Sequence>(std::move(r), tok_);
    seq->stream = std::make_shared<Stream>(wakeup_);
    seq->t_submit = Clock::now();
    seq->summary.n_prompt = int(seq->req.prompt.size());
    std::shared_ptr<GenStream> stream = seq->stream;
    {
        std::lock_guard lk(wakeup_->mu);
        if (int(queue_.size()) >= opt_.max_queue)
            return Refusal{SubmitError::QueueFull,
                           fmt::format("the queue is full ({} requests waiting)", queue_.size())};
        seq->id = next_id_++;
        queue_.push_back(std::move(seq));
        ++metrics_.requests_total;
    }
    wakeup_->cv.notify_all();
    return stream;
}

void SchedulerImpl::run() {
    while (true) {
        {
            std::unique_lock lk(wakeup_->mu);
            // Sleep until there is work; a step always makes progress when there is.
            wakeup_->cv.wait(lk, [&] { return stopping_ || !queue_.empty() || !running_.empty(); });
            if (stopping_) return;
        }
        step();
    }
}

void SchedulerImpl::step() {
    const Clock::time_point t_start = Clock::now();
    drop_cancelled();
    Batch b;
    std::vector<Output> outs;
    chunks_.clear();
    reserved_ = 0;
    preempted_ = false;
    budget_ = opt_.step_tokens;
    schedule_decodes(b, outs);
    const int n_decode = int(b.size());
    if (n_decode == 0) budget_ = std::max(opt_.step_tokens, opt_.prefill_step_tokens);
    schedule_prefills(b, outs);
    admit(b, outs);
    if (b.size() == 0) {
        std::lock_guard lk(wakeup_->mu);
        publish_slots_locked();
        return;
    }

    RouterTrace trace;
    trace.with_logits = false;  // expert ids and weights are all the scheduler needs
    const Clock::time_point t_built = Clock::now();
    auto logits = session_.eval(b, &trace);
    const Clock::time_point t_evaluated = Clock::now();
    reserved_ = 0;  // taken now
    if (!logits) {
        for (auto& s : running_)
            if (std::any_of(chunks_.begin(), chunks_.end(),
                            [&](const auto& c) { return c.first == s.get(); }))
                finish(*s, FinishReason::Error, logits.message());
    } else {
        if (opt_.on_step) report_step(n_decode);
        for (const auto& [seq, n] : chunks_) seq->n_eval += n;  // now in the cache
        // Metrics first, so that a client that saw its last event sees this step counted.
        record_step(b, trace, b.size() == n_decode ? n_decode : 0);
        const int n_vocab = model_.config.n_vocab;
        for (size_t i = 0; i < outs.size(); ++i)
            sample_and_stream(*outs[i].seq, logits->data() + i * size_t(n_vocab), trace,
                              outs[i].row, b.size());
    }
    std::erase_if(running_, [](const auto& s) { return s->done; });
    const Clock::time_point t_end = Clock::now();
    std::lock_guard lk(wakeup_->mu);
    publish_slots_locked();
    SchedulerMetrics& m = metrics_;
    m.schedule_s += seconds_between(t_start, t_built);
    m.sample_s += seconds_between(t_evaluated, t_end);
    if (b.size() == n_decode) {
        m.forward_decode_s += seconds_between(t_built, t_evaluated);
    } else {
        m.forward_mixed_s += seconds_between(t_built, t_evaluated);
        ++m.mixed_steps;
        m.mixed_prompt_tokens += b.size() - n_decode;
        m.mixed_decode_tokens += n_decode;
    }
}

void SchedulerImpl::publish_slots_locked() {
    metrics_.running = 0;
    metrics_.kv_pages_used = session_.kv_pages_used();
    metrics_.kv_pages_cached = 0;
    for (const Slot& slot : slots_)
        if (slot.seq)
            ++metrics_.running;
        else
            metrics_.kv_pages_cached += pages_for(int64_t(slot.cached.size()));
}

void SchedulerImpl::drop_cancelled() {
    for (auto& s : running_)
        if (s->stream->cancelled()) finish(*s, FinishReason::Cancelled);
    std::erase_if(running_, [](const auto& s) { return s->done; });
    std::vector<std::unique_ptr<Sequence>> gone;
    {
        std::lock_guard lk(wakeup_->mu);
        for (auto it = queue_.begin(); it != queue_.end();)
            if ((*it)->stream->cancelled()) {
                gone.push_back(std::move(*it));
                it = queue_.erase(it);
            } else {
                ++it;
            }
    }
    for (auto& s : gone) finish(*s, FinishReason::Cancelled);
}

void SchedulerImpl::add_chunk(Sequence& s, int n, Batch& b, std::vector<Output>& outs) {
    reserved_ += session_.kv_pages_needed(s.slot, s.n_eval + n);
    for (int j = 0; j < n; ++j) {
        const int p = s.n_eval + j;
        const bool last = p + 1 == int(s.tokens.size());
        if (last) outs.push_back({&s, b.size()});
        b.add(s.tokens[size_t(p)], p, s.slot, last);
    }
    budget_ -= n;
    chunks_.emplace_back(&s, n);
}

void SchedulerImpl::schedule_decodes(Batch& b, std::vector<Output>& outs) {
    // Not limited by the budget: step_tokens >= n_slots leaves room for every decoder.
    for (size_t i = 0; i < running_.size();) {
        Sequence& s = *running_[i];
        if (!s.decoding()) {
            ++i;
            continue;
        }
        if (!make_room(session_.kv_pages_needed(s.slot, s.n_eval + 1), i)) continue;  // s left
        add_chunk(s, 1, b, outs);
        ++i;
    }
}

void SchedulerImpl::schedule_prefills(Batch& b, std::vector<Output>& outs) {
    for (size_t i = 0; i < running_.size() && budget_ > 0;) {
        Sequence& s = *running_[i];
        if (s.decoding() || s.pending() == 0) {
            ++i;
            continue;
        }
        int n = std::min(s.pending(), budget_);
        drop_idle_caches(session_.kv_pages_needed(s.slot, s.n_eval + n), -1);
        // Shrink the chunk to the pages free; the first sequence of an empty step may preempt
        // later ones so that the step is never empty.
        const int64_t reach = (pages_for(s.n_eval) + free_pages()) * session_.kv_page_tokens();
        n = int(std::min<int64_t>(n, reach - s.n_eval));
        if (n <= 0) {
            if (b.size() > 0) break;
            n = std::min(s.pending(), budget_);
            if (!make_room(session_.kv_pages_needed(s.slot, s.n_eval + n), i)) continue;
        }
        add_chunk(s, n, b, outs);
        ++i;
    }
}

void SchedulerImpl::admit(Batch& b, std::vector<Output>& outs) {
    // A step that had to preempt is short of pages: admitting now would only preempt again.
    while (budget_ > 0 && !preempted_) {
        std::unique_ptr<Sequence> seq;
        Sequence* head;
        {
            std::lock_guard lk(wakeup_->mu);
            if (queue_.empty()) return;
            head = queue_.front().get();  // only this thread removes queued requests
        }
        // The free slot with the longest shared prefix; ties: the least recently used.
        int best = -1;
        size_t best_keep = 0;
        for (size_t i = 0; i < slots_.size(); ++i) {
            if (slots_[i].seq) continue;
            const auto& c = slots_[i].cached;
            size_t k = 0;
            while (k < c.size() && k + 1 < head->tokens.size() && c[k] == head->tokens[k]) ++k;
            if (best < 0 || k > best_keep ||
                (k == best_keep && slots_[i].last_used < slots_[size_t(best)].last_used))
                best = int(i), best_keep = k;
        }
        if (best < 0) return;  // no free slot
        const int n = std::min(int(head->tokens.size() - best_keep), budget_);
        // Pages for the first chunk, counted as if the slot were cut to the shared prefix.
        // (the cut gives back the pages beyond the prefix).
        const int64_t need = pages_for(int64_t(best_keep) + n) -
                             pages_for(int64_t(slots_[size_t(best)].cached.size()));
        if (!drop_idle_caches(need, best)) return;  // waits for pages
        {
            std::lock_guard lk(wakeup_->mu);
            seq = std::move(queue_.front());
            queue_.pop_front();
        }
        Slot& slot = slots_[size_t(best)];
        session_.truncate(best, int(best_keep));
        slot.cached.clear();
        slot.seq = seq.get();
        slot.last_used = ++clock_;
        seq->slot = best;
        seq->n_eval = int(best_keep);
        seq->admitted = clock_;
        if (!seq->started) {
            seq->started = true;
            seq->summary.n_prompt_cached = int(std::min(best_keep, seq->req.prompt.size()));
            seq->summary.queued_s = seconds_between(seq->t_submit, Clock::now());
            std::lock_guard lk(wakeup_->mu);
            metrics_.prompt_tokens += int64_t(seq->req.prompt.size());
            metrics_.prompt_tokens_cached += seq->summary.n_prompt_cached;
        }
        add_chunk(*seq, n, b, outs);
        running_.push_back(std::move(seq));
    }
}

bool SchedulerImpl::drop_idle_caches(int64_t pages, int except_slot) {
    while (free_pages() < pages) {
        int lru = -1;
        for (size_t i = 0; i < slots_.size(); ++i)
            if (!slots_[i].seq && !slots_[i].cached.empty() && int(i) != except_slot &&
                (lru < 0 || slots_[i].last_used < slots_[size_t(lru)].last_used))
                lru = int(i);
        if (lru < 0) return false;
        session_.truncate(lru, 0);
        slots_[size_t(lru)].cached.clear();
    }
    return true;
}

bool SchedulerImpl::make_room(int64_t pages, size_t self) {
    drop_idle_caches(pages, -1);
    while (free_pages() < pages) {
        const bool self_is_last = running_.size() == self + 1;
        preempt_last();
        if (self_is_last) return false;
    }
    return true;
}

void SchedulerImpl::preempt_last() {
    std::unique_ptr<Sequence> s = std::move(running_.back());
    running_.pop_back();
    session_.truncate(s->slot, 0);
    slots_[size_t(s->slot)] = Slot{};
    s->slot = -1;
    s->n_eval = 0;
    preempted_ = true;
    std::lock_guard lk(wakeup_->mu);
    ++metrics_.preemptions;
    queue_.push_front(std::move(s));
}

void SchedulerImpl::sample_and_stream(Sequence& s, const float* logits, const RouterTrace& trace,
                                      int64_t row, int64_t n_rows) {
    const int n_vocab = model_.config.n_vocab;
    const int32_t tok = s.sampler.sample(logits, n_vocab);
    s.sampler.accept_generated(tok);
    s.tokens.push_back(tok);
    if (s.n_generated == 0) s.summary.first_token_s = seconds_between(s.t_submit, Clock::now());
    if (!s.req.ignore_eos && tok_.is_eog(tok)) return finish(s, FinishReason::Stop);
    ++s.n_generated;
    {
        std::lock_guard lk(wakeup_->mu);
        ++metrics_.generated_tokens;
    }

    TokenEvent ev;
    ev.token = tok;
    if (s.req.top_logprobs >= 0) {
        const TokenLogprobs lp = token_logprobs(logits, n_vocab, tok, s.req.top_logprobs);
        ev.logprob = TokenLogprob{tok, tok_.decode_token(tok), lp.chosen};
        for (const auto& [t, l] : lp.top) ev.top.push_back({t, tok_.decode_token(t), l});
    }
    if (s.req.routing && trace.n_expert_used > 0) {
        // The router decisions of the evaluation whose logits gave this token.
        const int64_t k = trace.n_expert_used;
        const int64_t n_layers = int64_t(trace.selected.size()) / (n_rows * k);
        ev.routing.resize(size_t(n_layers));
        for (int64_t l = 0; l < n_layers; ++l)
            for (int64_t j = 0; j < k; ++j) {
                const size_t at = size_t((l * n_rows + row) * k + j);
                ev.routing[size_t(l)].emplace_back(trace.selected[at], trace.weights[at]);
            }
    }
    ev.text = s.stop.push(s.detok.push(tok));
    s.stream->push(std::move(ev));
    if (s.stop.stopped()) return finish(s, FinishReason::Stop);
    if (s.n_generated >= s.req.max_tokens || int(s.tokens.size()) >= ctx_limit_)
        return finish(s, FinishReason::Length);
}

void SchedulerImpl::finish(Sequence& s, FinishReason why, const std::string& error) {
    if (s.done) return;
    s.done = true;
    GenSummary& sum = s.summary;
    if (why == FinishReason::Stop || why == FinishReason::Length) {
        sum.tail = s.stop.push(s.detok.flush());
        if (s.stop.stopped()) why = FinishReason::Stop;
        sum.tail += s.stop.flush();
    }
    sum.finish = why;
    sum.error = error;
    sum.n_completion = s.n_generated;
    sum.total_s = seconds_between(s.t_submit, Clock::now());
    release_slot(s, why == FinishReason::Stop || why == FinishReason::Length);
    {
        std::lock_guard lk(wakeup_->mu);
        if (why == FinishReason::Cancelled)
            ++metrics_.requests_cancelled;
        else if (why == FinishReason::Error)
            ++metrics_.requests_failed;
        else
            ++metrics_.requests_finished;
        publish_slots_locked();  // before the summary: a client that saw it sees the pages back
    }
    s.stream->push(sum);
}

void SchedulerImpl::release_slot(Sequence& s, bool keep_cache) {
    if (s.slot < 0) return;
    Slot& slot = slots_[size_t(s.slot)];
    slot.seq = nullptr;
    if (keep_cache) {
        slot.cached.assign(s.tokens.begin(), s.tokens.begin() + s.n_eval);
        slot.last_used = ++clock_;
    } else {
        session_.truncate(s.slot, 0);
        slot = Slot{};
    }
    s.slot = -1;
}

void SchedulerImpl::report_step(int n_decode) const {
    std::vector<StepChunk> chunks;
    for (size_t i = 0; i < chunks_.size(); ++i) {
        const auto& [seq, n] = chunks_[i];
        chunks.push_back({seq->id, n, int(i) < n_decode, seq->pending() - n});
    }
    opt_.on_step(chunks);
}

void SchedulerImpl::record_step(const Batch& b, const RouterTrace& trace, int n_decode) {
    // Distinct experts per MoE layer over the whole step.
    const int64_t T = b.size(), k = trace.n_expert_used;
    double experts_sum = 0, expert_bytes = 0;
    const int64_t n_layers = k > 0 ? int64_t(trace.selected.size()) / (T * k) : 0;
    std::vector<uint8_t> seen(size_t(std::max(trace.n_expert, 1)));
    for (int64_t l = 0; l < n_layers; ++l) {
        std::fill(seen.begin(), seen.end(), 0);
        int distinct = 0;
        for (int64_t i = 0; i < T * k; ++i) {
            const int32_t e = trace.selected[size_t(l * T * k + i)];
            if (e >= 0 && e < trace.n_expert && !seen[size_t(e)]) seen[size_t(e)] = 1, ++distinct;
        }
        experts_sum += distinct;
        if (size_t(l) < traffic_.expert_bytes.size())
            expert_bytes += distinct * traffic_.expert_bytes[size_t(l)];
    }
    std::lock_guard lk(wakeup_->mu);
    SchedulerMetrics& m = metrics_;
    ++m.steps;
    m.last_step_tokens = int(T);
    std::unordered_set<int32_t> seqs(b.seq.begin(), b.seq.end());
    m.last_step_sequences = int(seqs.size());
    m.last_step_experts_per_layer = n_layers > 0 ? experts_sum / double(n_layers) : 0;
    if (n_decode > 0) {  // a step of decode tokens only
        ++m.decode_steps;
        m.experts_per_layer_sum += m.last_step_experts_per_layer;
        m.decode_tokens += n_decode;
        m.expert_bytes_read_total += expert_bytes;
        m.expert_bytes_per_token_last = expert_bytes / n_decode;
        m.weight_bytes_per_token_last = (expert_bytes + traffic_.dense_bytes) / n_decode;
        m.weight_bytes_read_total += expert_bytes + traffic_.dense_bytes;
    }
}

}  // namespace

Result<std::unique_ptr<Scheduler>> Scheduler::create(const Model& model, const Tokenizer& tok,
                                                     const SchedulerOptions& opt) {
    if (opt.n_slots < 1) return make_error("the number of slots must be >= 1, got {}", opt.n_slots);
    if (opt.step_tokens < opt.n_slots)
        return make_error(
            "the step token budget ({}) must be at least the number of slots ({}): every "
            "decoding sequence takes one token of each step",
            opt.step_tokens, opt.n_slots);
    if (opt.prefill_step_tokens < 0)
        return make_error("the prefill step token budget must be >= 0, got {}",
                          opt.prefill_step_tokens);
    if (opt.max_queue < 0)
        return make_error("the queue length must be >= 0, got {}", opt.max_queue);
    if (opt.session.kv_tokens < 0)
        return make_error("the KV pool size must be >= 0 tokens, got {}", opt.session.kv_tokens);
    MOE_TRY(auto session, Session::create(model, scheduler_session_options(opt)));
    return std::unique_ptr<Scheduler>(
        std::make_unique<SchedulerImpl>(model, tok, opt, std::move(session)));
}

}  // namespace moe
