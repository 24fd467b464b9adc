// Token sampling: greedy, temperature, top-k, top-p, min-p, repetition penalty, seeded.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <vector>

#include "core/result.h"

namespace moe {

struct SamplerParams {
    float temp = 0.8f;           // <= 0: greedy (argmax)
    int top_k = 40;              // <= 0: off
    float top_p = 0.95f;         // >= 1: off
    float min_p = 0.05f;         // <= 0: off; keeps tokens with p >= min_p * p_max
    float repeat_penalty = 1.0f; // 1: off; divides positive / multiplies negative logits
    int repeat_last_n = 64;      // tokens considered for the penalty
    float presence_penalty = 0;  // OpenAI: subtracted once from every token seen in the window
    float frequency_penalty = 0; // OpenAI: subtracted per occurrence in the window
    uint64_t seed = 0;

    // The one check of sampling values (CLI, chat, server): finite and in range. The message
    // names the field as the API spells it (e.g. "top_p must be in [0, 1], got -1").
    Result<void> validate() const;
};

class Sampler {
public:
    explicit Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) {}
    // Picks a token from logits[n_vocab] (not modified).
    int32_t sample(const float* logits, int n_vocab);
    // Records a token of the context (prompt or generated) for the repetition penalty.
    void accept(int32_t tok);

private:
    SamplerParams p_;
    std::mt19937_64 rng_;
    std::deque<int32_t> recent_;
};

int32_t argmax(const float* v, int n);

}  // namespace moe
