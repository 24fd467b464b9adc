// Metadata that is finite but invalid, or that disagrees with the tensors, must be refused with
// a message naming the key (and the tensor it disagrees with). Each case once loaded and gave
// all-NaN logits or silently ignored weights. The files are the shared fixtures, changed by
// --override-kv (GGUF) or an edited config.json (Hugging Face folders).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fixtures.h"
#include "formats/override_source.h"
#include "models/model.h"

namespace fs = std::filesystem;

namespace {

// The load error for `name`'s f32 GGUF with the overrides, or "" when it loads.
std::string gguf_error(const std::string& name, const std::vector<std::string>& overrides) {
    auto src = moe::open_model_source(moe::test::gguf_path(name, "f32"), overrides);
    if (!src) return src.message();
    auto m = moe::load_model(*src);
    return m ? std::string() : m.message();
}

// The load error for `name`'s HF folder with config.json values replaced by `patch`.
std::string hf_error(const std::string& name, const nlohmann::json& patch) {
    const fs::path dir = moe::test::temp_path("hf_" + name);
    fs::remove_all(dir);
    fs::create_directories(dir);
    const fs::path from = moe::test::model_dir(name);
    for (const auto& e : fs::directory_iterator(from))
        if (e.path().filename() != "config.json")
            fs::create_symlink(e.path(), dir / e.path().filename());
    nlohmann::json cfg = nlohmann::json::parse(std::ifstream(from / "config.json"));
    cfg.merge_patch(patch);
    std::ofstream(dir / "config.json") << cfg.dump();
    auto m = moe::load_model(dir.string());
    fs::remove_all(dir);
    return m ? std::string() : m.message();
}

bool has(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

TEST(HostileMetadata, FixturesStillLoad) {
    EXPECT_EQ(gguf_error("llama", {}), "");
    EXPECT_EQ(gguf_error("qwen2moe", {}), "");
    EXPECT_EQ(gguf_error("gptoss", {}), "");
    EXPECT_EQ(gguf_error("deepseek2", {}), "");
    EXPECT_EQ(hf_error("llama", nlohmann::json::object()), "");
}

TEST(HostileMetadata, NonPositiveEpsilonsAndRopeParametersAreRefused) {
    for (const char* v : {"0", "-1e-6"}) {
        const std::string e =
            gguf_error("llama", {std::string("llama.attention.layer_norm_rms_epsilon=float:") + v});
        EXPECT_TRUE(has(e, "llama.attention.layer_norm_rms_epsilon") && has(e, "greater than 0"))
            << e;
        const std::string r = gguf_error("llama", {std::string("llama.rope.freq_base=float:") + v});
        EXPECT_TRUE(has(r, "llama.rope.freq_base") && has(r, "greater than 0")) << r;
    }
    const std::string d = gguf_error("deepseek2", {"deepseek2.rope.freq_base=float:-5"});
    EXPECT_TRUE(has(d, "deepseek2.rope.freq_base")) << d;
    for (const char* key : {"gpt-oss.rope.scaling.yarn_beta_fast",
                            "gpt-oss.rope.scaling.yarn_beta_slow", "gpt-oss.rope.scaling.factor"}) {
        const std::string e = gguf_error("gptoss", {std::string(key) + "=float:0"});
        EXPECT_TRUE(has(e, key) && has(e, "greater than 0")) << key << ": " << e;
    }
}

TEST(HostileMetadata, HfConfigNonPositiveValuesAreRefused) {
    const std::string eps = hf_error("llama", {{"rms_norm_eps", 0.0}});
    EXPECT_TRUE(has(eps, "layer_norm_rms_epsilon") && has(eps, "greater than 0")) << eps;
    const std::string theta = hf_error("llama", {{"rope_parameters", {{"rope_theta", -1.0}}}});
    EXPECT_TRUE(has(theta, "rope.freq_base") && has(theta, "greater than 0")) << theta;
}

TEST(HostileMetadata, BlockCountSmallerThanTheLayersIsRefused) {
    const std::string e = gguf_error("llama", {"llama.block_count=int:1"});
    EXPECT_TRUE(has(e, "blk.1.") && has(e, "block_count is 1")) << e;
}

TEST(HostileMetadata, VocabSizeThatDisagreesWithTheEmbeddingIsRefused) {
    const std::string e = gguf_error("llama", {"llama.vocab_size=int:100"});
    EXPECT_TRUE(has(e, "vocab_size = 100") && has(e, "token_embd.weight has 512 rows")) << e;
    EXPECT_EQ(gguf_error("llama", {"llama.vocab_size=int:512"}), "");
}

TEST(HostileMetadata, ValueLengthZeroHugeOrDifferentIsRefused) {
    EXPECT_TRUE(has(gguf_error("llama", {"llama.attention.value_length=int:0"}), "value_length"));
    EXPECT_TRUE(
        has(gguf_error("llama", {"llama.attention.value_length=int:4000000000"}), "value_length"));
    const std::string e = gguf_error("llama", {"llama.attention.value_length=int:64"});
    EXPECT_TRUE(has(e, "value_length = 64") && has(e, "32")) << e;
    EXPECT_TRUE(
        has(gguf_error("deepseek2", {"deepseek2.attention.value_length=int:0"}), "value_length"));
}

TEST(HostileMetadata, SharedExpertTensorsWithoutASharedExpertAreRefused) {
    const std::string q =
        gguf_error("qwen2moe", {"qwen2moe.expert_shared_feed_forward_length=int:0"});
    EXPECT_TRUE(has(q, "_shexp") && has(q, "no shared expert")) << q;
    const std::string d = gguf_error("deepseek2", {"deepseek2.expert_shared_count=int:0"});
    EXPECT_TRUE(has(d, "_shexp") && has(d, "expert_shared_count")) << d;
}

}  // namespace
