// Routing variance under batching, measured from the outside: the same greedy requests run one
// at a time and then all at once; the share whose text differs, and (where the server streams
// per-token `moe_routing`) the share of (layer, token) whose expert set differs, and (where it
// returns logprobs) the share whose logprobs are not bitwise equal.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>

#include "analysis/serve_bench.h"

namespace moe {

struct DeterminismResult {
    int requests = 0, failures = 0;
    int text_differs = 0;
    // Where the server returns logprobs: requests whose chosen-token logprobs are not bitwise
    // equal (batching changed the arithmetic even where the text survived it).
    bool logprobs_available = false;
    int logprobs_differ = 0;
    bool routing_available = false;  // the server sent moe_routing in both runs
    int64_t routing_compared = 0;    // (layer, token) pairs present in both runs
    int64_t routing_differs = 0;
    std::string first_error;

    double text_share() const { return requests > 0 ? double(text_differs) / requests : 0; }
    double routing_share() const {
        return routing_compared > 0 ? double(routing_differs) / double(routing_compared) : 0;
    }
};

// `n` prompts (opt.temperature should be 0): each alone, then all `n` concurrently.
Result<DeterminismResult> run_determinism_check(ServeBenchOptions opt, int n);

nlohmann::ordered_json determinism_json(const DeterminismResult& d);

}  // namespace moe
