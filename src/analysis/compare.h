// `compare`: measures two models the same way (parameters, disk size, load time, peak memory,
// prompt and generation speed, perplexity on a bundled public-domain text, routing imbalance,
// answers to a few prompts and the failures seen in them) and writes a Markdown and a
// self-contained HTML report with a recommendation computed from the numbers.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"

namespace moe {

struct CompareOptions {
    std::vector<std::string> prompts;  // empty: default_compare_prompts()
    std::string text_path;             // perplexity text (data/eval-kjv.txt by default)
    int n_predict = 48;                // tokens generated per prompt (greedy)
    int n_threads = 0;                 // 0: all cores
    int ppl_ctx = 256;                 // perplexity window (capped by the model's context)
    int ppl_windows = 0;               // 0: every window of the text
    int bench_tokens = 256;            // tokens of the text evaluated in one batch (prompt tok/s)
    double repeat_threshold = 0.5;     // repeated 4-gram share that counts as a loop
    bool isolate = true;               // measure each model in a child process (own peak RSS)
};

std::vector<std::string> default_compare_prompts();

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
    std::vector<PromptRun> prompts;
};

nlohmann::json to_json(const ModelMeasures& m);
ModelMeasures measures_from_json(const nlohmann::json& j);

// Measures one model in this process (errors of the model go into ModelMeasures::error).
ModelMeasures measure_model(const std::string& path, const CompareOptions& o);
// The same in a forked child process, so that its peak RSS is its own.
ModelMeasures measure_model_isolated(const std::string& path, const CompareOptions& o);

// Failure checks on one generated answer (ids: its tokens).
double repeated_ngram_share(const std::vector<int32_t>& ids, int n = 4);
std::vector<std::string> detect_failures(const std::string& text, const std::vector<int32_t>& ids,
                                         double repeat_threshold, double* repeat_share = nullptr);

// The recommendation paragraph, computed from the measures. mem_available: bytes of host memory
// available (0: unknown).
std::string compare_recommendation(const ModelMeasures& a, const ModelMeasures& b,
                                   uint64_t mem_available);

std::string compare_markdown(const ModelMeasures& a, const ModelMeasures& b,
                             const CompareOptions& o, uint64_t mem_available);
std::string compare_html(const ModelMeasures& a, const ModelMeasures& b, const CompareOptions& o,
                         uint64_t mem_available);

// The bundled evaluation text: data/eval-kjv.txt next to the source tree, the CWD or the binary.
std::string default_eval_text_path();

}  // namespace moe
