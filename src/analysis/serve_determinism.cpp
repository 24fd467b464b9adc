// serve_determinism.h: two runs of the same prompts through run_serve_level.
#include "analysis/serve_determinism.h"

#include <algorithm>

namespace moe {

Result<DeterminismResult> run_determinism_check(ServeBenchOptions opt, int n) {
    if (n < 2) return make_error("the deterministic check needs at least 2 requests, got {}", n);
    opt.request_routing = true;
    opt.request_logprobs = true;
    MOE_TRY(auto alone, run_serve_level(opt, 1, n, 0, 0));
    MOE_TRY(auto batched, run_serve_level(opt, n, n, 0, 1));
    DeterminismResult d;
    d.requests = n;
    d.routing_available = true;
    d.logprobs_available = true;
    for (int i = 0; i < n; ++i) {
        const RequestRecord& a = alone.records[size_t(i)];
        const RequestRecord& b = batched.records[size_t(i)];
        if (!a.ok || !b.ok) {
            ++d.failures;
            if (d.first_error.empty()) d.first_error = a.ok ? b.error : a.error;
            continue;
        }
        if (a.text != b.text) ++d.text_differs;
        if (a.logprobs.empty() || b.logprobs.empty())
            d.logprobs_available = false;
        else if (a.logprobs != b.logprobs)
            ++d.logprobs_differ;
        if (a.routing.empty() || b.routing.empty()) {
            d.routing_available = false;
            continue;
        }
        const size_t tokens = std::min(a.routing.size(), b.routing.size());
        for (size_t t = 0; t < tokens; ++t) {
            const size_t layers = std::max(a.routing[t].size(), b.routing[t].size());
            for (size_t l = 0; l < layers; ++l) {
                const bool in_a = l < a.routing[t].size(), in_b = l < b.routing[t].size();
                ++d.routing_compared;
                if (!in_a || !in_b || a.routing[t][l] != b.routing[t][l]) ++d.routing_differs;
            }
        }
    }
    if (!d.routing_available) d.routing_compared = d.routing_differs = 0;
    if (!d.logprobs_available) d.logprobs_differ = 0;
    return d;
}

nlohmann::ordered_json determinism_json(const DeterminismResult& d) {
    nlohmann::ordered_json j = {{"requests", d.requests},
                                {"failures", d.failures},
                                {"text_differs", d.text_differs},
                                {"text_differs_share", d.text_share()},
                                {"logprobs_available", d.logprobs_available},
                                {"logprobs_differ", d.logprobs_differ},
                                {"routing_available", d.routing_available}};
    if (d.routing_available) {
        j["routing_pairs"] = d.routing_compared;
        j["routing_differs"] = d.routing_differs;
        j["routing_differs_share"] = d.routing_share();
    } else {
        j["routing_differs_share"] = nullptr;
    }
    if (!d.first_error.empty()) j["first_error"] = d.first_error;
    return j;
}

}  // namespace moe
