// compare: failure detection, the recommendation computed from the numbers, report contents.
#include <gtest/gtest.h>

#include <set>

#include "analysis/compare_failures.h"
#include "analysis/compare_recommendation.h"
#include "analysis/compare_report.h"
#include "core/utf8.h"

namespace moe {
namespace {

TEST(Compare, RepeatedNgramShare) {
    EXPECT_DOUBLE_EQ(repeated_ngram_share({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}), 0.0);
    // "1 2 3 4" looped: every 4-gram after the first cycle repeats.
    std::vector<int32_t> loop;
    for (int i = 0; i < 10; ++i) loop.insert(loop.end(), {1, 2, 3, 4});
    const double r = repeated_ngram_share(loop);
    EXPECT_NEAR(r, (37.0 - 4.0) / 37.0, 1e-12);              // 37 4-grams, 4 distinct
    EXPECT_DOUBLE_EQ(repeated_ngram_share({1, 1, 1}), 0.0);  // too short to judge
}

TEST(Compare, DetectFailures) {
    std::vector<int32_t> loop;
    for (int i = 0; i < 8; ++i) loop.insert(loop.end(), {5, 6, 7});
    double rep = 0;
    auto f = detect_failures("the the the", loop, 0.5, &rep);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_NE(f[0].find("repetition loop"), std::string::npos);
    EXPECT_GT(rep, 0.5);
    f = detect_failures("  \n", {}, 0.5);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0], "empty output");
    f = detect_failures("ok \xe2\x82", {1, 2}, 0.5);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0], "invalid UTF-8");
    EXPECT_TRUE(detect_failures("fine text", {1, 2, 3, 4, 5, 6, 7, 8, 9}, 0.5).empty());
}

ModelMeasures fake(const std::string& path, double gen_tps, double ppl, int64_t active,
                   uint64_t rss) {
    ModelMeasures m;
    m.path = path;
    m.family = "llama";
    m.arch = "llama";
    m.n_vocab = 2048;
    m.total_params = active * 2;
    m.active_params = active;
    m.gen_tps = gen_tps;
    m.prompt_tps = gen_tps * 10;
    m.ppl = ppl;
    m.ppl_stderr = 1.0;
    m.ppl_tokens = 3000;
    m.ppl_scored = 1500;
    m.ppl_ctx = 256;
    m.bits_per_byte = std::log2(ppl) / 4;
    m.rss_peak = rss;
    m.rss_isolated = true;
    PromptRun p;
    p.prompt = "In the beginning";
    p.output = " was the word";
    m.prompts.push_back(p);
    return m;
}

TEST(Compare, RecommendationFollowsTheNumbers) {
    const auto moe = fake("/m/demo-moe.gguf", 100, 50, 3'000'000, 40u << 20);
    const auto dense = fake("/m/demo-dense.gguf", 200, 80, 3'000'000, 20u << 20);
    std::string r = compare_recommendation(moe, dense, 1ull << 30);
    EXPECT_NE(r.find("demo-dense generates 2.00x faster"), std::string::npos) << r;
    EXPECT_NE(r.find("demo-moe has the lower perplexity"), std::string::npos) << r;
    EXPECT_NE(r.find("trade-off"), std::string::npos) << r;
    EXPECT_NE(r.find("both fit"), std::string::npos) << r;
    // The faster model also wins on perplexity: no trade-off.
    const auto better = fake("/m/x.gguf", 300, 40, 3'000'000, 20u << 20);
    r = compare_recommendation(moe, better, 30u << 20);
    EXPECT_NE(r.find("x is both faster and better"), std::string::npos) << r;
    EXPECT_NE(r.find("only x fits"), std::string::npos) << r;
    // Within two standard errors: the faster one.
    const auto close = fake("/m/y.gguf", 300, 50.5, 3'000'000, 20u << 20);
    r = compare_recommendation(moe, close, 0);
    EXPECT_NE(r.find("not significant"), std::string::npos) << r;
    // A failed side.
    auto broken = moe;
    broken.error = "no such file";
    r = compare_recommendation(broken, dense, 0);
    EXPECT_NE(r.find("could not be measured"), std::string::npos) << r;
}

