#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

namespace moe {

Result<void> SamplerParams::validate() const {
    auto bad = [](const char* name, const char* range, double v) {
        return make_error("{} must be {}, got {}", name, range, v);
    };
    if (!std::isfinite(temp) || temp < 0 || temp > 100) return bad("temperature", "in [0, 100]", temp);
    if (top_k < 0) return bad("top_k", ">= 0", top_k);
    if (!std::isfinite(top_p) || top_p < 0 || top_p > 1) return bad("top_p", "in [0, 1]", top_p);
    if (!std::isfinite(min_p) || min_p < 0 || min_p > 1) return bad("min_p", "in [0, 1]", min_p);
    if (!std::isfinite(repeat_penalty) || repeat_penalty <= 0 || repeat_penalty > 100)
        return bad("repeat_penalty", "in (0, 100]", repeat_penalty);
    if (repeat_last_n < 0 || repeat_last_n > 1 << 20)
        return bad("repeat_last_n", "in [0, 1048576]", repeat_last_n);
    if (!std::isfinite(presence_penalty) || presence_penalty < -2 || presence_penalty > 2)
        return bad("presence_penalty", "in [-2, 2]", presence_penalty);
    if (!std::isfinite(frequency_penalty) || frequency_penalty < -2 || frequency_penalty > 2)
        return bad("frequency_penalty", "in [-2, 2]", frequency_penalty);
    return {};
}

int32_t argmax(const float* v, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; ++i)
        if (v[i] > v[best]) best = i;
    return best;
}

void Sampler::accept(int32_t tok) {
    recent_.push_back(tok);
    while (int(recent_.size()) > std::max(0, p_.repeat_last_n)) recent_.pop_front();
}

void Sampler::accept_generated(int32_t tok) {
    accept(tok);
    ++generated_[tok];
}

TokenLogprobs token_logprobs(const float* logits, int n_vocab, int32_t chosen, int top_n) {
    double mx = logits[0];
    for (int i = 1; i < n_vocab; ++i) mx = std::max(mx, double(logits[i]));
    double sum = 0;
    for (int i = 0; i < n_vocab; ++i) sum += std::exp(double(logits[i]) - mx);
    const double log_z = mx + std::log(sum);
    TokenLogprobs r;
    if (chosen >= 0 && chosen < n_vocab) r.chosen = float(double(logits[chosen]) - log_z);
    const int k = std::clamp(top_n, 0, n_vocab);
    std::vector<int32_t> idx(static_cast<size_t>(n_vocab));
    std::iota(idx.begin(), idx.end(), 0);
    // Ties go to the lower id, as argmax does.
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
        return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
    });
    for (int i = 0; i < k; ++i)
        r.top.emplace_back(idx[size_t(i)], float(double(logits[idx[size_t(i)]]) - log_z));
    return r;
}

int32_t Sampler::sample(const float* logits, int n_vocab) {
    std::vector<float> l(logits, logits + n_vocab);
    if (p_.presence_penalty != 0 || p_.frequency_penalty != 0)
        for (const auto& [t, n] : generated_)
            if (t >= 0 && t < n_vocab)
                l[size_t(t)] -= p_.presence_penalty + p_.frequency_penalty * float(n);
    if (p_.repeat_penalty != 1.0f) {
        std::unordered_set<int32_t> seen(recent_.begin(), recent_.end());
        for (int32_t t : seen) {
            if (t < 0 || t >= n_vocab) continue;
            float& x = l[size_t(t)];
            x = x > 0 ? x / p_.repeat_penalty : x * p_.repeat_penalty;
        }
    }
    if (p_.temp <= 0.0f) return argmax(l.data(), n_vocab);

    // Candidates sorted by logit, cut by top-k.
    std::vector<int32_t> idx(static_cast<size_t>(n_vocab));
    std::iota(idx.begin(), idx.end(), 0);
    const int k = p_.top_k > 0 ? std::min(p_.top_k, n_vocab) : n_vocab;
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                      [&](int32_t a, int32_t b) { return l[size_t(a)] > l[size_t(b)]; });
    idx.resize(size_t(k));

    // Softmax with temperature.
    std::vector<double> p(idx.size());
    const double mx = l[size_t(idx[0])];
    double sum = 0;
    for (size_t i = 0; i < idx.size(); ++i) sum += p[i] = std::exp((l[size_t(idx[i])] - mx) / p_.temp);
    for (double& x : p) x /= sum;

    // top-p: smallest prefix with mass >= top_p.
    size_t keep = p.size();
    if (p_.top_p < 1.0f) {
        double cum = 0;
        for (size_t i = 0; i < p.size(); ++i) {
            cum += p[i];
            if (cum >= p_.top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    // min-p: relative to the most likely token.
    if (p_.min_p > 0.0f) {
        size_t m = 1;
        while (m < keep && p[m] >= p_.min_p * p[0]) ++m;
        keep = m;
    }
    std::discrete_distribution<size_t> dist(p.begin(), p.begin() + long(keep));
    return idx[dist(rng_)];
}

}  // namespace moe
