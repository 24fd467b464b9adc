// Llama 3.x RoPE frequency scaling: the rope_freqs tensor of GGUF files and rope_type "llama3" of
// HF configs, against the llama3rope fixture (float64 reference of an independent forward) and,
// for other token sequences, against the upstream engine's logits
// (tests/data/llama3rope_upstream.*, made by ../shared/peers/llama.cpp/upstream_logits; the json
// says how). Plus the errors for scalings and tensors moeinfer does not know.
#include <gtest/gtest.h>

#include <filesystem>

#include "fixtures.h"
#include "formats/model_source.h"
#include "gguf_rewrite.h"
#include "hf_folder_writer.h"
#include "models/model.h"
#include "runtime/sampler.h"
#include "runtime/session.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

const std::string kGguf = test::gguf_path("llama3rope", "f32");
const std::string kHf = test::model_dir("llama3rope");

std::vector<float> logits_of(const Model& m, const std::vector<int32_t>& toks) {
    SessionOptions so;
    so.n_threads = 2;
    so.n_ctx = 128;
    Session s(m, so);
    auto r = s.eval_tokens(toks, /*all_logits=*/true);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.message());
    return r.ok() ? *r : std::vector<float>{};
}

class Llama3Rope : public testing::TestWithParam<std::string> {};

TEST_P(Llama3Rope, MatchesFloat64Reference) {
    auto m = load_model(GetParam());
    ASSERT_TRUE(m.ok()) << m.message();
    const auto ref = test::load_ref("llama3rope");
    const auto want = test::read_f32(kHf + "/ref_logits.f32");
    const auto got = logits_of(**m, ref["tokens"].get<std::vector<int32_t>>());
    ASSERT_EQ(got.size(), want.size());
    const double mr = test::max_rel(got, want);
    RecordProperty("max_rel", std::to_string(mr));
    std::printf("[ llama3   ] %s: max_rel %.2e\n", GetParam().c_str(), mr);
    EXPECT_LT(mr, 1e-5);
}

// Teacher-forced greedy sequence with the KV cache, as for the other fixtures.
TEST_P(Llama3Rope, GreedySequenceReproduced) {
    auto m = load_model(GetParam());
    ASSERT_TRUE(m.ok()) << m.message();
    const auto ref = test::load_ref("llama3rope");
    const auto prompt = ref["greedy_prompt"].get<std::vector<int32_t>>();
    const auto seq = ref["greedy_sequence"].get<std::vector<int32_t>>();
    const auto margin = ref["greedy_top1_margin"].get<std::vector<double>>();
    Session s(**m, SessionOptions{});
    auto r = s.eval_tokens(prompt, false);
    ASSERT_TRUE(r.ok()) << r.message();
    int checked = 0;
    for (size_t i = prompt.size(); i < seq.size(); ++i) {
        if (margin[i - prompt.size()] > 1e-3) {
            EXPECT_EQ(argmax(r->data(), (*m)->config.n_vocab), seq[i]) << "step " << i;
            ++checked;
        }
        const int32_t one[1] = {seq[i]};
        r = s.eval_tokens(one, false);
        ASSERT_TRUE(r.ok()) << r.message();
    }
    EXPECT_GT(checked, 10);
}

// Sequences of 64 and 40 tokens (positions past original_max_position_embeddings = 32) against
// the upstream engine's f32-KV logits (which are at 6e-7 of the float64 reference on the
// fixture's own tokens).
TEST_P(Llama3Rope, OtherSequencesMatchUpstream) {
    auto m = load_model(GetParam());
    ASSERT_TRUE(m.ok()) << m.message();
    const std::string data = std::string(MOE_SOURCE_DIR) + "/tests/data/llama3rope_upstream";
    std::ifstream jf(data + ".json");
    const auto meta = nlohmann::json::parse(jf);
    const auto all = test::read_f32(data + ".f32");
    const int V = (*m)->config.n_vocab;
    size_t row = 0;
    for (const auto& sq : meta["sequences"]) {
        const auto toks = sq["tokens"].get<std::vector<int32_t>>();
        const auto got = logits_of(**m, toks);
        ASSERT_EQ(got.size(), toks.size() * size_t(V));
        std::vector<float> g, w;
        for (int p : sq["rows"].get<std::vector<int>>()) {
            g.insert(g.end(), got.begin() + int64_t(p) * V, got.begin() + int64_t(p + 1) * V);
            ASSERT_LE((row + 1) * size_t(V), all.size());
            w.insert(w.end(), all.begin() + int64_t(row) * V, all.begin() + int64_t(row + 1) * V);
            ++row;
        }
        const double mr = test::max_rel(g, w);
        std::printf("[ llama3   ] %s, %zu tokens: max_rel %.2e vs upstream\n", GetParam().c_str(),
                    toks.size(), mr);
        EXPECT_LT(mr, 1e-5) << toks.size() << " tokens";
    }
    EXPECT_EQ(row * size_t(V), all.size());
}

