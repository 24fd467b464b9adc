// Model correctness against the Hugging Face float64 reference (../shared/fixtures/models).
#include <gtest/gtest.h>

#include <filesystem>

#include "fixtures.h"
#include "models/model.h"
#include "runtime/sampler.h"
#include "runtime/session.h"

namespace moe {
namespace {

using test::gguf_path;
using test::load_ref;

std::vector<int32_t> ids_of(const nlohmann::json& j) {
    return j.get<std::vector<int32_t>>();
}

std::vector<float> one_pass_logits(const Model& m, const std::vector<int32_t>& toks) {
    SessionOptions so;
    so.n_threads = 2;
    so.n_ctx = 64;
    Session s(m, so);
    auto r = s.eval_tokens(toks, /*all_logits=*/true);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.message());
    return r.ok() ? *r : std::vector<float>{};
}

struct FileCase {
    std::string name, type;
};
std::string case_name(const testing::TestParamInfo<FileCase>& i) {
    return i.param.name + "_" + i.param.type;
}

// --- f32: within max_rel 1e-4 of the float64 reference --------------------------------------
class F32Logits : public testing::TestWithParam<std::string> {};

TEST_P(F32Logits, MatchesReferenceWithin1e4) {
    const std::string name = GetParam();
    auto m = load_model(gguf_path(name, "f32"));
    ASSERT_TRUE(m.ok()) << m.message();
    const auto ref = load_ref(name);
    const auto want = test::read_f32(test::model_dir(name) + "/ref_logits.f32");
    const auto got = one_pass_logits(**m, ids_of(ref["tokens"]));
    ASSERT_EQ(got.size(), want.size());
    const double mr = test::max_rel(got, want);
    RecordProperty("max_rel", std::to_string(mr));
    EXPECT_LT(mr, 1e-4) << name << " rms_rel=" << test::rms_rel(got, want);
}

INSTANTIATE_TEST_SUITE_P(Families, F32Logits,
                         testing::Values("llama", "mixtral", "qwen2moe", "qwen3moe", "deepseek2",
                                         "deepseek3", "gptoss"));

// OLMoE: the upstream converter writes layer_norm_rms_epsilon = 1e-5 into the GGUF while the
// reference model uses 1e-6 (its config.json). Following the file costs ~4e-4; the upstream
// engine itself is at 1.2e-3 here. An HF folder of OLMoE reads as the converter's GGUF does
// (1e-5: olmoe_hparams in formats/hf_families.cpp; HfVsGguf checks the hyperparameters agree).
TEST(F32LogitsOlmoe, FollowsFileEpsilonAndBeatsUpstream) {
    auto m = load_model(gguf_path("olmoe", "f32"));
    ASSERT_TRUE(m.ok()) << m.message();
    EXPECT_FLOAT_EQ((*m)->config.rms_eps, 1e-5f);
    const auto want = test::read_f32(test::model_dir("olmoe") + "/ref_logits.f32");
    const auto got = one_pass_logits(**m, ids_of(load_ref("olmoe")["tokens"]));
    EXPECT_LT(test::max_rel(got, want), 1e-3);
    EXPECT_LT(test::rms_rel(got, want), test::upstream_rms_rel("olmoe", "f32"));
}

// --- quantized files: within 1.1x the upstream engine's rms_rel + 1e-3 -----------------------
class QuantLogits : public testing::TestWithParam<FileCase> {};

TEST_P(QuantLogits, WithinUpstreamError) {
    const auto& [name, type] = GetParam();
    const std::string path = gguf_path(name, type);
    auto m = load_model(path);
    ASSERT_TRUE(m.ok()) << m.message();
    const auto want = test::read_f32(test::model_dir(name) + "/ref_logits.f32");
    const auto got = one_pass_logits(**m, ids_of(load_ref(name)["tokens"]));
    ASSERT_EQ(got.size(), want.size());
    const double upstream = test::upstream_rms_rel(name, type);
    ASSERT_GT(upstream, 0) << "no upstream figure for " << name << " " << type;
    const double rms = test::rms_rel(got, want);
    EXPECT_LE(rms, 1.1 * upstream + 1e-3) << path << " upstream=" << upstream;
}

INSTANTIATE_TEST_SUITE_P(Foundation, QuantLogits,
                         testing::Values(FileCase{"llama", "f16"}, FileCase{"llama", "bf16"},
                                         FileCase{"llama", "q8_0"}, FileCase{"mixtral", "f16"},
                                         FileCase{"mixtral", "bf16"}, FileCase{"mixtral", "q8_0"}),
                         case_name);

// --- incremental decoding == one pass; greedy sequence --------------------------------------
class Decoding : public testing::TestWithParam<std::string> {};

TEST_P(Decoding, TokenByTokenEqualsOnePass) {
    const std::string name = GetParam();
    auto m = load_model(gguf_path(name, "f32"));
    ASSERT_TRUE(m.ok()) << m.message();
    const auto toks = ids_of(load_ref(name)["tokens"]);
    const auto full = one_pass_logits(**m, toks);
    SessionOptions so;
    so.n_threads = 2;
    so.n_ctx = 64;
    Session s(**m, so);
    std::vector<float> inc;
    for (int32_t t : toks) {
        const int32_t one[1] = {t};
        auto r = s.eval_tokens(one, false);
        ASSERT_TRUE(r.ok()) << r.message();
        inc.insert(inc.end(), r->begin(), r->end());
    }
    EXPECT_LT(test::max_rel(inc, full), 1e-5);
}

// Teacher-forced greedy check: at each generated step of the reference greedy sequence, our
// argmax must be the reference's next token wherever the reference's top-1 margin > 1e-3.
TEST_P(Decoding, GreedySequenceReproduced) {
    const std::string name = GetParam();
    auto m = load_model(gguf_path(name, "f32"));
    ASSERT_TRUE(m.ok()) << m.message();
    const auto ref = load_ref(name);
    const auto prompt = ids_of(ref["greedy_prompt"]);
    const auto seq = ids_of(ref["greedy_sequence"]);
    const auto margin = ref["greedy_top1_margin"].get<std::vector<double>>();
    SessionOptions so;
    so.n_threads = 2;
    so.n_ctx = 64;
    Session s(**m, so);
    auto r = s.eval_tokens(prompt, false);
    ASSERT_TRUE(r.ok()) << r.message();
    const int n_vocab = (*m)->config.n_vocab;
    int checked = 0;
    for (size_t i = prompt.size(); i < seq.size(); ++i) {
        const size_t step = i - prompt.size();
        if (margin[step] > 1e-3) {
            EXPECT_EQ(argmax(r->data(), n_vocab), seq[i]) << name << " step " << step;
            ++checked;
        }
        const int32_t one[1] = {seq[i]};
        r = s.eval_tokens(one, false);
        ASSERT_TRUE(r.ok()) << r.message();
    }
    EXPECT_GT(checked, 10);
}

// Free-running greedy generation with the KV cache gives the same tokens up to the first
// low-margin step.
TEST_P(Decoding, FreeRunningGreedyMatchesUntilFirstTie) {
    const std::string name = GetParam();
    auto m = load_model(gguf_path(name, "f32"));
    ASSERT_TRUE(m.ok()) << m.message();
    const auto ref = load_ref(name);
    const auto prompt = ids_of(ref["greedy_prompt"]);
    const auto seq = ids_of(ref["greedy_sequence"]);
    const auto margin = ref["greedy_top1_margin"].get<std::vector<double>>();
    SessionOptions so;
    so.n_threads = 1;
    Session s(**m, so);
    auto r = s.eval_tokens(prompt, false);
    ASSERT_TRUE(r.ok());
    for (size_t i = prompt.size(); i < seq.size(); ++i) {
        if (margin[i - prompt.size()] <= 1e-3) break;
        const int32_t next = argmax(r->data(), (*m)->config.n_vocab);
        ASSERT_EQ(next, seq[i]) << "step " << i - prompt.size();
        const int32_t one[1] = {next};
        r = s.eval_tokens(one, false);
        ASSERT_TRUE(r.ok());
    }
}

INSTANTIATE_TEST_SUITE_P(Families, Decoding,
                         testing::Values("llama", "mixtral", "qwen2moe", "qwen3moe", "olmoe",
                                         "deepseek2", "deepseek3", "gptoss"));

// Two sequences in one batch give the same logits as each evaluated alone (continuous batching).
TEST(Batching, TwoSequencesInOneBatchMatchSeparateRuns) {
    auto m = load_model(gguf_path("mixtral", "f32"));
    ASSERT_TRUE(m.ok()) << m.message();
    const auto toks = ids_of(load_ref("mixtral")["tokens"]);
    const std::vector<int32_t> a(toks.begin(), toks.begin() + 10), b(toks.begin() + 10, toks.end());
    const auto la = one_pass_logits(**m, a), lb = one_pass_logits(**m, b);
    SessionOptions so;
    so.n_seq = 2;
    so.n_ctx = 64;
    Session s(**m, so);
    Batch batch;
    // Interleave the two sequences' tokens.
    for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
        if (i < a.size()) batch.add(a[i], int32_t(i), 0, true);
        if (i < b.size()) batch.add(b[i], int32_t(i), 1, true);
    }
    auto r = s.eval(batch);
    ASSERT_TRUE(r.ok()) << r.message();
    const int V = (*m)->config.n_vocab;
    std::vector<float> ga, gb;
    for (int64_t t = 0, o = 0; t < batch.size(); ++t, ++o) {
        auto& dst = batch.seq[size_t(t)] == 0 ? ga : gb;
        dst.insert(dst.end(), r->begin() + o * V, r->begin() + (o + 1) * V);
    }
    EXPECT_LT(test::max_rel(ga, la), 1e-5);
    EXPECT_LT(test::max_rel(gb, lb), 1e-5);
}

TEST(BadInput, TokenIdOutOfRangeIsAnError) {
    auto m = load_model(gguf_path("llama", "f32"));
    ASSERT_TRUE(m.ok());
    Session s(**m, SessionOptions{});
    const int32_t bad[2] = {1, 100000};
    auto r = s.eval_tokens(bad, true);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("out of range"), std::string::npos) << r.message();
    const int32_t neg[1] = {-1};
    EXPECT_FALSE(s.eval_tokens(neg, true).ok());
}

TEST(BadInput, ContextOverflowIsAnError) {
    auto m = load_model(gguf_path("llama", "f32"));
    ASSERT_TRUE(m.ok());
    SessionOptions so;
    so.n_ctx = 4;
    Session s(**m, so);
    const std::vector<int32_t> toks = {1, 2, 3, 4, 5};
    auto r = s.eval_tokens(toks, true);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("context"), std::string::npos) << r.message();
}

}  // namespace
}  // namespace moe
