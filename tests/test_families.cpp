// Every MoE family on every shipped file: quantized accuracy against the upstream engine's error,
// HF folders equal to GGUF, router logits equal to Hugging Face's.
#include <gtest/gtest.h>

#include <set>

#include "fixtures.h"
#include "formats/override_source.h"
#include "models/common/moe_block.h"
#include "models/model.h"
#include "routing_flips.h"
#include "runtime/session.h"

namespace moe {
namespace {

using test::Eval;
using test::evaluate;

std::vector<int32_t> ref_tokens(const std::string& name) {
    return test::load_ref(name)["tokens"].get<std::vector<int32_t>>();
}

struct FileCase {
    std::string name, type;
};

class QuantizedFile : public testing::TestWithParam<FileCase> {};

// rms_rel <= 1.1 x upstream + 1e-3 over all 24 tokens. A file that misses it must be explained by
// routing flips, as the greedy-sequence check treats low-margin steps: every token whose expert
// choice differs from the f32 model's (which matches Hugging Face to ~1e-6) must be a flip the
// file's own measured router error explains (flip_explained), and the criterion holds on the
// tokens before the first flip when there are at least 4 of them (a flipped token's keys and
// values reach every later token through attention). Figures are printed; the issue notes list
// the files that take this branch (they miss the literal bound).
TEST_P(QuantizedFile, WithinUpstreamErrorAwayFromRoutingTies) {
    const auto& [name, type] = GetParam();
    auto q = load_model(test::gguf_path(name, type));
    ASSERT_TRUE(q.ok()) << q.message();
    auto f = load_model(test::gguf_path(name, "f32"));
    ASSERT_TRUE(f.ok()) << f.message();
    const auto toks = ref_tokens(name);
    const auto want = test::read_f32(test::model_dir(name) + "/ref_logits.f32");
    const Eval eq = evaluate(**q, toks), ef = evaluate(**f, toks);
    ASSERT_EQ(eq.logits.size(), want.size());

    const int T = int(toks.size()), V = (*q)->config.n_vocab;
    const test::Routing ref_routing{ef.trace.logits, ef.trace.selected};
    const test::RoutingFlips fl = test::find_flips(**f, eq.trace, ref_routing, T);
    const int n_flipped = fl.n_flipped, first_flip = fl.first_flip;
    const std::vector<float> got_kept = test::first_rows(eq.logits, first_flip, V),
                             want_kept = test::first_rows(want, first_flip, V);
    const double upstream = test::upstream_rms_rel(name, type);
    ASSERT_GT(upstream, 0);
    const double all = test::rms_rel(eq.logits, want), kept = test::rms_rel(got_kept, want_kept);
    RecordProperty("rms_rel_all_tokens", std::to_string(all));
    RecordProperty("flipped_tokens", n_flipped);
    std::printf("  %s-%s: rms_rel all=%.3e before-first-flip=%.3e upstream=%.3e flipped=%d\n",
                name.c_str(), type.c_str(), all, kept, upstream, n_flipped);
    const double bound = 1.1 * upstream + 1e-3;
    if (all <= bound) return;
    EXPECT_GT(n_flipped, 0) << "error above the bound without any routing flip";
    if (first_flip >= 4) {
        EXPECT_LE(kept, bound) << "error above the bound before the first flip";
    }
    for (int t = 0; t < T; ++t) {
        if (fl.flipped[size_t(t)]) {
            EXPECT_TRUE(fl.explained[size_t(t)])
                << name << "-" << type << ": token " << t
                << " flipped an expert choice by more than the file's own router error explains";
        }
    }
}

std::vector<FileCase> quantized_files() {
    std::vector<FileCase> v;
    for (const char* n : {"mixtral", "qwen2moe", "qwen3moe", "olmoe", "gptoss"})
        for (const char* t : {"f16", "bf16", "q8_0", "q4_k_m", "q4_0"}) v.push_back({n, t});
    for (const char* t : {"f16", "bf16", "q4_k_m"}) v.push_back({"deepseek3", t});
    v.push_back({"gptoss", "mxfp4_moe"});
    return v;
}

INSTANTIATE_TEST_SUITE_P(AllFamilies, QuantizedFile, testing::ValuesIn(quantized_files()),
                         [](const auto& i) { return i.param.name + "_" + i.param.type; });

// Dense llama's quantized files (no routing): the plain criterion on all tokens.
TEST(QuantizedDense, LlamaQ4Files) {
    for (const char* type : {"q4_k_m", "q4_0"}) {
        auto m = load_model(test::gguf_path("llama", type));
        ASSERT_TRUE(m.ok()) << m.message();
        const auto got = evaluate(**m, ref_tokens("llama")).logits;
        const auto want = test::read_f32(test::model_dir("llama") + "/ref_logits.f32");
        EXPECT_LE(test::rms_rel(got, want), 1.1 * test::upstream_rms_rel("llama", type) + 1e-3)
            << type;
    }
}

// HF folders give the same logits as the converter's f32 GGUF.
class HfFolder : public testing::TestWithParam<std::string> {};

TEST_P(HfFolder, SameLogitsAsF32Gguf) {
    const std::string name = GetParam();
    auto hf = load_model(test::model_dir(name));
    ASSERT_TRUE(hf.ok()) << hf.message();
    auto gg = load_model(test::gguf_path(name, "f32"));
    ASSERT_TRUE(gg.ok()) << gg.message();
    const auto toks = ref_tokens(name);
    EXPECT_LT(test::max_rel(evaluate(**hf, toks).logits, evaluate(**gg, toks).logits), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Families, HfFolder,
                         testing::Values("llama", "mixtral", "qwen2moe", "qwen3moe", "olmoe",
                                         "deepseek2", "deepseek3", "gptoss"));

// Router logits before top-k equal Hugging Face's where the fixture has them.
class RouterLogits : public testing::TestWithParam<std::string> {};

TEST_P(RouterLogits, MatchReference) {
    const std::string name = GetParam();
    // OLMoE: the reference model's epsilon (see OlmoeEpsilon below).
    std::vector<std::string> overrides;
    if (name == "olmoe") overrides.push_back("olmoe.attention.layer_norm_rms_epsilon=float:1e-6");
    auto src = open_model_source(test::gguf_path(name, "f32"), overrides);
    ASSERT_TRUE(src.ok()) << src.message();
    auto m = load_model(*src);
    ASSERT_TRUE(m.ok()) << m.message();
    const auto got = evaluate(**m, ref_tokens(name)).trace.logits;
    const auto want = test::read_f32(test::model_dir(name) + "/ref_router_logits.f32");
    ASSERT_EQ(got.size(), want.size());
    EXPECT_LT(test::max_rel(got, want), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Families, RouterLogits,
                         testing::Values("mixtral", "qwen2moe", "qwen3moe", "olmoe", "gptoss"));

// OLMoE: with the epsilon the reference model was built with (the converter wrote 1e-5), the f32
// file matches to the same 1e-4 as the other families.
TEST(OlmoeEpsilon, OverrideRestoresReferenceAccuracy) {
    auto src = open_model_source(test::gguf_path("olmoe", "f32"),
                                 {"olmoe.attention.layer_norm_rms_epsilon=float:1e-6"});
    ASSERT_TRUE(src.ok()) << src.message();
    auto m = load_model(*src);
    ASSERT_TRUE(m.ok()) << m.message();
    const auto want = test::read_f32(test::model_dir("olmoe") + "/ref_logits.f32");
    EXPECT_LT(test::max_rel(evaluate(**m, ref_tokens("olmoe")).logits, want), 1e-4);
}

TEST(OverrideKv, BadSpecsAreErrors) {
    for (const char* bad : {"novalue", "k=float", "k=flt:1", "k=int:abc", "k=bool:yes", "=int:1"})
        EXPECT_FALSE(parse_override(bad).ok()) << bad;
    auto ok = parse_override("a.b=int:-3");
    ASSERT_TRUE(ok.ok());
    EXPECT_EQ(ok->second.as_int(), -3);
}

}  // namespace
}  // namespace moe
