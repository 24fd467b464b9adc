// Which rank computes each routed expert of each MoE layer (expert parallelism).
//   contiguous: rank r owns experts [r*E/N, (r+1)*E/N) of every layer.
//   balanced:   per layer, experts by expected load (a --routing-stats file's counts), heaviest
//               first, each to the rank with the least load so far among those holding fewer
//               than ceil(E/N) experts (ties: lower rank), so memory stays even too.
// Both are pure functions of their inputs: every rank computes the same table.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"

namespace moe {

class Model;

enum class Placement { Contiguous, Balanced };
Result<Placement> parse_placement(const std::string& s);

struct ExpertPlacement {
    int n_ranks = 1;
    int n_expert = 0;
    std::vector<std::vector<int>> owner;  // [n_layer][n_expert]: rank; empty for dense layers
    int owned(int rank, int il) const;    // experts of layer il on `rank`
};

// counts: [n_moe_layers][n_expert] expected loads (balanced only; MoE layers in order).
Result<ExpertPlacement> place_experts(const std::vector<uint8_t>& is_moe, int n_expert, int n_ranks,
                                      Placement how,
                                      const std::vector<std::vector<double>>& counts = {});

// Per-layer expert counts from a `--routing-stats` JSON file (schema moeinfer-routing-stats):
// its "layers"[i]["counts"], checked against the model's MoE layers and experts.
Result<std::vector<std::vector<double>>> read_routing_counts(const std::string& path,
                                                             int n_moe_layers, int n_expert);

}  // namespace moe
