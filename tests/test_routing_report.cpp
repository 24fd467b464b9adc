// routing-report and compare from the command line: files written, self-contained HTML, errors.
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "analysis/routing_report.h"
#include "analysis/routing_stats.h"
#include "fixtures.h"
#include "subprocess.h"

namespace moe {
namespace {

std::string tmp_path(const std::string& n) {
    return test::temp_path("route_" + n);
}

std::string slurp(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

void expect_self_contained(const std::string& html) {
    EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
    EXPECT_NE(html.find("<style>"), std::string::npos);
    EXPECT_EQ(html.find("<script"), std::string::npos);
    EXPECT_EQ(html.find("<link"), std::string::npos);
    EXPECT_EQ(html.find("src="), std::string::npos);
    EXPECT_EQ(html.find("https:"), std::string::npos);
    EXPECT_EQ(html.find("url(http"), std::string::npos);
}

TEST(RoutingReport, RunWritesStatsAndReportRendersThem) {
    const std::string stats = tmp_path("stats.json"), html = tmp_path("report.html");
    auto r = test::run_moeinfer("run -m " + test::gguf_path("mixtral", "q8_0") +
                                " -p hello -n 6 --temp 0 -t 2 " + "--routing-stats " + stats);
    ASSERT_EQ(r.code, 0) << r.all();
    auto j = read_routing_stats(stats);
    ASSERT_TRUE(j) << j.message();
    EXPECT_EQ((*j)["layers"].size(), 2u);
    const int prefill = (*j)["tokens"]["prefill"].get<int>(),
              decode = (*j)["tokens"]["decode"].get<int>();
    EXPECT_GT(prefill, 0);
    EXPECT_EQ(decode, 5);  // the last sampled token is never evaluated
    EXPECT_EQ((*j)["tokens"]["decode_passes"].get<int>(), 5);
    for (const auto& L : (*j)["layers"]) {
        int64_t sum = 0;
        for (const auto& c : L["counts"]) sum += c.get<int64_t>();
        EXPECT_EQ(sum, 2 * (prefill + decode));
    }
    EXPECT_GT((*j)["weights"]["bytes_per_token_decode"].get<double>(), 0);

    r = test::run_moeinfer("routing-report " + stats + " -o " + html);
    ASSERT_EQ(r.code, 0) << r.all();
    const std::string page = slurp(html);
    expect_self_contained(page);
    for (const char* s :
         {"id=\"heatmap\"", "expert index", "MoE layer", "load share (colour scale)",
          "max / mean expert load", "coefficient of variation", "routing entropy", "co-activated"})
        EXPECT_NE(page.find(s), std::string::npos) << s;
}

// A run with an expert cache and prefetch: the report has the cache's per-layer columns, and its
// counts are the stats file's.
TEST(RoutingReport, CacheColumnsPerLayer) {
    const std::string stats = tmp_path("cache_stats.json"), html = tmp_path("cache_report.html");
    auto r = test::run_moeinfer("run -m " + test::gguf_path("mixtral", "q8_0") +
                                " -p hello -n 6 --temp 0 -t 2 --cache-slots 3 --prefetch on "
                                "--routing-stats " +
                                stats);
    ASSERT_EQ(r.code, 0) << r.all();
    auto j = read_routing_stats(stats);
    ASSERT_TRUE(j) << j.message();
    ASSERT_TRUE(j->contains("cache"));
    r = test::run_moeinfer("routing-report " + stats + " -o " + html);
    ASSERT_EQ(r.code, 0) << r.all();
    const std::string page = slurp(html);
    for (const char* s : {"Expert cache", "prefetch hits", "predicted routed", "prefetch on"})
        EXPECT_NE(page.find(s), std::string::npos) << s;
    for (const auto& L : (*j)["cache"]["layers"]) {
        const std::string cells =
            fmt::format("<tr><td>L{}</td><td>{}</td><td>{}</td>", L["layer"].get<int>(),
                        L["hits"].get<int64_t>(), L["misses"].get<int64_t>());
        EXPECT_NE(page.find(cells), std::string::npos) << cells;
    }
}

TEST(RoutingReport, BadInputIsOneErrorLine) {
    const std::string bad = tmp_path("bad.json");
    {
        std::ofstream f(bad);
        f << "{\"format\": \"nope\"}";
    }
    const std::string typed = tmp_path("typed.json");
    {
        std::ofstream f(typed);
        f << R"({"format": "moeinfer-routing-stats", "model": {"n_expert": 2},
                 "layers": [{"counts": [1, 1], "load_share": [0.5, 0.5], "layer": "zero",
                             "top_pairs": [{"a": "x", "b": 1, "count": 1}]}]})";
    }
    const std::string short_counts = tmp_path("short.json");
    {
        std::ofstream f(short_counts);
        f << R"({"format": "moeinfer-routing-stats", "model": {"n_expert": 4},
                 "layers": [{"counts": [1, 1], "load_share": [0.5, 0.5], "top_pairs": []}]})";
    }
    for (const std::string& args :
         {"routing-report /nonexistent.json -o " + tmp_path("x.html"),
          "routing-report " + bad + " -o " + tmp_path("x.html"),
          "routing-report " + typed + " -o " + tmp_path("x.html"),
          "routing-report " + short_counts + " -o " + tmp_path("x.html")}) {
        const auto r = test::run_moeinfer(args);
        test::expect_one_error_line(r, args);
    }
    // An unwritable statistics path fails with one error line too.
    const auto r = test::run_moeinfer("run -m " + test::gguf_path("mixtral", "q8_0") +
                                      " -p hi -n 2 --routing-stats /nonexistent-dir/s.json");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.all().find("error: cannot write"), std::string::npos) << r.all();
}