INSTANTIATE_TEST_SUITE_P(Files, Llama3Rope, testing::Values(kGguf, kHf),
                         [](const auto& i) { return i.index == 0 ? "gguf" : "hf"; });

// Both routes build the same per-frequency divisors (GGUF: the converter's f32 tensor; HF: the
// formula in double), and 15 of the 16 frequencies are scaled with this fixture's settings.
TEST(Llama3RopeConfig, GgufTensorAndHfFormulaAgree) {
    auto g = load_model(kGguf);
    auto h = load_model(kHf);
    ASSERT_TRUE(g.ok() && h.ok());
    const auto& dg = (*g)->config.attn[0].rope.freq_divisors;
    const auto& dh = (*h)->config.attn[1].rope.freq_divisors;
    ASSERT_EQ(dg.size(), 16u);
    ASSERT_EQ(dh.size(), 16u);
    int scaled = 0;
    for (size_t i = 0; i < dg.size(); ++i) {
        EXPECT_NEAR(dg[i], dh[i], 1e-6 * dh[i]) << i;
        scaled += dh[i] != 1.0;
    }
    EXPECT_EQ(scaled, 15);
}

TEST(Llama3RopeConfig, UnknownScalingTypeInConfigIsAnError) {
    test::ScratchDir dir("rope_type");
    auto cfg = test::read_json_file(kHf + "/config.json");
    cfg["rope_parameters"]["rope_type"] = "longrope";
    test::write_json_file(dir.path() / "config.json", cfg);
    fs::create_symlink(fs::absolute(kHf + "/model.safetensors"), dir.path() / "model.safetensors");
    auto src = open_model_source(dir.str());
    ASSERT_FALSE(src.ok());
    EXPECT_NE(src.message().find("rope scaling type 'longrope'"), std::string::npos)
        << src.message();
    EXPECT_NE(src.message().find("config.json"), std::string::npos) << src.message();
}

TEST(Llama3RopeConfig, UnknownScalingTypeInGgufIsAnError) {
    auto src = open_model_source(test::gguf_path("llama", "f32"));
    ASSERT_TRUE(src.ok());
    const std::string out = test::temp_path("rope_dynamic.gguf");
    ASSERT_TRUE(test::rewrite_gguf(
                    **src, out, {.kv = {{"llama.rope.scaling.type", test::str_value("dynamic")}}})
                    .ok());
    auto m = load_model(out);
    fs::remove(out);
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.message().find("'dynamic' is not supported"), std::string::npos) << m.message();
}

// A tensor no loader asks for may change the math (as rope_freqs does): refuse the file.
TEST(Llama3RopeConfig, UnknownExtraTensorIsAnError) {
    auto src = open_model_source(test::gguf_path("llama", "f32"));
    ASSERT_TRUE(src.ok());
    const std::string out = test::temp_path("extra_tensor.gguf");
    std::vector<uint8_t> four(16, 0);
    ASSERT_TRUE(
        test::rewrite_gguf(**src, out,
                           {.add = {{"blk.0.attn_rot_scale.weight", DType::F32, Shape{4}, four}}})
            .ok());
    auto m = load_model(out);
    fs::remove(out);
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.message().find("'blk.0.attn_rot_scale.weight'"), std::string::npos) << m.message();
}

TEST(Llama3RopeConfig, NonPositiveDivisorIsAnError) {
    auto src = open_model_source(test::gguf_path("llama", "f32"));
    ASSERT_TRUE(src.ok());
    const std::string out = test::temp_path("rope_freqs_zero.gguf");
    std::vector<float> div(16, 1.0f);
    div[3] = 0.0f;
    std::vector<uint8_t> bytes(64);
    std::memcpy(bytes.data(), div.data(), 64);
    ASSERT_TRUE(test::rewrite_gguf(**src, out,
                                   {.add = {{"rope_freqs.weight", DType::F32, Shape{16}, bytes}}})
                    .ok());
    auto m = load_model(out);
    fs::remove(out);
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.message().find("rope_freqs.weight'[3]"), std::string::npos) << m.message();
}

}  // namespace
}  // namespace moe
