// `inspect --like PRESET --mem-budget` (runtime/decode_prediction.h): the prediction's
// arithmetic against numbers worked by hand from OLMoE-1B-7B's shapes stored as Q8_0 (34 bytes
// per 32 weights), with the bandwidths given so that nothing is measured.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "fixtures.h"
#include "subprocess.h"

namespace moe {
namespace {

TEST(DecodePrediction, InspectLikeOlmoeMatchesHandWorkedNumbers) {
    const auto r = test::run_moeinfer(
        "inspect --like olmoe-1b-7b --type q8_0 --mem-budget 4 --ram-bw 10 --disk-bw 1 --json");
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out)["mem_budget"];
    EXPECT_EQ(j["assumption"], "uniform routing");
    // One expert: gate, up, down of 1024 x 2048 = 6291456 weights -> 6684672 bytes.
    const double expert = 3.0 * 1024 * 2048 * 34 / 32;
    // Per token: 16 MoE layers x top-8 experts.
    EXPECT_DOUBLE_EQ(j["expert_bytes_per_token"].get<double>(), 16 * 8 * expert);
    // Per layer q, k, v, o (4 x 2048 x 2048) in Q8_0, the router (64 x 2048) in f32 (the q8_0
    // file type keeps routers unquantized, as the upstream quantizer does), four norms of 2048
    // f32 (attention, FFN, q, k); the output head (50304 x 2048) in Q8_0, its norm, one
    // token_embd row.
    const double layer = 4.0 * 2048 * 2048 * 34 / 32 + 64 * 2048 * 4 + 4 * 2048 * 4;
    const double head = 50304.0 * 2048 * 34 / 32 + 2048 * 4, row = 2048.0 * 34 / 32;
    EXPECT_DOUBLE_EQ(j["non_expert_bytes_per_token"].get<double>(), 16 * layer + head + row);
    // Resident: non-expert weights (the whole token_embd) + f32 KV at 4096 tokens (16 layers x
    // K and V of 2048 floats) + buffers (64 MiB + 512 tokens x (8 x 1024 x 16 + 2048 x 32 +
    // 50304 x 4)).
    const double weights = 16 * layer + head + 50304.0 * 2048 * 34 / 32;
    const double kv = 16.0 * 2 * 2048 * 4 * 4096;
    const double buffers = 64.0 * (1 << 20) + 512.0 * (8 * 1024 * 16 + 2048 * 32 + 50304 * 4);
    EXPECT_DOUBLE_EQ(j["resident_bytes"].get<double>(), weights + kv + buffers);
    const auto& rows = j["rows"];
    ASSERT_EQ(rows.size(), 5u);
    // The 4 GiB budget: floor((4 GiB - resident) / expert) of 16 x 64 experts.
    const double share = std::floor((4.0 * (1 << 30) - (weights + kv + buffers)) / expert) / 1024;
    EXPECT_DOUBLE_EQ(rows[0]["resident_share"].get<double>(), share);
    const double all = 16 * 8 * expert, fixed = 16 * layer + head + row;
    for (const auto& row_j : rows) {
        const double s = row_j["resident_share"].get<double>();
        const double want = 1.0 / ((fixed + s * all) / 10e9 + (1 - s) * all / 1e9);
        EXPECT_NEAR(row_j["tokens_per_second"].get<double>(), want, want * 1e-12) << row_j["label"];
    }
    EXPECT_DOUBLE_EQ(rows[1]["resident_share"].get<double>(), 1.0);
    EXPECT_DOUBLE_EQ(rows[3]["resident_share"].get<double>(), 0.5);
    // By hand: all resident 1259235456 B / 10 GB/s -> 7.941 tok/s; half: 831416448 / 10e9 +
    // 427819008 / 1e9 = 0.510961 s -> 1.957 tok/s.
    EXPECT_NEAR(rows[1]["tokens_per_second"].get<double>(), 7.9413, 1e-4);
    EXPECT_NEAR(rows[3]["tokens_per_second"].get<double>(), 1.9571, 1e-4);
}

TEST(DecodePrediction, TextSaysUniformRoutingAndMeasuresTheDisk) {
    const auto r = test::run_moeinfer(
        "inspect --like olmoe-1b-7b --type q4_K --mem-budget 2 --bw-mib 16 -t 1 --disk-probe " +
        std::filesystem::temp_directory_path().string());
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("assuming uniform routing"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("disk read bandwidth"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("25% of experts"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace moe
