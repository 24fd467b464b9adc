// The top-k sweep (`eval --top-k 1,2,4,all`, `compare --top-k-sweep`): the same windows as
// perplexity, evaluated once per k routed experts per token (models/top_k.h: the family's rules
// after selection are kept) and measured against the model's native k on the same tokens.
//
// Per k: active parameters per token and weight bytes read per decoded token (from the tensor
// shapes and types), prompt tok/s (the batched windows) and decode tok/s (token by token, the
// sessions interleaved step by step so that machine noise hits every k alike; both from the
// median time of a window / a step), perplexity +/-
// standard error, the paired NLL difference to native +/- its standard error, KL(P_native ||
// P_k) and top-1 agreement per scored token, and the share of (MoE layer, scored token) whose
// native top-1 expert is still among the k chosen. The native k is always one of the rows, and
// its figures are computed exactly as `evaluate_perplexity` computes them.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "analysis/perplexity.h"
#include "core/result.h"
#include "models/model.h"

namespace moe {

// "1,2,4,8,all" -> sorted distinct k, the native k added. Errors for a dense model, empty
// entries, non-numbers, 0, and k above the expert count (`all` means every expert).
Result<std::vector<int>> parse_top_k_list(std::string_view list, const ModelConfig& c);

struct SweepOptions {
    PerplexityOptions ppl;   // windows, BOS, threads (batch1_windows is not used)
    int decode_tokens = 64;  // timed tokens decoded one by one per k (0: none)
};

// With the PplFigure fields: n_scored, nll, ppl, ppl_stderr at this k.
struct SweepRow : PplFigure {
    int k = 0;
    bool native = false;
    int64_t active_params = 0;   // per token, embedding table included
    double bytes_per_token = 0;  // weight bytes one decoded token reads
    double prompt_tps = 0, decode_tps = 0;
    double dnll_mean = 0, dnll_stderr = 0;  // NLL(k) - NLL(native) per scored token
    double kl_mean = 0, kl_stderr = 0;      // KL(P_native || P_k), nats
    double top1_agreement = 0;              // argmax(P_k) == argmax(P_native)
    double native_top1_kept = 0;            // of (MoE layer, scored token)
};

struct SweepResult {
    int n_expert = 0, native_k = 0, n_moe_layers = 0, n_ctx = 0, n_windows = 0;
    int64_t n_tokens = 0, n_scored = 0;
    std::vector<SweepRow> rows;  // ascending k
    const SweepRow* native() const;
};

using SweepProgress = std::function<void(int window, int n_windows)>;

Result<SweepResult> run_top_k_sweep(const Model& model, std::span<const int32_t> tokens,
                                    const std::vector<int>& ks, const SweepOptions& opt,
                                    const SweepProgress& progress = {});

nlohmann::json sweep_json(const SweepResult& r);
// The plain-text table of a sweep (from its JSON, so compare can print a stored one).
std::string sweep_table(const nlohmann::json& sweep);
// What the sweep shows, in words computed from the figures.
std::string sweep_summary(const nlohmann::json& sweep);

}  // namespace moe
