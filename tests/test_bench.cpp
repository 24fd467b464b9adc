// bench: footprint accounting, the bandwidth probe, and the llama-bench-style runs and output.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "fixtures.h"
#include "models/model.h"
#include "runtime/bench.h"

namespace moe {
namespace {

TEST(Bench, FootprintCountsTopKOfRoutedExperts) {
    auto m = load_model(test::gguf_path("mixtral", "f32"));
    ASSERT_TRUE(m.ok()) << m.message();
    const ModelFootprint f = model_footprint(**m);
    // Fixture: vocab 512, hidden 128, 2 layers, 8 experts top-2 of FFN 64, kv 64 wide.
    const double emb = 512.0 * 128, attn = 2.0 * 128 * 128 + 2.0 * 64 * 128, exps = 3.0 * 8 * 64 * 128;
    const double norms = 2 * 2 * 128 + 128, router = 8 * 128;
    const double total = 2 * emb + 2 * (attn + exps + router) + norms;
    EXPECT_EQ(f.n_params, uint64_t(total));
    EXPECT_NEAR(f.n_active_params, total - 2 * exps * 6 / 8, 1e-6);
    EXPECT_NEAR(f.active_bytes_per_token, 4 * (total - 2 * exps * 6 / 8 - emb + 128), 1e-6);
    EXPECT_EQ(f.tensor_bytes, uint64_t(4 * total));
}

TEST(Bench, BandwidthProbeIsPositive) {
    ThreadPool pool(2);
    const double bw = measure_read_bandwidth(pool, 16 << 20, 2);
    EXPECT_GT(bw, 1e8);  // > 0.1 GB/s on anything
}

TEST(Bench, RunsPromptAndGenerationTests) {
    auto m = load_model(test::gguf_path("olmoe", "q8_0"));
    ASSERT_TRUE(m.ok()) << m.message();
    BenchParams p;
    p.n_prompt = {8, 4};
    p.n_gen = {3};
    p.threads = {1, 2};
    p.reps = 2;
    p.bandwidth_bytes = 8 << 20;
    auto r = run_bench(**m, p);
    ASSERT_TRUE(r.ok()) << r.message();
    ASSERT_EQ(r->size(), 6u);
    EXPECT_EQ((*r)[0].test, "pp8");
    EXPECT_EQ((*r)[1].test, "pp4");
    EXPECT_EQ((*r)[2].test, "tg3");
    EXPECT_EQ((*r)[0].threads, 1);
    EXPECT_EQ((*r)[3].threads, 2);
    for (const auto& x : *r) {
        EXPECT_EQ(x.samples_ts.size(), 2u);
        EXPECT_GT(x.mean_ts, 0);
        EXPECT_GT(x.read_bandwidth, 0);
    }
    EXPECT_GT((*r)[2].bound_ts, 0);
    EXPECT_EQ((*r)[0].bound_ts, 0);
    const ModelFootprint f = model_footprint(**m);
    const std::string md = bench_markdown(f, *r);
    EXPECT_NE(md.find("| model | size | params | active params | threads | test | t/s |"), std::string::npos);
    EXPECT_NE(md.find("| tg3 |"), std::string::npos);
    const auto js = nlohmann::json::parse(bench_json(f, *r));
    ASSERT_TRUE(js.is_array());
    ASSERT_EQ(js.size(), 6u);
    EXPECT_EQ(js[2]["test"], "tg3");
    EXPECT_EQ(js[2]["threads"], 1);
    EXPECT_GT(js[2]["tokens_per_second"].get<double>(), 0);
    EXPECT_TRUE(js[0]["percent_of_bound"].is_null());
}

struct Run {
    int code;
    std::string out;
};

Run run(const std::string& args) {
    const std::string cmd = std::string(MOE_BINARY) + " " + args + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    std::array<char, 4096> buf{};
    while (size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
    const int st = pclose(p);
    return {WIFEXITED(st) ? WEXITSTATUS(st) : 128, out};
}

TEST(BenchCli, JsonHasTheFieldsExternalChecksRead) {
    const auto r = run("bench -m " + test::gguf_path("qwen3moe", "q8_0") +
                       " -p 8 -n 2 -t 1 -r 1 --bw-mib 8 --json 2>/dev/null");
    ASSERT_EQ(r.code, 0) << r.out;
    const auto js = nlohmann::json::parse(r.out);
    ASSERT_EQ(js.size(), 2u);
    EXPECT_EQ(js[0]["test"], "pp8");
    EXPECT_EQ(js[1]["test"], "tg2");
    EXPECT_EQ(js[1]["threads"], 1);
    EXPECT_GT(js[1]["tokens_per_second"].get<double>(), 0);
}

TEST(BenchCli, ErrorsAreOneLineAndExitOne) {
    const std::string model = test::gguf_path("llama", "f32");
    for (const std::string& args :
         {std::string("bench -m /nonexistent.gguf"), "bench -m " + model + " -p 8,x",
          "bench -m " + model + " -r 0", std::string("synth --like no-such-model -o /tmp/x.gguf"),
          std::string("synth --like olmoe-1b-7b --type q9_9 -o /tmp/x.gguf"),
          std::string("synth --like olmoe-1b-7b --type q4_0 -o /nonexistent-dir/x.gguf -q"),
          std::string("synth --like olmoe-1b-7b --layers 99 -o /tmp/x.gguf")}) {
        const auto r = run(args);
        EXPECT_EQ(r.code, 1) << args << "\n" << r.out;
        EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << args << "\n" << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << args << "\n" << r.out;
    }
}

}  // namespace
}  // namespace moe
