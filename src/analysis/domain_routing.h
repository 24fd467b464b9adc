// Expert specialisation by domain (`moeinfer routing-stats --domain NAME=FILE ...`): the routing
// of every token of several texts, kept per token so that the domains' expert-load
// distributions can be compared and the comparison tested against chance.
//
// Per MoE layer each domain's load is the distribution of its routed slots over the experts.
// Two domains differ by the Jensen-Shannon divergence of their loads in bits (0: the same
// experts in the same proportions, 1: disjoint experts); a pair's statistic is its mean over
// the layers. The permutation test shuffles the domain labels over the tokens (domain sizes
// kept, fixed seed) and recomputes every pair's statistic: p = (1 + #{permuted >= observed}) /
// (1 + permutations). Tokens of one text are not independent (neighbours share context), so
// the p-values are optimistic; they say whether a divergence could come from a random split of
// the same tokens, not how large the effect is.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"
#include "models/batch.h"

namespace moe {

// JS divergence in bits between two non-negative weight vectors (each normalised here); 0 when
// either is all zero.
double js_divergence_bits(std::span<const double> p, std::span<const double> q);

class DomainRouting {
  public:
    DomainRouting(int n_moe_layers, int n_expert, int k, std::vector<std::string> names);
    // Token rows [t0, t1) of a trace of one forward pass over T tokens, for domain d.
    Result<void> add(int d, const RouterTrace& tr, int64_t T, int64_t t0, int64_t t1);
    int n_domains() const { return int(names_.size()); }
    int64_t n_tokens() const { return int64_t(label_.size()); }
    // counts[d][layer][expert] under a labelling of the tokens (label_ when empty).
    std::vector<std::vector<std::vector<double>>> counts(std::span<const int> labels = {}) const;
    const std::vector<int>& labels() const { return label_; }
    // The "domains" section of a routing-stats file.
    nlohmann::json analyse(int n_permutations, uint64_t seed, int top_experts = 5) const;

  private:
    int n_layers_, n_expert_, k_;
    std::vector<std::string> names_;
    std::vector<int> label_;         // [token]: its domain
    std::vector<int32_t> selected_;  // [token][layer][k]
};

// Renders the domains section of a routing-stats JSON (empty when it has none).
std::string domains_report_section(const nlohmann::json& stats);

}  // namespace moe
