// Token sampling: greedy, temperature, top-k, top-p, min-p, repetition penalty, seeded.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <unordered_map>
#include <utility>
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
    // OpenAI semantics, over the tokens generated so far (not the prompt): presence is subtracted
    // once from every token generated, frequency once per time it was generated.
    float presence_penalty = 0;
    float frequency_penalty = 0;
    uint64_t seed = 0;  // each Sampler has its own generator, so a request never shares one

    // The one check of sampling values (CLI, chat, server): finite and in range. The message
    // names the field as the API spells it (e.g. "top_p must be in [0, 1], got -1").
    Result<void> validate() const;
};

class Sampler {
public:
    explicit Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) {}
    // Picks a token from logits[n_vocab] (not modified).
    int32_t sample(const float* logits, int n_vocab);
    // Records a token of the context (prompt) for the repetition penalty.
    void accept(int32_t tok);
    // Records a generated token: the repetition window and the presence/frequency counts.
    void accept_generated(int32_t tok);

private:
    SamplerParams p_;
    std::mt19937_64 rng_;
    std::deque<int32_t> recent_;
    std::unordered_map<int32_t, int> generated_;  // token -> times generated
};

int32_t argmax(const float* v, int n);

// Log-probabilities from raw logits (log-softmax over the whole vocabulary, before any sampling
// transform): the chosen token's and the top_n most likely tokens', best first.
struct TokenLogprobs {
    float chosen = 0;
    std::vector<std::pair<int32_t, float>> top;  // [top_n] (token, logprob)
};
TokenLogprobs token_logprobs(const float* logits, int n_vocab, int32_t chosen, int top_n);

}  // namespace moe
