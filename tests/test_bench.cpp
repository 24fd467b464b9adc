// bench: footprint accounting, the bandwidth probe, and the llama-bench-style runs and output.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "fixtures.h"
#include "models/model.h"
#include "runtime/bench.h"
#include "subprocess.h"

namespace moe {
namespace {

TEST(Bench, FootprintCountsTopKOfRoutedExperts) {
    auto m = load_model(test::gguf_path("mixtral", "f32"));
    ASSERT_TRUE(m.ok()) << m.message();
    const ModelFootprint f = model_footprint(**m);
    // Fixture: vocab 512, hidden 128, 2 layers, 8 experts top-2 of FFN 64, kv 64 wide.
    const double emb = 512.0 * 128, attn = 2.0 * 128 * 128 + 2.0 * 64 * 128,
                 exps = 3.0 * 8 * 64 * 128;
    const double norms = 2 * 2 * 128 + 128, router = 8 * 128;
    const double total = 2 * emb + 2 * (attn + exps + router) + norms;
    EXPECT_EQ(f.n_params, uint64_t(total));
    EXPECT_NEAR(f.n_active_params, total - 2 * exps * 6 / 8, 1e-6);
    EXPECT_NEAR(f.active_bytes_per_token, 4 * (total - 2 * exps * 6 / 8 - emb + 128), 1e-6);
    EXPECT_EQ(f.tensor_bytes, uint64_t(4 * total));
}

TEST(Bench, BandwidthProbeIsInBytesPerSecond) {
    ThreadPool pool(2);
    const double bw = measure_read_bandwidth(pool, 16 << 20, 2);
    // Between 0.1 GB/s and 10 TB/s on any host: wrong units (bits, GB, per-thread sums) leave it.
    EXPECT_GT(bw, 1e8);
    EXPECT_LT(bw, 1e13);
    EXPECT_EQ(measure_read_bandwidth(pool, 65535, 1), 0.0);  // rounds down to no 64 KiB block
}

// The figures of one run agree with each other and with the model's known sizes.
TEST(Bench, RunsPromptAndGenerationTests) {
    auto m = load_model(test::gguf_path("mixtral", "f32"));
    ASSERT_TRUE(m.ok()) << m.message();
    BenchParams p;
    p.n_prompt = {8, 4};
    p.n_gen = {3};
    p.threads = {1, 2};
    p.reps = 2;
    p.bandwidth_bytes = 8 << 20;
    // Wall time between results: each test's samples must fit in it.
    std::vector<double> gaps;
    auto last = std::chrono::steady_clock::now();
    auto r = run_bench(**m, p, [&](const BenchResult&) {
        const auto now = std::chrono::steady_clock::now();
        gaps.push_back(std::chrono::duration<double>(now - last).count());
        last = now;
    });
    ASSERT_TRUE(r.ok()) << r.message();
    ASSERT_EQ(r->size(), 6u);
    ASSERT_EQ(gaps.size(), 6u);
    const char* names[] = {"pp8", "pp4", "tg3", "pp8", "pp4", "tg3"};
    const int prompt[] = {8, 4, 0, 8, 4, 0}, gen[] = {0, 0, 3, 0, 0, 3};
    // Mixtral fixture (see FootprintCountsTopKOfRoutedExperts): f32 weights, one embedding row
    // and 2 of 8 experts read per token.
    const double emb = 512.0 * 128, attn = 2.0 * 128 * 128 + 2.0 * 64 * 128,
                 exps = 3.0 * 8 * 64 * 128;
    const double total = 2 * emb + 2 * (attn + exps + 8 * 128) + 2 * 2 * 128 + 128;
    const double active_bytes = 4 * (total - 2 * exps * 6 / 8 - emb + 128);
    for (size_t i = 0; i < r->size(); ++i) {
        const BenchResult& x = (*r)[i];
        SCOPED_TRACE(x.test);
        EXPECT_EQ(x.test, names[i]);
        EXPECT_EQ(x.threads, i < 3 ? 1 : 2);
        EXPECT_EQ(x.n_prompt, prompt[i]);
        EXPECT_EQ(x.n_gen, gen[i]);
        EXPECT_EQ(x.reps, 2);
        ASSERT_EQ(x.samples_ts.size(), 2u);
        // Mean and sample standard deviation of the samples.
        const double a = x.samples_ts[0], b = x.samples_ts[1];
        EXPECT_NEAR(x.mean_ts, (a + b) / 2, 1e-9 * x.mean_ts);
        EXPECT_NEAR(x.sd_ts, std::abs(a - b) / std::sqrt(2.0), 1e-9 * x.mean_ts + 1e-12);
        // Tokens over seconds: the seconds the samples stand for were spent inside this test.
        const int tokens = prompt[i] + gen[i];
        EXPECT_LE(tokens / a + tokens / b, gaps[i]);
        EXPECT_GT(x.read_bandwidth, 1e8);
        EXPECT_EQ(x.read_bandwidth,
                  (*r)[i < 3 ? 0 : 3].read_bandwidth);  // one probe per thread count
        // The bound: bandwidth over the weight bytes one token reads (generation only).
        if (gen[i] > 0)
            EXPECT_NEAR(x.bound_ts, x.read_bandwidth / active_bytes, 1e-9 * x.bound_ts);
        else
            EXPECT_EQ(x.bound_ts, 0);
    }
    const ModelFootprint f = model_footprint(**m);
    const std::string md = bench_markdown(f, *r);
    EXPECT_NE(md.find("| model | size | params | active params | threads | test | t/s |"),
              std::string::npos);
    EXPECT_NE(md.find("| tg3 |"), std::string::npos);
    const auto js = nlohmann::json::parse(bench_json(f, *r));
    ASSERT_TRUE(js.is_array());
    ASSERT_EQ(js.size(), 6u);
    EXPECT_EQ(js[2]["test"], "tg3");
    EXPECT_EQ(js[2]["threads"], 1);
    EXPECT_EQ(js[2]["n_gen"], 3);
    EXPECT_EQ(js[1]["n_prompt"], 4);
    EXPECT_DOUBLE_EQ(js[2]["tokens_per_second"].get<double>(), (*r)[2].mean_ts);
    EXPECT_NEAR(js[2]["percent_of_bound"].get<double>(), 100 * (*r)[2].mean_ts / (*r)[2].bound_ts,
                1e-9 * js[2]["percent_of_bound"].get<double>());
    EXPECT_DOUBLE_EQ(js[2]["active_bytes_per_token"].get<double>(), active_bytes);
    EXPECT_TRUE(js[0]["percent_of_bound"].is_null());
}

TEST(BenchCli, JsonHasTheFieldsExternalChecksRead) {
    const auto r = test::run_moeinfer("bench -m " + test::gguf_path("qwen3moe", "q8_0") +
                                      " -p 8 -n 2 -t 1 -r 1 --bw-mib 8 --json");
    ASSERT_EQ(r.code, 0) << r.all();
    const auto js = nlohmann::json::parse(r.out);  // stdout only
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
        const auto r = test::run_moeinfer(args);
        test::expect_one_error_line(r, args);
    }
}

}  // namespace
}  // namespace moe
