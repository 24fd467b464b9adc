// Expert parallelism pieces that need no mpirun: placement (hand-worked tables), the routing
// counts reader's errors, the single-process communicator, and the CLI's answers that do not
// depend on a job (tests/mpi/ runs the rest under mpirun in MOE_MPI builds).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "parallel/comm.h"
#include "parallel/placement.h"
#include "subprocess.h"

namespace moe {
namespace {

const std::vector<uint8_t> kOneDenseTwoMoe = {0, 1, 1};

TEST(ExpertPlacement, ContiguousSplitsEveryMoeLayerInOrder) {
    auto p = place_experts(kOneDenseTwoMoe, 8, 3, Placement::Contiguous);
    ASSERT_TRUE(p) << p.message();
    EXPECT_TRUE(p->owner[0].empty());                        // the dense layer
    const std::vector<int> want = {0, 0, 1, 1, 1, 2, 2, 2};  // [8k/3, 8(k+1)/3)
    EXPECT_EQ(p->owner[1], want);
    EXPECT_EQ(p->owner[2], want);
    EXPECT_EQ(p->owned(0, 1), 2);
}

TEST(ExpertPlacement, BalancedIsGreedyByLoadWithAnEvenCount) {
    // Heaviest first to the least-loaded rank holding < 4: e0 (10) r0, e7 (9) r1, e1 r1, e2 r0
    // (tie 10/10: lower rank), e3 r1, e4 r0, e5 r1 (12 vs 11; r1 then full), e6 r0.
    const std::vector<std::vector<double>> counts = {{10, 1, 1, 1, 1, 1, 1, 9},
                                                     {1, 1, 1, 1, 1, 1, 1, 1}};
    auto p = place_experts(kOneDenseTwoMoe, 8, 2, Placement::Balanced, counts);
    ASSERT_TRUE(p) << p.message();
    EXPECT_EQ(p->owner[1], (std::vector<int>{0, 1, 0, 1, 0, 1, 0, 1}));
    EXPECT_EQ(p->owned(0, 2), 4);
    EXPECT_EQ(p->owned(1, 2), 4);
}

TEST(ExpertPlacement, RefusesMoreRanksThanExpertsAndDenseModels) {
    auto p = place_experts(kOneDenseTwoMoe, 8, 9, Placement::Contiguous);
    ASSERT_FALSE(p);
    EXPECT_NE(p.message().find("only 8 experts"), std::string::npos) << p.message();
    auto d = place_experts({0, 0}, 8, 2, Placement::Contiguous);
    ASSERT_FALSE(d);
    EXPECT_NE(d.message().find("no MoE layers"), std::string::npos);
    auto b = place_experts(kOneDenseTwoMoe, 8, 2, Placement::Balanced, {{1, 1, 1, 1, 1, 1, 1, 1}});
    ASSERT_FALSE(b);  // counts for 1 MoE layer, the model has 2
}

TEST(ExpertPlacement, RoutingCountsFileErrorsNameTheFile) {
    const auto dir = std::filesystem::temp_directory_path() / "moe-ep-counts";
    std::filesystem::create_directories(dir);
    const auto write = [&](const char* name, const char* text) {
        const auto p = (dir / name).string();
        std::ofstream(p) << text;
        return p;
    };
    const auto good = write("good.json", R"({"layers": [{"counts": [1, 2]}, {"counts": [3, 0]}]})");
    auto c = read_routing_counts(good, 2, 2);
    ASSERT_TRUE(c) << c.message();
    EXPECT_EQ((*c)[1], (std::vector<double>{3, 0}));
    for (const char* text : {"not json", R"({"layers": [{"counts": [1]}]})",
                             R"({"layers": [{"counts": [1, 2]}, {"counts": [1, -2]}]})",
                             R"({"layers": [{"counts": [1, 2]}, {"counts": [1, "x"]}]})"}) {
        const auto p = write("bad.json", text);
        auto r = read_routing_counts(p, 2, 2);
        ASSERT_FALSE(r) << text;
        EXPECT_NE(r.message().find(p), std::string::npos) << r.message();
    }
    std::filesystem::remove_all(dir);
}

TEST(ExpertPlacement, SingleCommIsTheIdentity) {
    auto c = make_single_comm();
    EXPECT_EQ(c->rank(), 0);
    EXPECT_EQ(c->size(), 1);
    float v[2] = {1.5f, -2.0f};
    ASSERT_TRUE(c->allreduce_sum(v, 2));
    EXPECT_EQ(v[0], 1.5f);
    auto all = c->allgather("x");
    ASSERT_TRUE(all);
    EXPECT_EQ(*all, std::vector<std::string>{"x"});
}

// Without MPI the flag says so; with it, the placement options still need the flag.
TEST(ExpertParallelCli, ClearErrorsWithoutAJob) {
    const std::string model = std::string(MOE_FIXTURES_DIR) + "/models/mixtral-f32.gguf";
    const auto out = (std::filesystem::temp_directory_path() / "moe-ep-cli.f32").string();
    auto r = test::run_process({MOE_BINARY, "logits", "-m", model, "--tokens", "1,2", "-o", out,
                                "--ep-placement", "balanced"});
    test::expect_one_error_line(r, "logits --ep-placement balanced");
    EXPECT_NE(r.err.find("need --expert-parallel"), std::string::npos) << r.err;
    if (!mpi_available()) {
        auto n = test::run_process(
            {MOE_BINARY, "logits", "-m", model, "--tokens", "1,2", "-o", out, "--expert-parallel"});
        test::expect_one_error_line(n, "logits --expert-parallel (no MPI)");
        EXPECT_NE(n.err.find("built without MPI"), std::string::npos) << n.err;
    }
}

}  // namespace
}  // namespace moe
