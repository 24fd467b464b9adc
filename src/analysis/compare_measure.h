// `compare`'s measurements of one model: parameters, disk size, load time, peak memory, prompt
// and generation speed, perplexity on a bundled public-domain text, routing imbalance, and
// answers to a few prompts with the failures seen in them.
#pragma once

#include <string>
#include <vector>

#include "analysis/compare_result.h"
#include "analysis/domain_measure.h"
#include "core/result.h"
#include "runtime/sampler.h"

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
    std::string top_k_sweep;           // non-empty: top-k sweep of the MoE model over these k
    int sweep_decode_tokens = 64;
    std::vector<DomainText> domains;  // non-empty: routing per domain text (MoE model)
    DomainOptions domain_opt;
    KvTypes kv_types;  // --cache-type-k / --cache-type-v of the measurements
};

std::vector<std::string> default_compare_prompts();

// The sampler of every answer: greedy, so that both models are judged on the same rule.
SamplerParams compare_sampler_params();

// The settings both measurements share, checked once before any model is opened (a bad value
// would otherwise fail each model separately, after the reports were started): the thread count
// against what the machine allows, and the sampler through SamplerParams::validate().
Result<void> check_compare_options(const CompareOptions& o);

// Measures one model in this process (errors of the model go into ModelMeasures::error).
ModelMeasures measure_model(const std::string& path, const CompareOptions& o);
// The same in a forked child process, so that its peak RSS is its own (compare_isolated.cpp).
ModelMeasures measure_model_isolated(const std::string& path, const CompareOptions& o);

// The bundled evaluation text: data/eval-kjv.txt next to the source tree, the CWD or the binary.
std::string default_eval_text_path();
// The bundled domain texts (data/domain-*.txt, found like the evaluation text).
std::vector<DomainText> default_domain_texts();

}  // namespace moe
