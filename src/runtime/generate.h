// Text generation: prompt evaluation, then sampling token by token with the KV cache, streaming
// text as it becomes complete UTF-8.
#pragma once

#include <functional>
#include <string_view>
#include <vector>

#include "runtime/detokenizer.h"
#include "runtime/sampler.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

namespace moe {

struct GenerateStats {
    int n_prompt = 0, n_generated = 0;
    double prompt_seconds = 0, gen_seconds = 0;
    bool stopped_by_eog = false;
};

// Receives the router decisions of each evaluation: the prompt (prefill = true; n_tokens
// tokens, in chunks of the session's n_batch as Session::eval_tokens appends them), then every
// decode step (prefill = false, one token).
using RoutingObserver = std::function<void(const RouterTrace&, int64_t n_tokens, bool prefill)>;

// Streams text pieces to on_text; on_text returns false to stop early. on_routing, if set,
// observes the routing of every forward pass (MoE models).
Result<GenerateStats> generate(Session& s, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                               int n_predict, Sampler& sampler,
                               const std::function<bool(std::string_view)>& on_text, int seq = 0,
                               const RoutingObserver& on_routing = {});

}  // namespace moe
