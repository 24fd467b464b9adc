// `moeinfer bench-serve` against `moeinfer serve` on the demo model (a child it starts itself),
// its table's consistency, its bad options, and the pieces it is built from (URL, percentiles,
// the /metrics reader).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "analysis/compare_serving.h"
#include "analysis/serve_bench.h"
#include "fixtures.h"
#include "kernels/dispatch.h"
#include "server/metrics_text.h"
#include "subprocess.h"

namespace {

using json = nlohmann::json;

const std::string kDemo = std::string(MOE_SOURCE_DIR) + "/models/demo-moe.gguf";

// A port nothing listens on: bound once by us, then closed.
int closed_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    close(fd);
    return ntohs(a.sin_port);
}

TEST(BenchServe, LevelsAgreeWithUsageAndServerCounters) {
    const int max_tokens = 6;
    const auto r = moe::test::run_moeinfer("bench-serve -m " + kDemo +
                                           " --parallel 4 --concurrency 1,2,4 "
                                           "--requests-per-client 2 --prompt-tokens 12 "
                                           "--max-tokens 6 --seed 7 --json");
    ASSERT_EQ(r.code, 0) << r.all();
    const json j = json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    EXPECT_TRUE(j["server_is_moeinfer"].get<bool>());
    ASSERT_EQ(j["levels"].size(), 3u);
    const int want_c[] = {1, 2, 4};
    for (size_t i = 0; i < 3; ++i) {
        const json& L = j["levels"][i];
        SCOPED_TRACE(L["concurrency"].dump());
        EXPECT_EQ(L["concurrency"], want_c[i]);
        const int n = L["requests"];
        EXPECT_EQ(n, 2 * want_c[i]);
        EXPECT_EQ(L["failures"], 0) << L["first_error"];
        // ignore_eos: every request generates exactly max_tokens, and usage says so.
        int64_t usage_sum = 0;
        ASSERT_EQ(L["per_request"].size(), size_t(n));
        for (const json& q : L["per_request"]) {
            EXPECT_TRUE(q["ok"].get<bool>()) << q["error"];
            EXPECT_EQ(q["usage_completion_tokens"], max_tokens);
            EXPECT_GE(q["chunks"].get<int>(), 1);
            EXPECT_LE(q["chunks"].get<int>(), max_tokens);
            EXPECT_LE(q["ttft_s"].get<double>(), q["total_s"].get<double>());
            usage_sum += q["usage_completion_tokens"].get<int>();
        }
        EXPECT_EQ(L["output_tokens"], usage_sum);
        EXPECT_EQ(L["output_tokens"], int64_t(n) * max_tokens);
        EXPECT_EQ(L["count_mismatches"], 0);
        EXPECT_EQ(L["usage_missing"], 0);
        // The server generated exactly the tokens the clients were told about.
        EXPECT_EQ(L["server_generated_tokens"].get<double>(), double(usage_sum));
        const double wall = L["wall_s"];
        EXPECT_LE(L["ttft_p50_s"].get<double>(), L["ttft_p99_s"].get<double>());
        EXPECT_LE(L["ttft_p99_s"].get<double>(), L["max_request_s"].get<double>());
        EXPECT_LE(L["max_request_s"].get<double>(), wall);
        EXPECT_LE(L["itl_p50_s"].get<double>(), L["itl_p99_s"].get<double>());
        EXPECT_NEAR(L["output_tok_s"].get<double>(), double(usage_sum) / wall, 1e-9);
        EXPECT_NEAR(L["req_s"].get<double>(), double(n) / wall, 1e-9);
        // The demo MoE routes each token to k of its experts: a step touches at least k
        // (one token) and at most every expert.
        ASSERT_TRUE(L["experts_per_layer_per_step"].is_number());
        EXPECT_GE(L["experts_per_layer_per_step"].get<double>(), 1.0);
        EXPECT_GT(L["weight_bytes_per_token"].get<double>(),
                  L["expert_bytes_per_token"].get<double>());
    }
}

