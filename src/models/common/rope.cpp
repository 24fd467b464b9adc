#include "models/common/rope.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"

namespace moe {

Rope::Rope(const RopeConfig& c) : c_(c) {
    const int half = c.n_dims / 2;
    inv_freq_.resize(size_t(half));
    for (int i = 0; i < half; ++i)
        inv_freq_[size_t(i)] = 1.0 / std::pow(c.freq_base, double(2 * i) / double(c.n_dims));
    if (c.yarn_factor > 1.0 && c.yarn_orig_ctx > 0) {
        // YaRN: interpolate low frequencies, extrapolate high ones, with a linear ramp between
        // the dims that complete beta_fast and beta_slow rotations over the original context.
        const double dim = c.n_dims, base = c.freq_base, ctx = c.yarn_orig_ctx;
        auto corr_dim = [&](double n_rot) {
            return dim * std::log(ctx / (n_rot * 2.0 * M_PI)) / (2.0 * std::log(base));
        };
        double low = corr_dim(c.yarn_beta_fast), high = corr_dim(c.yarn_beta_slow);
        if (c.yarn_truncate) {
            low = std::floor(low);
            high = std::ceil(high);
        }
        low = std::max(low, 0.0);
        high = std::min(high, dim - 1);
        if (low == high) high += 0.001;
        for (int i = 0; i < half; ++i) {
            const double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
            const double extrapolation = 1.0 - ramp;  // share of the unscaled frequency
            const double f = inv_freq_[size_t(i)];
            inv_freq_[size_t(i)] = f / c.yarn_factor * (1.0 - extrapolation) + f * extrapolation;
        }
    }
    if (!c.freq_divisors.empty()) {
        MOE_CHECK(int(c.freq_divisors.size()) == half, "rope: {} divisors for {} frequencies",
                  c.freq_divisors.size(), half);
        for (int i = 0; i < half; ++i) inv_freq_[size_t(i)] /= c.freq_divisors[size_t(i)];
    }
}

std::vector<double> llama3_freq_divisors(int n_dims, double freq_base, const Llama3Scaling& s) {
    const double low_wavelen = s.orig_ctx / s.low_freq_factor;
    const double high_wavelen = s.orig_ctx / s.high_freq_factor;
    std::vector<double> div(size_t(n_dims / 2));
    for (int i = 0; i < n_dims / 2; ++i) {
        const double inv_freq = 1.0 / std::pow(freq_base, double(2 * i) / double(n_dims));
        const double wavelen = 2.0 * M_PI / inv_freq;
        if (wavelen < high_wavelen) {
            div[size_t(i)] = 1.0;
        } else if (wavelen > low_wavelen) {
            div[size_t(i)] = s.factor;
        } else {
            const double smooth = (s.orig_ctx / wavelen - s.low_freq_factor) /
                                  (s.high_freq_factor - s.low_freq_factor);
            div[size_t(i)] = 1.0 / ((1.0 - smooth) / s.factor + smooth);
        }
    }
    return div;
}

}  // namespace moe
