// The result schema of `compare`: what is measured of one model, its JSON form (how a measuring
// child process hands it to the parent), and the queries the report and the recommendation share.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/result.h"

namespace moe {

struct PromptRun {
    std::string prompt, output, error;
    int n_prompt = 0, n_generated = 0;
    double prompt_seconds = 0, gen_seconds = 0;
    bool stopped_by_eog = false;
    double repeat_share = 0;            // repeated 4-gram share of the generated tokens
    std::vector<std::string> failures;  // "repetition loop", "empty output", "invalid UTF-8", ...
};

struct ModelMeasures {
    std::string path, family, name, arch;
    std::string error;  // non-empty: the model could not be measured
    int64_t total_params = 0, active_params = 0;
    std::string params_source;  // which counter produced the figures
    uint64_t disk_bytes = 0;
    int n_vocab = 0, n_moe_layers = 0, n_expert = 0, n_expert_used = 0;
    double load_seconds = 0;
    uint64_t rss_start = 0, rss_peak = 0;  // bytes (VmRSS at start, VmHWM at end)
    bool rss_isolated = false;             // measured in its own process
    int bench_tokens = 0;
    double prompt_tps = 0, gen_tps = 0;  // medians (see compare_markdown's Method)
    double decode_bytes = 0;             // weight bytes read per generated token
    // Perplexity on the text.
    std::string ppl_error;
    double ppl = 0, ppl_stderr = 0, bits_per_byte = 0;
    int64_t ppl_tokens = 0, ppl_scored = 0;
    int ppl_ctx = 0;
    nlohmann::json routing;  // RoutingStats::to_json() (null for a dense model)
    // Optional sections (null when not asked for); a note says why one is missing.
    nlohmann::json top_k_sweep;  // sweep_json() of analysis/topk_sweep.h
    nlohmann::json domains;      // routing-stats JSON with its "domains" section
    std::string top_k_sweep_note, domains_note;
    std::vector<PromptRun> prompts;
};

nlohmann::json to_json(const ModelMeasures& m);
// Errors name the field whose JSON type is wrong.
Result<ModelMeasures> measures_from_json(const nlohmann::json& j);

// Short display names of the two models (file stems, "A: "/"B: " prefixed when equal).
struct ModelNames {
    std::string a, b;
};
ModelNames short_names(const ModelMeasures& a, const ModelMeasures& b);
// Answers with at least one failure.
int failure_count(const ModelMeasures& m);
bool has_ppl(const ModelMeasures& m);
// Perplexities per token are comparable only over the same tokens.
bool same_tokens(const ModelMeasures& a, const ModelMeasures& b);

}  // namespace moe
