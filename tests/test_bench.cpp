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

// Fixture: 2 layers, K and V rows of 64 (n_head_kv x head_dim) each; default f32 KV cache.
TEST(Bench, DecodeKvBytesCountsThePositionsEachTokenReads) {
    auto m = load_model(test::gguf_path("mixtral", "f32"));
    ASSERT_TRUE(m.ok()) << m.message();
    ModelConfig c = (*m)->config;
    const double pos = 2.0 * 64 * 4;  // one position of one layer: K + V in f32
    // 3 tokens after 8: they see 9, 10 and 11 positions, 10 on average, in both layers.
    EXPECT_DOUBLE_EQ(decode_kv_bytes(c, KvTypes{}, 8, 3), 2 * 10 * pos);
    // q8_0 rows: 64 values are 2 blocks of 34 bytes.
    EXPECT_DOUBLE_EQ(decode_kv_bytes(c, KvTypes{DType::Q8_0, DType::Q8_0}, 8, 3),
                     2 * 10 * 2.0 * 68);
    // A sliding window of 4 on layer 0 reads 4 positions per token there.
    ASSERT_EQ(c.attn.size(), 2u);
    c.attn[0].sliding_window = 4;
    EXPECT_DOUBLE_EQ(decode_kv_bytes(c, KvTypes{}, 8, 3), (4 + 10) * pos);
    // Window 10: tokens see 9, 10, 10 positions there.
    c.attn[0].sliding_window = 10;
    EXPECT_DOUBLE_EQ(decode_kv_bytes(c, KvTypes{}, 8, 3), (29.0 / 3 + 10) * pos);
    EXPECT_EQ(decode_kv_bytes(c, KvTypes{}, 8, 0), 0.0);
}

// The probe reads the model's own weights, largest first, without token_embd; a model with
// less than asked gives no ranges (the probe then reads a buffer of its own).
TEST(Bench, WeightRangesAreTheLargestTensorsUpToTheBytesAsked) {
    auto m = load_model(test::gguf_path("mixtral", "f32"));
    ASSERT_TRUE(m.ok()) << m.message();
    // Largest: output.weight (512 x 128 f32) and the 6 expert tensors (8 x 64 x 128 f32),
    // 262144 bytes each.
    const auto r = weight_ranges(**m, 300000);
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[0].size, 262144u);
    EXPECT_EQ(r[1].size, 300000u - 262144u);
    auto out = (*m)->source->tensor("token_embd.weight");
    ASSERT_TRUE(out.has_value());
    for (const auto& x : r) EXPECT_NE(x.data, static_cast<const uint8_t*>(out->data));
    EXPECT_TRUE(weight_ranges(**m, uint64_t(1) << 30).empty());
    ThreadPool pool(2);
    EXPECT_GT(measure_read_bandwidth(pool, r, 2), 1e8);
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
        // The bound: bandwidth over the bytes one token reads (generation only): the weights
        // and the KV rows (3 tokens after 8 see 10 positions on average, 2 layers of K + V rows
        // of 64 floats).
        if (gen[i] > 0) {
            const double kv = 10.0 * 2 * 2 * 64 * 4;
            EXPECT_DOUBLE_EQ(x.bytes_per_token, active_bytes + kv);
            EXPECT_NEAR(x.bound_ts, x.read_bandwidth / (active_bytes + kv), 1e-9 * x.bound_ts);
        } else {
            EXPECT_EQ(x.read_bandwidth, (*r)[i < 3 ? 0 : 3].read_bandwidth);  // the pp probe
            EXPECT_EQ(x.bound_ts, 0);
        }
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
