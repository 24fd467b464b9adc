// Parameter accounting (`inspect`): presets against the vendors' published totals and active
// counts, files against the sum of their tensors and the Hugging Face count, and the CLI contract.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "analysis/params.h"
#include "fixtures.h"
#include "formats/metadata_source.h"
#include "models/model.h"
#include "models/presets.h"
#include "models/synth.h"
#include "runtime/session.h"
#include "subprocess.h"

namespace moe {
namespace {

TEST(Params, ClassifiesTensorNames) {
    EXPECT_EQ(classify_tensor("token_embd.weight"), ParamRole::Embedding);
    EXPECT_EQ(classify_tensor("output.weight"), ParamRole::Output);
    EXPECT_EQ(classify_tensor("output_norm.weight"), ParamRole::Small);
    EXPECT_EQ(classify_tensor("blk.0.attn_q.weight"), ParamRole::Attention);
    EXPECT_EQ(classify_tensor("blk.0.attn_kv_a_mqa.weight"), ParamRole::Attention);
    EXPECT_EQ(classify_tensor("blk.0.attn_k_b.weight"), ParamRole::Attention);
    EXPECT_EQ(classify_tensor("blk.0.attn_q.bias"), ParamRole::Small);
    EXPECT_EQ(classify_tensor("blk.0.attn_q_a_norm.weight"), ParamRole::Small);
    EXPECT_EQ(classify_tensor("blk.0.attn_sinks.weight"), ParamRole::Small);
    EXPECT_EQ(classify_tensor("blk.1.ffn_gate_exps.weight"), ParamRole::RoutedExperts);
    EXPECT_EQ(classify_tensor("blk.1.ffn_down_exps.bias"), ParamRole::RoutedExperts);
    EXPECT_EQ(classify_tensor("blk.1.ffn_gate.3.weight"), ParamRole::RoutedExperts);
    EXPECT_EQ(classify_tensor("blk.1.ffn_up_shexp.weight"), ParamRole::SharedExperts);
    EXPECT_EQ(classify_tensor("blk.1.ffn_gate_inp_shexp.weight"), ParamRole::Small);
    EXPECT_EQ(classify_tensor("blk.1.ffn_gate_inp.weight"), ParamRole::Small);
    EXPECT_EQ(classify_tensor("blk.1.exp_probs_b.bias"), ParamRole::Small);
    EXPECT_EQ(classify_tensor("blk.0.ffn_down.weight"), ParamRole::DenseFfn);
    EXPECT_EQ(tensor_layer("blk.12.ffn_up.weight"), 12);
    EXPECT_EQ(tensor_layer("token_embd.weight"), -1);
}

TEST(Params, PresetsMatchPublishedFigures) {
    int checked = 0;
    for (const Preset& p : presets()) {
        if (p.published_total_b <= 0) continue;
        auto m = plan_model(preset_source(p));
        ASSERT_TRUE(m.ok()) << p.name << ": " << m.message();
        auto r = count_planned_params(**m, p.tied_embeddings, published_storage(p.arch));
        ASSERT_TRUE(r.ok()) << r.message();
        const double total = double(r->total) / 1e9, active = double(r->active()) / 1e9;
        const double incl = double(r->active_incl_embd) / 1e9,
                     excl = double(r->active_excl_embd) / 1e9;
        std::printf(
            "  %-22s total %8.3fB (pub %6.1fB, %+5.1f%%)  active %7.3fB (pub %5.1fB, "
            "%+5.1f%%)  [incl embd %.3fB, excl %.3fB]\n",
            p.name.c_str(), total, p.published_total_b, (total / p.published_total_b - 1) * 100,
            active, p.published_active_b, (active / p.published_active_b - 1) * 100, incl, excl);
        EXPECT_NEAR(total / p.published_total_b, 1.0, 0.025) << p.name << " total";
        if (p.published_active_b > 0)
            EXPECT_NEAR(active / p.published_active_b, 1.0, 0.025) << p.name << " active";
        EXPECT_LE(r->active_excl_embd, r->active_incl_embd);
        EXPECT_LE(r->active(), r->total);
        if ((*m)->config.moe.n_expert > 0) EXPECT_LT(r->active(), r->total);
        ++checked;
    }
    EXPECT_GE(checked, 1);
}

TEST(Params, PublishedStorageOfGptOssKeepsExpertsInMxfp4) {
    const StoragePolicy p = published_storage("gpt-oss");
    ASSERT_TRUE(p.expert_type.has_value());
    EXPECT_EQ(*p.expert_type, DType::MXFP4);
    EXPECT_EQ(published_storage("qwen3moe").matrix_type, DType::BF16);
    EXPECT_TRUE(publisher_counts_embedding("qwen3moe"));
    EXPECT_FALSE(publisher_counts_embedding("gpt-oss"));
    EXPECT_FALSE(publisher_counts_embedding("deepseek2"));
}

class ParamsOfFile : public testing::TestWithParam<std::string> {};

// The total of a file is the sum of its tensors' elements, equal to the Hugging Face count of
// these untied models; the plan of the same metadata counts the same; active follows top-k.
TEST_P(ParamsOfFile, TotalIsSumOfTensorsAndHfCount) {
    const std::string name = GetParam();
    auto src = open_model_source(test::gguf_path(name, "f32"));
    ASSERT_TRUE(src.ok()) << src.message();
    auto model = load_model(*src);
    ASSERT_TRUE(model.ok()) << model.message();
    const ModelConfig& c = (*model)->config;
    const ParamReport r = count_source_params(**src, c);
    int64_t sum = 0;
    uint64_t bytes = 0;
    for (const auto& n : (*src)->tensor_names()) {
        sum += (*src)->tensor(n)->shape.numel();
        bytes += uint64_t((*src)->tensor(n)->nbytes());
    }
    EXPECT_EQ(r.total, sum);
    EXPECT_EQ(r.weight_bytes, bytes);
    // DeepSeek-V3's selection bias (exp_probs_b) is a registered buffer in HF, not a parameter.
    int64_t buffers = 0;
    for (const auto& t : r.tensors)
        if (t.name.find("exp_probs_b") != std::string::npos) buffers += t.numel;
    EXPECT_EQ(r.total - buffers, test::load_ref(name)["n_params"].get<int64_t>());
    EXPECT_FALSE(r.tied_embeddings);
    int64_t role_sum = 0;
    for (const auto& rc : r.roles) role_sum += rc.total;
    EXPECT_EQ(role_sum, r.total);

    // Active = all but routed experts + k/E of them; the embedding convention differs by one table.
    const auto& routed = r.role(ParamRole::RoutedExperts);
    if (c.moe.n_expert > 0) {
        EXPECT_GT(routed.total, 0);
        EXPECT_EQ(routed.active * c.moe.n_expert, routed.total * c.moe.n_expert_used);
    }
    EXPECT_EQ(r.active_incl_embd, r.total - routed.total + routed.active);
    EXPECT_EQ(r.active_incl_embd - r.active_excl_embd, r.role(ParamRole::Embedding).total);
    EXPECT_EQ(r.role(ParamRole::Embedding).total, int64_t(c.n_vocab) * c.n_embd);
    if (c.n_moe_layers() < c.n_layer) EXPECT_GT(r.role(ParamRole::DenseFfn).total, 0);
    if (c.moe.n_ff_shexp > 0) EXPECT_GT(r.role(ParamRole::SharedExperts).total, 0);

    // The plan of the metadata alone counts exactly the same tensors.
    auto planned = plan_model(std::make_shared<MetadataSource>("meta", (*src)->metadata()));
    ASSERT_TRUE(planned.ok()) << planned.message();
    auto pr = count_planned_params(**planned, false, StoragePolicy{DType::F32, std::nullopt});
    ASSERT_TRUE(pr.ok()) << pr.message();
    EXPECT_EQ(pr->total, r.total);
    EXPECT_EQ(pr->active_incl_embd, r.active_incl_embd);
    EXPECT_EQ(pr->weight_bytes, r.weight_bytes);  // all f32

    // The KV estimate is what a session allocates.
    SessionOptions so;
    so.n_ctx = 64;
    so.n_threads = 1;
    Session s(**model, so);
    EXPECT_EQ(kv_cache_bytes(c, 64, {}), s.kv_bytes());
}

INSTANTIATE_TEST_SUITE_P(Families, ParamsOfFile,
                         testing::Values("llama", "mixtral", "qwen2moe", "qwen3moe", "olmoe",
                                         "deepseek2", "deepseek3", "gptoss"));

TEST(Params, QuantizedFileBitsPerWeight) {
    auto src = open_model_source(test::gguf_path("mixtral-wide", "q4_k_m"));
    ASSERT_TRUE(src.ok()) << src.message();
    auto m = plan_model(std::make_shared<MetadataSource>("meta", (*src)->metadata()));
    ASSERT_TRUE(m.ok()) << m.message();
    const ParamReport r = count_source_params(**src, (*m)->config);
    EXPECT_GT(r.types.size(), 1u);
    EXPECT_GT(r.bits_per_weight(), 4.0);
    EXPECT_LT(r.bits_per_weight(), 8.0);
    EXPECT_LE(r.weight_bytes, (*src)->file_bytes());
    for (const auto& t : r.types)
        if (t.dtype == DType::Q4_K) EXPECT_NEAR(t.bits_per_weight(), 4.5, 1e-9);
}

TEST(InspectCli, JsonOfFileAndPreset) {
    auto r = test::run_moeinfer("inspect " + test::gguf_path("qwen2moe", "f32") +
                                " --json -c 128 --vram 1");
    ASSERT_EQ(r.code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["total_params"].get<int64_t>(),
              test::load_ref("qwen2moe")["n_params"].get<int64_t>());
    EXPECT_LT(j["active_params"].get<int64_t>(), j["total_params"].get<int64_t>());
    EXPECT_TRUE(j["breakdown"].contains("routed_experts"));
    EXPECT_TRUE(j["breakdown"].contains("shared_experts"));
    EXPECT_TRUE(j["memory"]["vram"]["fits"].get<bool>());

    const Preset& p = presets().front();
    r = test::run_moeinfer("inspect --like " + p.name + " --json");
    ASSERT_EQ(r.code, 0) << r.err;
    j = nlohmann::json::parse(r.out);
    EXPECT_GT(j["total_params"].get<int64_t>(), 0);
    EXPECT_GT(j["active_params"].get<int64_t>(), 0);
    EXPECT_TRUE(j["total_params"].is_number_integer());
    EXPECT_TRUE(j["active_params"].is_number_integer());

    r = test::run_moeinfer("inspect --like " + p.name + " --type q8_0 -c 1024 --vram 0.001");
    ASSERT_EQ(r.code, 0) << r.all();
    EXPECT_NE(r.all().find("q8_0"), std::string::npos) << r.all();
    EXPECT_NE(r.all().find("does NOT fit"), std::string::npos) << r.all();
    EXPECT_NE(r.all().find("active per token"), std::string::npos) << r.all();
}

// --like with a file type counts the mix synth writes tensor by tensor (Q6_K output and ffn_down
// bumps, f32 routers): its weight bytes equal those of the file's own tensors as synth plans them,
// and differ from one tensor type for every matrix. (Checked once by hand against the written
// files: olmoe-1b-7b q4_k_m / q8_0, deepseek-v2-lite q4_k_m, gpt-oss-20b mxfp4_moe all equal.)
TEST(InspectCli, LikeWithAFileTypeCountsItsMix) {
    const Preset* p = find_preset("olmoe-1b-7b");
    ASSERT_NE(p, nullptr);
    const SynthFileType* ft = find_synth_file_type("q4_k_m");
    ASSERT_NE(ft, nullptr);
    auto tensors = synth_tensors(*p, *ft);
    ASSERT_TRUE(tensors.ok()) << tensors.message();
    uint64_t file_bytes = 0;
    for (const SynthTensor& t : *tensors)
        file_bytes += uint64_t(t.shape.rows()) * uint64_t(dtype_row_bytes(t.dtype, t.shape.last()));

    auto r = test::run_moeinfer("inspect --like olmoe-1b-7b --type q4_k_m --json");
    ASSERT_EQ(r.code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["storage"], "q4_k_m");
    EXPECT_EQ(j["weight_bytes"].get<uint64_t>(), file_bytes);
    r = test::run_moeinfer("inspect --like olmoe-1b-7b --type q4_K --json");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_LT(nlohmann::json::parse(r.out)["weight_bytes"].get<uint64_t>(), file_bytes);
}

TEST(InspectCli, ErrorsAreOneLineAndNonZero) {
    for (const std::string& args :
         {std::string("inspect /nonexistent.gguf"), std::string("inspect"),
          std::string("inspect --like no-such-preset"),
          "inspect --like " + presets().front().name + " --type q9_z",
          "inspect " + test::gguf_path("llama", "f32") + " --type bf16",
          "inspect " + test::fixtures_dir() + "/README.md"}) {
        const auto r = test::run_moeinfer(args);
        test::expect_one_error_line(r, args);
    }
}

}  // namespace
}  // namespace moe
