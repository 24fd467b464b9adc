// Continuous batching. One scheduler thread owns a Session; callers (the HTTP server, tests) hand
// it requests through submit() and read each request's events from its GenStream. Every step is
// one forward pass over the next token of every decoding sequence plus chunks of waiting prompts,
// up to step_tokens tokens (the rule is in scheduler.cpp); sequences join and leave between steps.
// Tokens of one step that are routed to the same expert are computed together (the MoE block groups
// rows by expert), so an active expert's weights are read once per step whatever the number of
// sequences.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "core/result.h"
#include "runtime/sampler.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

namespace moe {

// The default per-step token budget (serve --step-tokens). Chosen by measurement (README,
// "Serving"): a step's cost grows with its prompt tokens and every decoding sequence waits for
// it, while chunks much smaller leave each expert too few tokens for the prompt GEMM.
inline constexpr int kDefaultStepTokens = 64;
// The budget of a step in which no sequence is decoding (serve --prefill-step-tokens): nobody
// waits on such a step, so a prompt is evaluated in fewer, larger chunks (more tokens per expert
// for the prompt GEMM, no short tail chunk through the single-token kernels).
inline constexpr int kDefaultPrefillStepTokens = 512;

// One sequence's share of a step, as the step ran (SchedulerOptions::on_step).
struct StepChunk {
    int64_t request = 0;  // submission order, from 0
    int n_tokens = 0;     // tokens of this sequence in the step
    bool decode = false;  // its next token (it has sampled one), else a prompt chunk
    int prompt_left = 0;  // prompt tokens still to evaluate after this step
};

struct SchedulerOptions {
    int n_slots = 4;  // sequences decoded at once (serve -np)
    // Tokens per step (>= n_slots): every decoding sequence's next token first, then prompt
    // chunks oldest first in what is left (a prompt may be split across steps).
    int step_tokens = kDefaultStepTokens;
    // Tokens of a step with no decoding sequence (prompt chunks only): max(step_tokens, this).
    int prefill_step_tokens = kDefaultPrefillStepTokens;
    int max_queue = 256;     // waiting requests beyond which submit() refuses (HTTP 503)
    SessionOptions session;  // n_ctx (per sequence), kv_tokens (pool), threads, deterministic
    // Called on the scheduler thread after each evaluated step with its sequences in batch order
    // (decodes first); for tests and tracing. Must not call back into the scheduler.
    std::function<void(std::span<const StepChunk>)> on_step;
};

struct GenRequest {
    std::vector<int32_t> prompt;    // token ids, template and BOS already applied
    int max_tokens = 16;            // >= 1; generation also ends at the context limit ("length")
    SamplerParams sampling;         // checked with SamplerParams::validate() by the caller
    std::vector<std::string> stop;  // generation ends before any of these; they are never emitted
    bool ignore_eos = false;        // keep going past end-of-generation tokens
    int top_logprobs = -1;          // -1: no logprobs; 0..20: the token's logprob + the n best
    bool routing = false;           // fill TokenEvent::routing (MoE models)
};

struct TokenLogprob {
    int32_t token = -1;
    std::string text;  // the token's bytes (may be a partial UTF-8 sequence)
    float logprob = 0;
};

// One generated token.
struct TokenEvent {
    int32_t token = -1;
    // Text this token releases: whole UTF-8 characters only, never any part of a stop string
    // (a tail that may begin one is held back until it is known not to). Often empty.
    std::string text;
    std::optional<TokenLogprob> logprob;  // when top_logprobs >= 0 (log-softmax of the raw logits)
    std::vector<TokenLogprob> top;        // top_logprobs best alternatives, best first
    // [moe layer][k]: (expert id, router weight) of this token's evaluation (routing requests):
    // the row whose logits gave this token (the last prompt position for the first token).
    std::vector<std::vector<std::pair<int32_t, float>>> routing;
};

enum class FinishReason { Stop, Length, Cancelled, Error };
const char* finish_reason_name(FinishReason f);  // "stop", "length", "cancelled", "error"

// The last event of every request.
struct GenSummary {
    FinishReason finish = FinishReason::Stop;
    std::string error;         // FinishReason::Error
    std::string tail;          // held-back text released at the end (no stop string matched)
    int n_prompt = 0;          // prompt tokens
    int n_prompt_cached = 0;   // of which reused from the KV cache (prefix reuse)
    int n_completion = 0;      // generated tokens (those cut by a stop string included)
    double queued_s = 0;       // submit -> first step that evaluated the prompt
    double first_token_s = 0;  // submit -> first generated token
    double total_s = 0;        // submit -> end
};

using GenEvent = std::variant<std::monostate, TokenEvent, GenSummary>;

// A request's event channel, shared by the scheduler thread (producer) and one consumer.
class GenStream {
  public:
    virtual ~GenStream() = default;
    // The next event, waiting up to `timeout`; std::monostate on timeout. After the GenSummary,
    // only std::monostate.
    virtual GenEvent next(std::chrono::milliseconds timeout) = 0;
    // Ends the request (a client went away): its sequence and KV pages are freed at the next step
    // and it ends with FinishReason::Cancelled. Safe to call at any time, more than once.
    virtual void cancel() = 0;
};

struct SchedulerMetrics {
    int64_t requests_total = 0, requests_finished = 0, requests_cancelled = 0, requests_failed = 0;
    int64_t prompt_tokens = 0, prompt_tokens_cached = 0, generated_tokens = 0;
    int queue_length = 0, running = 0;  // waiting requests, sequences in slots
    int64_t kv_pages_total = 0, kv_pages_used = 0;
    int kv_page_tokens = 0;
    int64_t steps = 0;
    int last_step_tokens = 0, last_step_sequences = 0;
    // Decode steps: distinct experts touched per MoE layer (mean over layers) in the last step and
    // summed over all steps, and the expert weight bytes those steps read per generated token.
    double last_step_experts_per_layer = 0;
    double experts_per_layer_sum = 0;  // over decode steps (divide by decode_steps)
    int64_t decode_steps = 0;
    double expert_bytes_per_token_last = 0;
    double expert_bytes_read_total = 0;  // decode steps, all layers
    int64_t decode_tokens = 0;           // tokens generated by those steps
    // Added by the scheduler implementation:
    int64_t kv_pages_cached = 0;             // of kv_pages_used, held by idle slots (prefix cache)
    int64_t preemptions = 0;                 // sequences sent back to the queue for lack of pages
    double dense_bytes_per_step = 0;         // non-expert weights, read once per step
    double weight_bytes_per_token_last = 0;  // last decode step: (expert + dense) / tokens
    double weight_bytes_read_total = 0;      // decode steps: expert + dense bytes
    int processes = 1;  // that run each step (serve --expert-parallel: the MPI ranks)
    // Where the scheduler thread's time goes (seconds, summed over steps): building the batch,
    // the forward pass of decode-only steps and of steps with prompt tokens, sampling + streaming.
    double schedule_s = 0, forward_decode_s = 0, forward_mixed_s = 0, sample_s = 0;
    int64_t mixed_steps = 0;          // steps with prompt tokens (forward_mixed_s)
    int64_t mixed_prompt_tokens = 0;  // prompt tokens those steps evaluated
    int64_t mixed_decode_tokens = 0;  // decode rows those steps carried
};

// The options of the Session a scheduler makes (a step mirror's followers make the same one).
SessionOptions scheduler_session_options(const SchedulerOptions& opt);

class Scheduler {
  public:
    virtual ~Scheduler() = default;  // stops the thread; requests still open end Cancelled

    // Starts the scheduler thread over a new Session of `model` (which must outlive it).
    static Result<std::unique_ptr<Scheduler>> create(const Model& model, const Tokenizer& tok,
                                                     const SchedulerOptions& opt);

    enum class SubmitError { Invalid, QueueFull };  // HTTP 400 / 503
    struct Refusal {
        SubmitError kind;
        std::string message;
    };
    // Queues a request. Refused with Invalid when the prompt is empty, has out-of-range ids or is
    // too long for the context (with room for at least one generated token); QueueFull when
    // max_queue requests are waiting.
    virtual std::variant<std::shared_ptr<GenStream>, Refusal> submit(GenRequest r) = 0;

    virtual SchedulerMetrics metrics() const = 0;
    virtual const SchedulerOptions& options() const = 0;
};

}  // namespace moe
