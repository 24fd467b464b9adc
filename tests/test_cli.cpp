// The command-line contract that external checks rely on, and its error behaviour.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>

#include "fixtures.h"
#include "subprocess.h"

namespace moe {
namespace {

std::string tmp(const std::string& n) {
    return test::temp_path("cli_" + n);
}

std::string token_list(const nlohmann::json& ids) {
    std::string s;
    for (const auto& i : ids) s += (s.empty() ? "" : ",") + std::to_string(i.get<int>());
    return s;
}

TEST(Cli, LogitsWritesAllPositionsMatchingReference) {
    const auto ref = test::load_ref("mixtral");
    const std::string out = tmp("logits.f32"), router = tmp("router.f32");
    const auto r = test::run_moeinfer("logits -m " + test::gguf_path("mixtral", "f32") + " --tokens " +
                       token_list(ref["tokens"]) + " -o " + out + " --router-out " + router);
    ASSERT_EQ(r.code, 0) << r.all();
    const auto got = test::read_f32(out);
    const auto want = test::read_f32(test::model_dir("mixtral") + "/ref_logits.f32");
    ASSERT_EQ(got.size(), 24u * 512u);
    EXPECT_LT(test::max_rel(got, want), 1e-4);
    const auto rl = test::read_f32(router);
    const auto rl_ref = test::read_f32(test::model_dir("mixtral") + "/ref_router_logits.f32");
    ASSERT_EQ(rl.size(), rl_ref.size());  // [2 layers, 24 tokens, 8 experts]
    EXPECT_LT(test::max_rel(rl, rl_ref), 1e-4);
}

TEST(Cli, ErrorsAreOneLineAndNonZero) {
    const std::string model = test::gguf_path("llama", "f32");
    for (const std::string& args :
         {"logits -m /nonexistent.gguf --tokens 1 -o " + tmp("x"),
          "logits -m " + model + " --tokens 1,512 -o " + tmp("x"),
          "logits -m " + model + " --tokens 1,,2 -o " + tmp("x"),
          "logits -m " + model + " --tokens 1 -o /nonexistent-dir/x.f32",
          "logits -m " + test::fixtures_dir() + "/tokenizers/ggml-vocab-gpt-2.gguf --tokens 1 -o " +
              tmp("x"),
          std::string("run -m /nonexistent.gguf -n 4")}) {
        const auto r = test::run_moeinfer(args);
        EXPECT_NE(r.code, 0) << args;
        EXPECT_EQ(r.all().rfind("error: ", 0), 0u) << args << "\n" << r.all();
        EXPECT_EQ(std::ranges::count(r.all(), '\n'), 1) << r.all();
    }
}

TEST(Cli, MmapFlags) {
    const std::string model = test::gguf_path("mixtral", "q8_0");
    for (const char* flag : {"--mmap", "--no-mmap"}) {
        const auto r = test::run_moeinfer("run -m " + model + " -p \"In the\" -n 4 --seed 3 " + flag);
        EXPECT_EQ(r.code, 0) << flag << "\n" << r.all();
    }
    const auto both = test::run_moeinfer("run -m " + model + " -n 4 --mmap --no-mmap");
    EXPECT_NE(both.code, 0) << both.all();
}

TEST(Cli, RunGeneratesAndReportsSpeeds) {
    const auto r =
        test::run_moeinfer("run -m " + test::gguf_path("mixtral", "q8_0") + " -p \"In the\" -n 8 --seed 3");
    ASSERT_EQ(r.code, 0) << r.all();
    EXPECT_NE(r.all().find("load time:"), std::string::npos) << r.all();
    EXPECT_NE(r.all().find("prompt:"), std::string::npos);
    EXPECT_NE(r.all().find("generation: 8 tokens"), std::string::npos) << r.all();
}

}  // namespace
}  // namespace moe
