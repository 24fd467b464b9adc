// Sampler: OpenAI presence/frequency penalties, per-sampler seeded generators, log-probabilities,
// and the one validation of sampling values as `run` and `chat` apply it.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>

#include "runtime/sampler.h"
#include "subprocess.h"

namespace moe {
namespace {

SamplerParams greedy() {
    SamplerParams p;
    p.temp = 0;
    return p;
}

TEST(Sampler, PresencePenaltyCountsGeneratedTokensOnce) {
    const std::vector<float> logits = {2.0f, 1.5f, 0.0f};
    SamplerParams p = greedy();
    p.presence_penalty = 0.6f;
    Sampler s(p);
    for (int i = 0; i < 3; ++i) s.accept(0);  // prompt tokens are not penalised
    EXPECT_EQ(s.sample(logits.data(), 3), 0);
    s.accept_generated(0);  // 2.0 - 0.6 = 1.4 < 1.5
    EXPECT_EQ(s.sample(logits.data(), 3), 1);
    s.accept_generated(1);  // 1.5 - 0.6 = 0.9 < 1.4: once per token, not per occurrence
    EXPECT_EQ(s.sample(logits.data(), 3), 0);
}

TEST(Sampler, FrequencyPenaltyCountsOccurrences) {
    const std::vector<float> logits = {2.0f, 1.5f, 0.0f};
    SamplerParams p = greedy();
    p.frequency_penalty = 0.3f;
    Sampler s(p);
    s.accept_generated(0);  // 1.7 > 1.5
    EXPECT_EQ(s.sample(logits.data(), 3), 0);
    s.accept_generated(0);  // 1.4 < 1.5
    EXPECT_EQ(s.sample(logits.data(), 3), 1);
    SamplerParams neg = greedy();
    neg.frequency_penalty = -2;  // negative values favour repeats
    Sampler r(neg);
    r.accept_generated(2), r.accept_generated(2);  // 0 + 2 * 2 > 2
    EXPECT_EQ(r.sample(logits.data(), 3), 2);
}

TEST(Sampler, SeededGeneratorIsPerSampler) {
    std::vector<float> logits(64);
    for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(i % 7) * 0.1f;
    SamplerParams p;
    p.temp = 1.0f, p.top_k = 0, p.top_p = 1.0f, p.min_p = 0;
    p.seed = 42;
    Sampler a(p), b(p), other(p);
    std::vector<int32_t> sa, sb;
    for (int i = 0; i < 40; ++i) {
        sa.push_back(a.sample(logits.data(), 64));
        if (i % 2 == 0) other.sample(logits.data(), 64);  // another request drawing in between
        sb.push_back(b.sample(logits.data(), 64));
    }
    EXPECT_EQ(sa, sb);
    p.seed = 43;
    Sampler c(p);
    std::vector<int32_t> sc;
    for (int i = 0; i < 40; ++i) sc.push_back(c.sample(logits.data(), 64));
    EXPECT_NE(sa, sc);
}

TEST(Sampler, LogprobsAreLogSoftmaxOfRawLogits) {
    const std::vector<float> logits = {1.0f, 3.0f, -2.0f, 3.0f, 0.5f};
    double z = 0;
    for (float l : logits) z += std::exp(double(l));
    auto lp = [&](int i) { return std::log(std::exp(double(logits[size_t(i)])) / z); };
    const TokenLogprobs r = token_logprobs(logits.data(), 5, 4, 3);
    EXPECT_NEAR(r.chosen, lp(4), 1e-6);
    ASSERT_EQ(r.top.size(), 3u);
    EXPECT_EQ(r.top[0].first, 1);  // tie with 3: the lower id first
    EXPECT_EQ(r.top[1].first, 3);
    EXPECT_EQ(r.top[2].first, 0);
    for (const auto& [t, l] : r.top) EXPECT_NEAR(l, lp(t), 1e-6);
    EXPECT_TRUE(token_logprobs(logits.data(), 5, 1, 0).top.empty());
    // Large logits stay finite.
    const std::vector<float> big = {1000.0f, 999.0f};
    const TokenLogprobs rb = token_logprobs(big.data(), 2, 1, 1);
    EXPECT_NEAR(rb.chosen, -1.0 - std::log1p(std::exp(-1.0)), 1e-5);
}

TEST(Sampler, RunAndChatRejectBadValuesInOneLine) {
    const std::string model = std::string(MOE_SOURCE_DIR) + "/models/demo-moe.gguf";
    for (const std::string cmd : {"run -n 1 -p hi", "chat"})
        for (const std::string opt :
             {"--temp nan", "--top-p -1", "--min-p 2", "--repeat-penalty 0", "--presence-penalty 3",
              "--frequency-penalty inf", "--top-k -1"}) {
            const auto r =
                test::run_moeinfer(cmd + " -m " + model + " " + opt);  // stdin: /dev/null
            test::expect_one_error_line(r, cmd + " " + opt);
        }
}

}  // namespace
}  // namespace moe
