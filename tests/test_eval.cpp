// Perplexity (`eval`): the routine against a direct computation from Hugging Face float64
// logits, window arithmetic, KL / routing variance against a reference, and the CLI contract.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "analysis/perplexity.h"
#include "fixtures.h"
#include "models/model.h"
#include "subprocess.h"

namespace moe {
namespace {

std::vector<int32_t> ref_tokens(const std::string& name) {
    std::vector<int32_t> ids;
    const auto ref = test::load_ref(name);
    for (const auto& t : ref["tokens"]) ids.push_back(t.get<int32_t>());
    return ids;
}

// exp(mean NLL of tokens[1..]) from the reference logits, computed here in double.
double direct_ppl(const std::vector<float>& logits, const std::vector<int32_t>& toks, int n_vocab) {
    double sum = 0;
    for (size_t i = 0; i + 1 < toks.size(); ++i) {
        const float* row = logits.data() + i * size_t(n_vocab);
        double mx = -INFINITY, s = 0;
        for (int v = 0; v < n_vocab; ++v) mx = std::max(mx, double(row[v]));
        for (int v = 0; v < n_vocab; ++v) s += std::exp(double(row[v]) - mx);
        sum += mx + std::log(s) - double(row[toks[i + 1]]);
    }
    return std::exp(sum / double(toks.size() - 1));
}

class PerplexityMatchesReference : public testing::TestWithParam<std::string> {};

TEST_P(PerplexityMatchesReference, OnTheF32Gguf) {
    const std::string name = GetParam();
    const auto toks = ref_tokens(name);
    const auto ref_logits = test::read_f32(test::model_dir(name) + "/ref_logits.f32");
    ASSERT_EQ(ref_logits.size(), toks.size() * 512u);
    const double want = direct_ppl(ref_logits, toks, 512);

    auto m = load_model(test::gguf_path(name, "f32"));
    ASSERT_TRUE(m.ok()) << m.message();
    PerplexityOptions opt;
    opt.n_ctx = int(toks.size());  // one window covering the stream
    opt.score_from = 0;            // score every prediction: tokens[1..]
    opt.bos = -1;
    opt.batch1_windows = 1;
    opt.n_threads = 2;
    auto r = evaluate_perplexity(**m, nullptr, toks, opt);
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(r->n_windows, 1);
    EXPECT_EQ(r->n_scored, int64_t(toks.size()) - 1);
    std::printf(
        "  %-10s ppl %.6f  reference %.6f  rel %.2e  +/- %.4f; batch1: routing %.4f%%, "
        "max|dlogit| %.2e\n",
        name.c_str(), r->ppl, want, std::abs(r->ppl / want - 1), r->ppl_stderr,
        r->routing_batch1.share() * 100, r->batch1_max_abs_logit_diff);
    EXPECT_NEAR(r->ppl / want, 1.0, 1e-4) << name;
    EXPECT_GT(r->ppl_stderr, 0.0);
    // Batch 1 and one batch are the same computation up to rounding.
    EXPECT_EQ(r->batch1_windows, 1);
    EXPECT_LT(r->batch1_max_abs_logit_diff, 1e-3);
    EXPECT_DOUBLE_EQ(r->batch1_top1_agreement, 1.0);
    if ((*m)->config.n_moe_layers() > 0) {
        EXPECT_TRUE(r->routing_batch1.available);
        EXPECT_EQ(r->routing_batch1.compared,
                  int64_t((*m)->config.n_moe_layers()) * int64_t(toks.size()));
        EXPECT_LE(r->routing_batch1.share(), 0.05);
    } else {
        EXPECT_FALSE(r->routing_batch1.available);
    }
}

INSTANTIATE_TEST_SUITE_P(Families, PerplexityMatchesReference,
                         testing::Values("llama", "mixtral", "qwen2moe", "qwen3moe", "olmoe",
                                         "deepseek2", "deepseek3", "gptoss"));

TEST(Perplexity, WindowArithmetic) {
    PerplexityOptions o;
    o.n_ctx = 20;
    auto p = plan_windows(100, o);
    ASSERT_TRUE(p.ok()) << p.message();
    EXPECT_EQ(p->n_windows, 5);
    EXPECT_EQ(p->score_from, 10);
    EXPECT_EQ(p->n_scored, 5 * 9);  // predictions 10..18 of each window
    o.stride = 5;                   // windows at 0, 5, ..., 80
    p = plan_windows(100, o);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->n_windows, 17);
    EXPECT_EQ(p->n_scored, 9 + 16 * 5);
    o.max_windows = 3;
    EXPECT_EQ(plan_windows(100, o)->n_windows, 3);
    o = PerplexityOptions{};
    o.n_ctx = 20;
    EXPECT_FALSE(plan_windows(19, o).ok());  // shorter than one window
    o.n_ctx = 2;
    EXPECT_FALSE(plan_windows(100, o).ok());  // nothing left to score
    o.n_ctx = 20;
    o.stride = 20;
    EXPECT_FALSE(plan_windows(100, o).ok());
}

// Strided windows score every prediction after the first window's half exactly once; with a
// stride equal to the scored half, each window sees the same context as a fresh evaluation.
TEST(Perplexity, StrideCountsMatchEvaluation) {
    auto m = load_model(test::gguf_path("qwen3moe", "f32"));
    ASSERT_TRUE(m.ok()) << m.message();
    auto toks = ref_tokens("qwen3moe");
    PerplexityOptions o;
    o.n_ctx = 12;
    o.stride = 4;
    o.batch1_windows = 0;
    o.n_threads = 2;
    auto r = evaluate_perplexity(**m, nullptr, toks, o);
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(r->n_windows, 4);  // starts 0, 4, 8, 12
    EXPECT_EQ(r->n_scored, 5 + 3 * 4);
    EXPECT_EQ(r->window_ppl.size(), 4u);
    EXPECT_TRUE(std::isfinite(r->ppl));
    EXPECT_FALSE(r->routing_batch1.available);
}

TEST(Perplexity, AgainstReferenceModel) {
    auto m = load_model(test::gguf_path("mixtral", "q4_0"));
    auto f32 = load_model(test::gguf_path("mixtral", "f32"));
    ASSERT_TRUE(m.ok() && f32.ok());
    const auto toks = ref_tokens("mixtral");
    PerplexityOptions o;
    o.n_ctx = 24;
    o.score_from = 0;
    o.batch1_windows = 0;
    o.n_threads = 2;
    // The f32 against itself: no divergence at all.
    auto same = evaluate_perplexity(**f32, f32->get(), toks, o);
    ASSERT_TRUE(same.ok()) << same.message();
    EXPECT_EQ(same->kl_mean, 0.0);
    EXPECT_EQ(same->top1_agreement, 1.0);
    ASSERT_TRUE(same->routing_vs_ref.available);
    EXPECT_EQ(same->routing_vs_ref.differing, 0);
    EXPECT_EQ(same->routing_vs_ref.compared, 2 * 24);
    EXPECT_DOUBLE_EQ(same->ppl, same->ref_ppl);

    auto q = evaluate_perplexity(**m, f32->get(), toks, o);
    ASSERT_TRUE(q.ok()) << q.message();
    std::printf(
        "  q4_0 vs f32: ppl %.4f vs %.4f, KL mean %.5f p99 %.5f, top1 %.3f, routing "
        "differs %.2f%%\n",
        q->ppl, q->ref_ppl, q->kl_mean, q->kl_p99, q->top1_agreement,
        q->routing_vs_ref.share() * 100);
    EXPECT_GT(q->kl_mean, 0.0);
    EXPECT_LT(q->kl_mean, 0.5);
    EXPECT_GE(q->kl_p99, q->kl_mean * 0.5);
    EXPECT_LE(q->kl_p99, q->kl_max);
    EXPECT_GT(q->top1_agreement, 0.5);
    EXPECT_LT(q->routing_vs_ref.share(), 0.5);

    // Different vocabularies are refused.
    auto wide = load_model(test::gguf_path("mixtral-wide", "q8_0"));
    ASSERT_TRUE(wide.ok());
    EXPECT_FALSE(evaluate_perplexity(**f32, wide->get(), toks, o).ok());
}

std::string write_tmp(const std::string& name, const std::string& text) {
    const std::string p = test::temp_path("eval_" + name);
    std::ofstream(p, std::ios::binary) << text;
    return p;
}

TEST(EvalCli, JsonAndText) {
    std::string text;
    for (int i = 0; i < 6; ++i)
        text += "In the beginning was the word, and the word was with the model. ";
    const std::string f = write_tmp("text.txt", text);
    const std::string model = test::gguf_path("mixtral", "f32");
    auto r = test::run_moeinfer("eval -m " + model + " -f " + f + " -c 32 -t 2 --json --ref " +
                                test::gguf_path("mixtral", "f16"));
    ASSERT_EQ(r.code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_GT(j["ppl"].get<double>(), 1.0);
    EXPECT_GT(j["n_windows"].get<int>(), 1);
    EXPECT_GT(j["n_scored"].get<int>(), 0);
    EXPECT_GE(j["kl_mean"].get<double>(), 0.0);
    EXPECT_TRUE(j["routing_vs_ref"]["available"].get<bool>());
    EXPECT_TRUE(j["routing_batch1_vs_batch"]["available"].get<bool>());

    r = test::run_moeinfer("eval -m " + model + " -f " + f + " -c 32 --stride 8 -t 2");
    ASSERT_EQ(r.code, 0) << r.all();
    EXPECT_NE(r.all().find("PPL = "), std::string::npos) << r.all();
    EXPECT_NE(r.all().find("window"), std::string::npos) << r.all();  // progress on stderr
}

TEST(EvalCli, ErrorsAreOneLineAndNonZero) {
    const std::string model = test::gguf_path("mixtral", "f32");
    const std::string empty = write_tmp("empty.txt", "");
    const std::string short_text = write_tmp("short.txt", "Hello there.");
    const std::string ok_text = write_tmp("ok.txt", std::string(400, 'a') + " the end");
    for (const std::string& args :
         {"eval -m " + model + " -f /nonexistent.txt", "eval -m /nonexistent.gguf -f " + ok_text,
          "eval -m " + model + " -f " + empty, "eval -m " + model + " -f " + short_text + " -c 512",
          "eval -m " + model + " -f " + ok_text + " -c 2",
          "eval -m " + model + " -f " + ok_text + " -c 16 --stride 16",
          "eval -m " + model + " -f " + ok_text + " -c 16 --ref " +
              test::gguf_path("mixtral-wide", "q8_0")}) {
        const auto r = test::run_moeinfer(args);
        test::expect_one_error_line(r, args);
    }
}

}  // namespace
}  // namespace moe
