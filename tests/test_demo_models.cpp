// The bundled demo models: `moeinfer eval` reproduces the validation perplexity that the training
// script measured with its own (numpy) forward pass on the exported GGUF, within 1%.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "subprocess.h"

namespace {

std::string repo() { return std::string(MOE_SOURCE_DIR); }

class DemoModel : public testing::TestWithParam<std::string> {};

TEST_P(DemoModel, EvalReproducesTrainingScriptPerplexity) {
    const std::string which = GetParam();  // "moe" | "dense"
    std::ifstream f(repo() + "/models/demo-results.json");
    ASSERT_TRUE(f.good());
    const auto results = nlohmann::json::parse(f)["results"][which];
    const double want = results["gguf_val_ppl"].get<double>();  // numpy forward on the GGUF
    const auto r = moe::test::run_moeinfer("eval -m " + repo() + "/models/demo-" + which +
                                           ".gguf -f " + repo() +
                                           "/models/demo-val.txt -c 256 --bos-chunks --b1-chunks "
                                           "0 -t 2 --json");
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    const double got = j["ppl"].get<double>();
    EXPECT_NEAR(got, want, 0.01 * want) << which;
    EXPECT_EQ(j["n_scored"].get<int64_t>(), 57088);  // models/README.md
}

INSTANTIATE_TEST_SUITE_P(Bundled, DemoModel, testing::Values("moe", "dense"));

// The README's first command: `moeinfer run` without -m uses the bundled MoE and prints text.
TEST(DemoModel, RunWithoutModelUsesBundledMoe) {
    const auto r = moe::test::run_moeinfer("run -p \"And God said\" -n 16 --temp 0");
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string& out = r.out;
    EXPECT_EQ(out.rfind("And God said", 0), 0u) << out;
    EXPECT_GT(out.size(), std::string("And God said").size() + 20) << out;
}

}  // namespace