TEST(BenchServe, TableHasOneRowPerLevel) {
    const auto r = moe::test::run_moeinfer("bench-serve -m " + kDemo +
                                           " --concurrency 1,3 --requests 3 --prompt-tokens 5 "
                                           "--max-tokens 3");
    ASSERT_EQ(r.code, 0) << r.all();
    EXPECT_NE(r.out.find("| concurrency | requests | failed | output tok/s"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("experts/layer/step"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\n| 1 | 3 | 0 |"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\n| 3 | 3 | 0 |"), std::string::npos) << r.out;
    EXPECT_EQ(r.err.find('\r'), std::string::npos) << "no progress bar without a TTY";
}

// The same greedy requests alone and 8 at once, on a quantized MoE: with --deterministic every
// share is 0; without it batching changes the arithmetic wherever the AVX-512 prompt GEMM runs,
// and the check sees it (the logprobs differ even where the greedy text survives).
json determinism(bool deterministic) {
    const auto r =
        moe::test::run_moeinfer("bench-serve -m " + moe::test::gguf_path("mixtral-wide", "q4_k_m") +
                                (deterministic ? " --deterministic" : "") +
                                " --parallel 8 --deterministic-check --requests 8 --prompt-tokens "
                                "20 --max-tokens 8 --json");
    EXPECT_EQ(r.code, 0) << r.all();
    json j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out;
    return j;
}

TEST(BenchServe, DeterministicServerGivesZeroShares) {
    const json j = determinism(true);
    ASSERT_TRUE(j.is_object());
    EXPECT_EQ(j["requests"], 8);
    EXPECT_EQ(j["failures"], 0);
    EXPECT_EQ(j["text_differs"], 0);
    EXPECT_EQ(j["text_differs_share"], 0.0);
    ASSERT_TRUE(j["logprobs_available"].get<bool>());
    EXPECT_EQ(j["logprobs_differ"], 0);
    // Our server streams moe_routing: 8 requests x 8 tokens x the model's MoE layers.
    ASSERT_TRUE(j["routing_available"].get<bool>());
    EXPECT_GE(j["routing_pairs"].get<int64_t>(), 8 * 8);
    EXPECT_EQ(j["routing_differs"], 0);
}

TEST(BenchServe, ApiKeyReachesEveryRoute) {
    // The child server requires the key; the requests, /v1/models and /metrics all carry it.
    const auto r = moe::test::run_moeinfer("bench-serve -m " + kDemo +
                                           " --api-key s3cret --concurrency 2 --requests 2 "
                                           "--prompt-tokens 4 --max-tokens 2");
    ASSERT_EQ(r.code, 0) << r.all();
    EXPECT_NE(r.out.find("\n| 2 | 2 | 0 |"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("experts/layer/step"), std::string::npos) << r.out;
}

TEST(BenchServe, DeterministicCheckSeesBatchingWithoutTheOption) {
    const json j = determinism(false);
    ASSERT_TRUE(j.is_object());
    EXPECT_EQ(j["failures"], 0);
    ASSERT_TRUE(j["logprobs_available"].get<bool>());
    EXPECT_EQ(j["logprobs_differ"].get<int>() > 0, moe::kern::isa_supported(moe::kern::Isa::Avx512))
        << j.dump();
}

TEST(BenchServe, BadOptionsAreOneClearError) {
    const std::string port = std::to_string(closed_port());
    const struct {
        std::string args, says;
    } cases[] = {
        {"bench-serve -m " + kDemo + " --concurrency 0", "--concurrency '0': 0 is not in 1..4096"},
        {"bench-serve -m " + kDemo + " --concurrency 1,x", "'x' is not a number"},
        {"bench-serve -m " + kDemo + " --concurrency 1,,2", "'' is not a number"},
        {"bench-serve -m " + kDemo + " --concurrency -4", "'-4' is not a number"},
        {"bench-serve", "exactly one of --url URL and -m MODEL"},
        {"bench-serve --url http://127.0.0.1:1 -m " + kDemo, "exactly one of"},
        {"bench-serve --url https://127.0.0.1:8080", "only http:// URLs"},
        {"bench-serve --url http://127.0.0.1:99999", "port '99999'"},
        {"bench-serve --url http://127.0.0.1:" + port, "cannot reach http://127.0.0.1:" + port},
        {"bench-serve -m /nonexistent/model.gguf", "/nonexistent/model.gguf"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.args);
        const auto t0 = std::chrono::steady_clock::now();
        const auto r = moe::test::run_moeinfer(c.args);
        EXPECT_EQ(r.code, 1) << r.all();
        EXPECT_NE(r.err.find("error: "), std::string::npos) << r.err;
        EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
        EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                  30.0);
    }
}

TEST(BenchServe, UnroutableHostTimesOut) {
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never answered; the connect timeout ends it.
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = moe::test::run_moeinfer(
        "bench-serve --url http://192.0.2.1:8080 --connect-timeout 1 --concurrency 1");
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(r.code, 1) << r.all();
    EXPECT_NE(r.err.find("error: cannot reach http://192.0.2.1:8080"), std::string::npos) << r.err;
    EXPECT_LT(s, 10.0);
}

TEST(BenchServe, ServerUrls) {
    auto u = moe::parse_server_url("http://example.org:8000/v1/");
    ASSERT_TRUE(u.ok()) << u.message();
    EXPECT_EQ(u->host, "example.org");
    EXPECT_EQ(u->port, 8000);
    EXPECT_EQ(u->prefix, "");
    u = moe::parse_server_url("127.0.0.1:9/api/v1");
    ASSERT_TRUE(u.ok()) << u.message();
    EXPECT_EQ(u->port, 9);
    EXPECT_EQ(u->prefix, "/api");
    u = moe::parse_server_url("http://h");
    ASSERT_TRUE(u.ok());
    EXPECT_EQ(u->port, 80);
    EXPECT_FALSE(moe::parse_server_url("http://:80").ok());
    EXPECT_FALSE(moe::parse_server_url("http://h:x").ok());
}

TEST(BenchServe, NearestRankPercentiles) {
    // Nearest rank: the ceil(p * n)-th smallest.
    const std::vector<double> v = {5, 1, 4, 2, 3, 10, 9, 8, 7, 6};
    EXPECT_EQ(moe::percentile(v, 0.5), 5);
    EXPECT_EQ(moe::percentile(v, 0.99), 10);
    EXPECT_EQ(moe::percentile(v, 0.1), 1);
    EXPECT_EQ(moe::percentile({}, 0.5), 0);
    EXPECT_EQ(moe::percentile({3}, 0.99), 3);
}

TEST(BenchServe, PromptsAreUniqueWordLists) {
    const std::string a = moe::bench_prompt(1, 0, 48), b = moe::bench_prompt(1, 1, 48);
    EXPECT_NE(a, b);
    EXPECT_EQ(a, moe::bench_prompt(1, 0, 48));
    EXPECT_NE(a, moe::bench_prompt(2, 0, 48));
    EXPECT_EQ(std::count(a.begin(), a.end(), ' '), 47);
}

TEST(BenchServe, ReadsTheCountersOfTheNamedModel) {
    moe::SchedulerMetrics m1, m2;
    m1.decode_steps = 4;
    m1.decode_tokens = 10;
    m1.generated_tokens = 11;
    m1.experts_per_layer_sum = 12;  // mean 3 per step
    m1.weight_bytes_read_total = 1000;
    m1.expert_bytes_read_total = 600;
    m2.decode_steps = 7;
    const std::string text = moe::server::metrics_text({{"a", m2}, {"b", m1}}, {});
    auto c = moe::parse_server_counters(text, "b");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->decode_steps, 4);
    EXPECT_EQ(c->decode_tokens, 10);
    EXPECT_EQ(c->generated_tokens, 11);
    EXPECT_EQ(c->experts_per_layer_mean, 3);
    EXPECT_EQ(c->weight_bytes_per_token_mean, 100);
    EXPECT_EQ(c->expert_bytes_per_token_mean, 60);
    EXPECT_EQ(moe::parse_server_counters(text, "other")->decode_steps, 7);  // the first model
    EXPECT_FALSE(moe::parse_server_counters("llamacpp:tokens_predicted_total 5\n", ""));
}

}  // namespace

