// The bundled demo models: `moeinfer eval` reproduces the validation perplexity that the training
// script measured with its own (numpy) forward pass on the exported GGUF, within 1%.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

namespace {

std::string repo() { return std::string(MOE_SOURCE_DIR); }

std::string run(const std::string& args, int* code) {
    FILE* p = popen((std::string(MOE_BINARY) + " " + args + " 2>/dev/null").c_str(), "r");
    std::string out;
    std::array<char, 4096> buf{};
    while (size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
    const int st = pclose(p);
    *code = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    return out;
}

class DemoModel : public testing::TestWithParam<std::string> {};

TEST_P(DemoModel, EvalReproducesTrainingScriptPerplexity) {
    const std::string which = GetParam();  // "moe" | "dense"
    std::ifstream f(repo() + "/models/demo-results.json");
    ASSERT_TRUE(f.good());
    const auto results = nlohmann::json::parse(f)["results"][which];
    const double want = results["gguf_val_ppl"].get<double>();  // numpy forward on the GGUF
    int code = 0;
    const std::string out =
        run("eval -m " + repo() + "/models/demo-" + which + ".gguf -f " + repo() +
                "/models/demo-val.txt -c 256 --bos-chunks --b1-chunks 0 -t 2 --json",
            &code);
    ASSERT_EQ(code, 0) << out;
    const auto j = nlohmann::json::parse(out);
    const double got = j["ppl"].get<double>();
    EXPECT_NEAR(got, want, 0.01 * want) << which;
    EXPECT_EQ(j["n_scored"].get<int64_t>(), 57088);  // models/README.md
}

INSTANTIATE_TEST_SUITE_P(Bundled, DemoModel, testing::Values("moe", "dense"));

// The README's first command: `moeinfer run` without -m uses the bundled MoE and prints text.
TEST(DemoModel, RunWithoutModelUsesBundledMoe) {
    int code = 0;
    const std::string out = run("run -p \"And God said\" -n 16 --temp 0", &code);
    ASSERT_EQ(code, 0);
    EXPECT_EQ(out.rfind("And God said", 0), 0u) << out;
    EXPECT_GT(out.size(), std::string("And God said").size() + 20) << out;
}

}  // namespace
