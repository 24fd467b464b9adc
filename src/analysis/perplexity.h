// Perplexity over a token stream, with the upstream perplexity tool's method: the stream (text
// tokenized with BOS) is cut into windows of n_ctx tokens; each window is evaluated from an empty
// cache and only the predictions of its second half are scored, so every scored token has at
// least n_ctx/2 tokens of context. PPL = exp(mean NLL), reported with its standard error.
//
// Against a reference model with the same vocabulary (e.g. the f16 of the same weights) it adds
// the KL divergence KL(P_ref || P_model) per scored token (mean, 99th percentile, max) and top-1
// agreement. Routing variance: the share of (MoE layer, token) whose selected expert set differs
// between the model and the reference, and between one large batch and token-by-token (batch 1)
// evaluation of the same model: the KV cache makes them mathematically equal, so any difference
// comes from rounding in different kernels.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "analysis/ppl_figure.h"
#include "core/result.h"
#include "models/kv_layout.h"
#include "models/model.h"

namespace moe {

struct PerplexityOptions {
    int n_ctx = 512;         // window length in tokens
    int stride = 0;          // 0: disjoint windows (upstream); else windows every `stride` tokens,
                             // each scoring its last `stride` predictions (the first window scores
                             // from score_from), so every scored token has n_ctx - stride context
    int score_from = -1;     // first window position whose next-token prediction is scored;
                             // -1: n_ctx / 2. 0 scores every prediction (tests).
    int32_t bos = -1;        // >= 0: each window's first token is replaced by it (upstream does so
                             // when the vocabulary adds BOS); -1: tokens are used as they are
    int max_windows = 0;     // 0: all windows the stream holds
    int batch1_windows = 1;  // windows also evaluated token by token (routing variance);
                             // 0: none, < 0: all
    int n_threads = 0;
    KvTypes kv_types;  // --cache-type-k / --cache-type-v
};

struct RoutingDiff {
    bool available = false;
    std::string why_not;    // when !available
    int64_t compared = 0;   // (MoE layer, token) pairs
    int64_t differing = 0;  // whose selected expert sets differ
    double share() const { return compared ? double(differing) / double(compared) : 0.0; }
};

// The PplFigure fields: n_scored, nll, ppl, ppl_stderr.
struct PerplexityResult : PplFigure {
    int64_t n_tokens = 0;  // stream length
    int n_windows = 0;
    std::vector<double> window_ppl;  // running PPL after each window

    // With a reference model.
    bool has_ref = false;
    double ref_ppl = 0, ref_ppl_stderr = 0;
    double kl_mean = 0, kl_stderr = 0, kl_p99 = 0, kl_max = 0;
    double top1_agreement = 0;  // share of scored tokens whose argmax agrees
    RoutingDiff routing_vs_ref;

    // Batch 1 vs one batch of the same model.
    RoutingDiff routing_batch1;
    int batch1_windows = 0;
    double batch1_max_abs_logit_diff = 0;
    double batch1_top1_agreement = 0;
};

struct PerplexityProgress {
    int window = 0, n_windows = 0;  // windows done, of
    double ppl = 0;                 // running
    int64_t n_scored = 0;
};
using PerplexityCallback = std::function<void(const PerplexityProgress&)>;

// The number of windows and scored tokens a stream of n_tokens gives (no evaluation); an error
// when the options are inconsistent or the stream is shorter than one window.
struct WindowPlan {
    int n_windows = 0, score_from = 0;
    int64_t n_scored = 0;
};
Result<WindowPlan> plan_windows(int64_t n_tokens, const PerplexityOptions& opt);

// Evaluates `tokens` with `model` (and `ref` when non-null; same vocabulary required).
Result<PerplexityResult> evaluate_perplexity(const Model& model, const Model* ref,
                                             std::span<const int32_t> tokens,
                                             const PerplexityOptions& opt,
                                             const PerplexityCallback& progress = {});

// NLL of `target` under logits (log-softmax in double), and the log-probabilities of a row.
double token_nll(std::span<const float> logits, int32_t target);
void log_softmax(std::span<const float> logits, std::vector<double>& out);

}  // namespace moe