namespace {

using json = nlohmann::json;

// The figure: at 16 sequences a step of OLMoE (64 experts, top-8) touches about 57.
TEST(ServingPrediction, UniformExpertsTouched) {
    EXPECT_NEAR(moe::uniform_experts_touched(64, 8, 16), 56.44, 0.01);
    EXPECT_DOUBLE_EQ(moe::uniform_experts_touched(64, 8, 1), 8);
    EXPECT_NEAR(moe::uniform_experts_touched(8, 2, 1000), 8, 1e-9);
}

TEST(ServingPrediction, RoutedExpertsTouchedFromCounts) {
    // Two layers of 4 experts, top-1. Equal counts: the uniform formula. Layer 2 always picks
    // expert 0: one expert whatever B.
    const json routing = {{"model", {{"n_expert_used", 1}}},
                          {"layers", {{{"counts", {5, 5, 5, 5}}}, {{"counts", {20, 0, 0, 0}}}}}};
    const double B = 3;
    const double uniform = 4 * (1 - std::pow(0.75, B));
    EXPECT_NEAR(moe::routed_experts_touched(routing, B), (uniform + 1) / 2, 1e-12);
    EXPECT_TRUE(std::isnan(moe::routed_experts_touched(json(nullptr), B)));
}

}  // namespace

// serve --mem-budget through bench-serve -m: a budget holding the demo (resident mode) and a
// cache of 6 of its 32 experts (--cache-slots), each answering every request; KV types pass too.
TEST(BenchServe, ServesWithAMemoryBudget) {
    for (const std::string extra :
         {std::string(" --mem-budget 8 --cache-type-k f16 --cache-type-v q8_0"),
          std::string(" --serve-arg --cache-slots=6 --serve-arg --prefetch=on")}) {
        const auto r = moe::test::run_moeinfer("bench-serve -m " + kDemo + extra +
                                               " --concurrency 2 --requests 4 --prompt-tokens 6 "
                                               "--max-tokens 4 --json");
        ASSERT_EQ(r.code, 0) << extra << "\n" << r.all();
        const json j = json::parse(r.out, nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << r.out;
        EXPECT_NE(r.out.find("\"failures\": 0"), std::string::npos) << r.out;
    }
}