TEST(RoutingReport, HeatmapScalesToManyExperts) {
    // 64 experts, 3 layers: the heatmap keeps axis labels and a legend.
    RoutingStats rs(3, 64, 4, Gating::Softmax);
    RouterTrace t;
    t.n_expert = 64;
    t.n_expert_used = 4;
    for (int l = 0; l < 3; ++l)
        for (int tok = 0; tok < 10; ++tok)
            for (int j = 0; j < 4; ++j) t.selected.push_back((tok * 4 + j + l) % 64);
    ASSERT_TRUE(rs.add_pass(t, RoutingPhase::Prefill));
    const std::string svg = routing_heatmap_svg(rs.to_json());
    EXPECT_NE(svg.find("expert index"), std::string::npos);
    EXPECT_NE(svg.find("uniform 1.6%"), std::string::npos);
    EXPECT_EQ(std::count(svg.begin(), svg.end(), '\n') > 3 * 64, true);
}

TEST(CompareCli, FixturePairWritesBothReports) {
    const std::string base = tmp_path("cmp");
    const std::string prompts = tmp_path("prompts.txt");
    {
        std::ofstream f(prompts);
        f << "Hello world\n\nOnce upon a time\n";
    }
    const auto r = test::run_moeinfer("compare " + test::gguf_path("llama", "q8_0") + " " +
                                      test::gguf_path("mixtral", "q8_0") + " --prompts " + prompts +
                                      " -n 8 -t 2 --bench-tokens 32 --ppl-ctx 64 -o " + base);
    ASSERT_EQ(r.code, 0) << r.all();
    const std::string md = slurp(base + ".md"), html = slurp(base + ".html");
    for (const char* s :
         {"| total parameters |", "| active parameters / token |", "| disk size |", "| load time |",
          "| peak RSS |", "| prompt tok/s |", "| generation tok/s", "| perplexity (eval text) |",
          "| routing imbalance", "### Prompt 1: `Hello world`", "### Prompt 2: `Once upon a time`",
          "## Recommendation"})
        EXPECT_NE(md.find(s), std::string::npos) << s;
    EXPECT_EQ(md.find("### Prompt 3"), std::string::npos);  // the blank line is no prompt
    EXPECT_NE(md.find("dense (no routing)"), std::string::npos);
    expect_self_contained(html);
    EXPECT_NE(html.find("id=\"heatmap\""), std::string::npos);  // mixtral's routing
    // The fixtures' active parameters: llama is dense (active = total), mixtral is not.
    EXPECT_NE(md.find("generates"), std::string::npos);
}

TEST(CompareCli, ErrorsAreOneLine) {
    for (const std::string& args :
         {std::string("compare /nonexistent-a.gguf /nonexistent-b.gguf -o ") + tmp_path("e"),
          "compare " + test::gguf_path("llama", "q8_0") + " -o " + tmp_path("e"),
          "compare " + test::gguf_path("llama", "q8_0") + " " + test::gguf_path("llama", "q8_0") +
              " --prompts /nonexistent.txt",
          "compare " + test::gguf_path("llama", "q8_0") + " " + test::gguf_path("llama", "q8_0") +
              " -o /nonexistent-dir/r"}) {
        const auto r = test::run_moeinfer(args);
        test::expect_one_error_line(r, args);
    }
}

}  // namespace
}  // namespace moe
