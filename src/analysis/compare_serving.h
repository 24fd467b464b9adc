// The serving section of `compare --serve`: each model behind `moeinfer serve` under a
// bench-serve concurrency sweep, throughput and latency against concurrency, and the weight bytes
// a decode step reads per generated token against the batch size, measured and predicted:
// a step over B sequences touches E_touched(B) = E * (1 - (1 - k/E)^B) experts per layer under
// uniform routing, or sum_e 1 - (1 - p_e)^B with the model's measured routing shares p_e.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analysis/compare_result.h"
#include "analysis/serve_bench.h"

namespace moe {

struct ServingOptions {
    std::vector<int> concurrency = {1, 2, 4, 8};
    int requests_per_client = 2;
    int prompt_words = 24;
    int max_tokens = 24;
    int threads = 0;  // the server's -t (0: its default)
};

struct ServingRun {
    std::string error;  // non-empty: not measured
    ServeBenchResult bench;
};

// Starts `moeinfer serve` on the model (slots: the largest concurrency) and runs the sweep.
ServingRun measure_serving(const std::string& model_path, const ServingOptions& o);

// Expected distinct experts per layer for B tokens routed independently.
double uniform_experts_touched(int n_expert, int k, double B);
// The same with each expert's measured share of routing decisions (RoutingStats::to_json's
// per-layer counts), averaged over layers; NaN without routing counts.
double routed_experts_touched(const nlohmann::json& routing, double B);

// The Markdown section and the HTML section (with inline SVG plots), and the paragraph both
// carry, computed from the figures.
std::string serving_markdown(const ModelMeasures& a, const ServingRun& sa, const ModelMeasures& b,
                             const ServingRun& sb);
std::string serving_html(const ModelMeasures& a, const ServingRun& sa, const ModelMeasures& b,
                         const ServingRun& sb);
std::string serving_paragraph(const ModelMeasures& a, const ServingRun& sa, const ModelMeasures& b,
                              const ServingRun& sb);

}  // namespace moe
