// The command-line contract that external checks rely on, and its error behaviour.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>

#include "fixtures.h"

namespace moe {
namespace {

struct Run {
    int code;
    std::string out;  // stdout + stderr
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
    const auto r = run("logits -m " + test::gguf_path("mixtral", "f32") + " --tokens " +
                       token_list(ref["tokens"]) + " -o " + out + " --router-out " + router);
    ASSERT_EQ(r.code, 0) << r.out;
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
        const auto r = run(args);
        EXPECT_NE(r.code, 0) << args;
        EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << args << "\n" << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    }
}

TEST(Cli, MmapFlags) {
    const std::string model = test::gguf_path("mixtral", "q8_0");
    for (const char* flag : {"--mmap", "--no-mmap"}) {
        const auto r = run("run -m " + model + " -p \"In the\" -n 4 --seed 3 " + flag);
        EXPECT_EQ(r.code, 0) << flag << "\n" << r.out;
    }
    const auto both = run("run -m " + model + " -n 4 --mmap --no-mmap");
    EXPECT_NE(both.code, 0) << both.out;
}

TEST(Cli, RunGeneratesAndReportsSpeeds) {
    const auto r =
        run("run -m " + test::gguf_path("mixtral", "q8_0") + " -p \"In the\" -n 8 --seed 3");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("load time:"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("prompt:"), std::string::npos);
    EXPECT_NE(r.out.find("generation: 8 tokens"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace moe
