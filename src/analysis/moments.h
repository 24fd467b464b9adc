// Running sums of a per-token quantity: mean and standard error of the mean. Shared by
// perplexity and the top-k sweep so that both add the same numbers in the same order.
#pragma once

#include <cmath>
#include <cstdint>

namespace moe {

struct Moments {
    double sum = 0, sum2 = 0;
    int64_t n = 0;
    void add(double x) { sum += x, sum2 += x * x, ++n; }
    double mean() const { return n ? sum / double(n) : 0.0; }
    double stderr_of_mean() const {
        if (n < 2) return 0.0;
        const double var = sum2 / double(n) - mean() * mean();
        return var > 0 ? std::sqrt(var / double(n - 1)) : 0.0;
    }
};

}  // namespace moe
