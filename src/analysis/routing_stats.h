// Routing statistics: an accumulator fed with the router decisions of every forward pass (the
// prompt batches and each decode step) that summarises, per MoE layer and expert, how the load
// spreads (counts, share, max/mean, coefficient of variation, entropies, co-activated pairs) and,
// for the session, how many parameters and weight bytes one token actually used.
//
// Typical use (see cmd_run.cpp):
//   RoutingStats rs(model);
//   generate(..., /*on_routing=*/[&](const RouterTrace& t, int64_t n, bool prefill) {
//       rs.add_eval_tokens(t, n, n_batch, prefill); });
//   rs.write_json("stats.json");
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/result.h"
#include "models/batch.h"
#include "models/expert_store.h"
#include "models/model.h"

namespace moe {

// Parameter and byte counts of a model's weights, from the tensor shapes and types of its source.
// "Routed experts" are the ffn_{gate,up,down}_exps tensors (and their biases); everything else
// (attention, dense FFN, shared experts, router, norms, embeddings, output) is non-routed.
struct WeightTable {
    int64_t total_params = 0, total_bytes = 0;
    int64_t non_routed_params = 0;  // every tensor but the routed experts (embedding included)
    int64_t pass_bytes = 0;         // non-routed bytes read once per forward pass (no token_embd
                                    // unless it doubles as the output matrix)
    int64_t embd_row_bytes = 0;     // token_embd bytes read per token (one row)
    int n_expert = 0, n_expert_used = 0;
    // Per MoE layer (in MoE-layer order): params and bytes of ONE routed expert.
    std::vector<int64_t> expert_params, expert_bytes;
    // Active parameters per token: non-routed + n_expert_used/n_expert of the routed tensors.
    int64_t active_params() const;
};

// Builds the table from a loaded model (its source's tensors, its config's MoE layers).
WeightTable weight_table(const Model& m);

enum class RoutingPhase { Prefill, Decode };

class RoutingStats {
  public:
    // Empty accumulator for a model without weights information (tests, hand-made traces).
    RoutingStats(int n_moe_layers, int n_expert, int n_expert_used, Gating gating);
    // Accumulator for a model: layer indices, gating, weight sizes and names come from it.
    explicit RoutingStats(const Model& m);

    // One forward pass of T tokens, as filled by forward() / Session::eval: per MoE layer in
    // order, T rows of logits and selections. T is inferred from the trace (a dense model's
    // empty trace is ignored: use add_eval_tokens, which knows the token count).
    Result<void> add_pass(const RouterTrace& tr, RoutingPhase phase);
    // The trace of Session::eval_tokens over n_tokens tokens evaluated in chunks of n_batch
    // (chunks append whole layer-major blocks); each chunk is counted as one pass.
    Result<void> add_eval_tokens(const RouterTrace& tr, int64_t n_tokens, int n_batch,
                                 RoutingPhase phase);

    int n_moe_layers() const { return n_layers_; }
    int n_expert() const { return n_expert_; }
    int64_t n_tokens() const { return tokens_[0] + tokens_[1]; }
    // counts[layer][expert]: times the expert was selected.
    const std::vector<std::vector<int64_t>>& counts() const { return counts_; }

    // The expert cache's counters (--mem-budget), written as the "cache" object.
    void set_cache(const ExpertStoreStats& st);

    // Everything as JSON (schema: "moeinfer-routing-stats" version 1, see to_json()).
    nlohmann::json to_json() const;
    Result<void> write_json(const std::string& path) const;

  private:
    void init();
    void add_block(const float* logits, const int32_t* sel, int64_t T, int layer);

    int n_layers_ = 0, n_expert_ = 0, k_ = 0;
    Gating gating_ = Gating::Softmax;
    bool has_weights_ = false;
    WeightTable wt_;
    std::vector<int> layer_index_;  // model layer of each MoE layer
    nlohmann::json model_info_;

    std::vector<std::vector<int64_t>> counts_;       // [layer][expert]
    std::vector<std::vector<int64_t>> pair_counts_;  // [layer][a * n_expert + b], a < b
    std::vector<std::vector<double>> prob_sum_;      // [layer][expert]: sum of score distributions
    std::vector<double> token_entropy_sum_;          // [layer] in bits
    std::vector<int64_t> layer_tokens_;              // [layer]
    std::vector<int64_t> layer_selected_;  // [layer]: valid selections (for active params)
    // Per phase (0 prefill, 1 decode).
    int64_t tokens_[2] = {0, 0}, passes_[2] = {0, 0};
    double bytes_[2] = {0, 0};              // weight bytes read
    std::vector<int64_t> distinct_sum_[2];  // [layer]: distinct experts summed over passes
    int64_t last_distinct_ = 0;             // distinct experts of the last block
    // [token][layer][k]: the experts of each evaluated token in order (prefill, then decode), best
    // first, for the first kMaxTokenExperts tokens (JSON "token_experts").
    std::vector<std::vector<std::vector<int32_t>>> token_experts_;
    bool token_experts_truncated_ = false;
    nlohmann::json cache_;  // null: no cache
};

// Tokens whose experts RoutingStats lists one by one (bounds the file for long runs).
inline constexpr int64_t kMaxTokenExperts = 8192;

// Reads a file written by RoutingStats::write_json (checks the format tag).
Result<nlohmann::json> read_routing_stats(const std::string& path);

// Entropy in bits of a distribution given by non-negative weights (normalised here).
double entropy_bits(const double* w, int n);

}  // namespace moe
