// One perplexity figure, as eval, the top-k sweep and compare report it: predictions scored, mean
// NLL, PPL = exp(mean NLL) and its standard error. Computed and written to JSON in one place.
#pragma once

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "analysis/moments.h"

namespace moe {

struct PplFigure {
    int64_t n_scored = 0;
    double nll = 0;  // mean negative log-likelihood (nats)
    double ppl = 0, ppl_stderr = 0;
};

// From the per-token NLL sums: the standard error of exp(mean) is exp(mean) times the mean's
// (first-order delta method).
inline PplFigure ppl_figure(const Moments& nll) {
    PplFigure f;
    f.n_scored = nll.n;
    f.nll = nll.mean();
    f.ppl = std::exp(f.nll);
    f.ppl_stderr = nll.stderr_of_mean() * f.ppl;
    return f;
}

// Adds "n_scored", "nll", "ppl", "ppl_stderr" to the object j.
template <class Json>
void add_ppl_json(Json& j, const PplFigure& f) {
    j["n_scored"] = f.n_scored;
    j["nll"] = f.nll;
    j["ppl"] = f.ppl;
    j["ppl_stderr"] = f.ppl_stderr;
}

}  // namespace moe