size_t count_of(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
    return n;
}

TEST(Compare, ReportsHoldEveryMeasure) {
    const auto a = fake("/m/demo-moe.gguf", 100, 50, 3'000'000, 40u << 20);
    auto b = fake("/m/demo-dense.gguf", 200, 80, 3'000'000, 20u << 20);
    b.prompts[0].output = "\xe2\x82";
    b.prompts[0].failures = {"invalid UTF-8"};
    CompareOptions o;
    o.text_path = "data/eval-kjv.txt";
    const std::string md = compare_markdown(a, b, o, 1ull << 30);
    for (const char* s :
         {"total parameters", "active parameters / token", "disk size", "load time", "peak RSS",
          "prompt tok/s", "generation tok/s", "perplexity", "routing imbalance",
          "## Recommendation", "### Prompt 1", "invalid UTF-8"})
        EXPECT_NE(md.find(s), std::string::npos) << s;
    const std::string html = compare_html(a, b, o, 1ull << 30);
    EXPECT_NE(html.find("<svg"), std::string::npos);
    EXPECT_EQ(html.find("<script"), std::string::npos);
    // Every chart is an inline SVG that names its namespace (so it renders on its own), and that
    // namespace is the only http:// address in the page: nothing is fetched at view time.
    const std::string svg_open = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"";
    EXPECT_EQ(count_of(html, "<svg"), count_of(html, svg_open));
    EXPECT_EQ(count_of(html, "http://"), count_of(html, svg_open));
    EXPECT_EQ(html.find("https://"), std::string::npos);  // nothing fetched at view time
    // JSON round trip of the measures (the child process hands them over this way).
    const auto back = measures_from_json(to_json(b));
    ASSERT_TRUE(back.ok()) << back.message();
    EXPECT_EQ(back->path, b.path);
    EXPECT_EQ(back->prompts.size(), 1u);
    EXPECT_EQ(back->prompts[0].failures, b.prompts[0].failures);
    EXPECT_DOUBLE_EQ(back->ppl, b.ppl);
    EXPECT_EQ(to_json(*back), to_json(b));  // every field, both directions
    // The schema: every field of ModelMeasures travels (a field left out of the list would
    // silently read back as its default in the parent).
    const nlohmann::json jb = to_json(b);
    std::set<std::string> keys;
    for (const auto& [k, v] : jb.items()) keys.insert(k);
    const std::set<std::string> want = {
        "path",         "family",           "name",          "arch",         "error",
        "total_params", "active_params",    "params_source", "disk_bytes",   "n_vocab",
        "n_moe_layers", "n_expert",         "n_expert_used", "load_seconds", "rss_start",
        "rss_peak",     "rss_isolated",     "bench_tokens",  "prompt_tps",   "gen_tps",
        "decode_bytes", "ppl_error",        "ppl",           "ppl_stderr",   "bits_per_byte",
        "ppl_tokens",   "ppl_scored",       "ppl_ctx",       "routing",      "top_k_sweep",
        "domains",      "top_k_sweep_note", "domains_note",  "prompts"};
    EXPECT_EQ(keys, want);
    EXPECT_EQ(jb["prompts"][0].size(), 10u);  // every PromptRun field
}

// A child's JSON with a field of the wrong type is an error naming it, not an exception.
TEST(Compare, MeasuresJsonOfTheWrongTypeIsAnError) {
    auto j = to_json(fake("/m/x.gguf", 100, 50, 3'000'000, 20u << 20));
    j["ppl"] = "not a number";
    const auto back = measures_from_json(j);
    ASSERT_FALSE(back.ok());
    EXPECT_NE(back.message().find("measures JSON"), std::string::npos) << back.message();
}

}  // namespace
}  // namespace moe
