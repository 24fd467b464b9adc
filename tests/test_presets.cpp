// Presets: every real-model preset plans with its family loader, and its planned parameter count
// matches the vendor's published total.
#include <gtest/gtest.h>

#include "models/model.h"
#include "models/presets.h"

namespace moe {
namespace {

TEST(Presets, TableHasTheRequiredModels) {
    for (const char* n : {"mixtral-8x7b", "qwen1.5-moe-a2.7b", "qwen3-30b-a3b", "deepseek-v2-lite",
                          "deepseek-v3", "olmoe-1b-7b", "gpt-oss-20b", "llama-3-8b", "qwen2-57b-a14b",
                          "deepseek-v2"})
        EXPECT_NE(find_preset(n), nullptr) << n;
    EXPECT_EQ(find_preset("no-such-model"), nullptr);
    EXPECT_NE(preset_names().find("olmoe-1b-7b"), std::string::npos);
}

TEST(Presets, PlannedTotalsMatchPublishedFigures) {
    for (const auto& p : presets()) {
        auto m = plan_model(preset_source(p));
        ASSERT_TRUE(m.ok()) << p.name << ": " << m.message();
        const auto& plan = *(*m)->plan;
        ASSERT_FALSE(plan.empty()) << p.name;
        double total = 0;
        for (const auto& t : plan)
            if (t.required || (t.name == "output.weight" && !p.tied_embeddings))
                total += double(t.shape.numel());
        total *= 1e-9;
        EXPECT_NEAR(total / p.published_total_b, 1.0, 0.025)
            << p.name << ": planned " << total << " B, published " << p.published_total_b << " B";
        EXPECT_EQ((*m)->config.n_vocab, p.n_vocab) << p.name;
        EXPECT_GT(p.published_active_b, 0) << p.name;
        EXPECT_LE(p.published_active_b, p.published_total_b) << p.name;
    }
}

TEST(Presets, SourceCarriesAVocabulary) {
    const Preset* p = find_preset("olmoe-1b-7b");
    ASSERT_NE(p, nullptr);
    auto src = preset_source(*p);
    const gguf::Array* toks = src->get_array("tokenizer.ggml.tokens");
    ASSERT_NE(toks, nullptr);
    EXPECT_EQ(int64_t(toks->items.size()), p->n_vocab);
    EXPECT_EQ(src->get_string("tokenizer.ggml.model").value_or(""), "gpt2");
    EXPECT_EQ(src->get_int("general.quantization_version").value_or(0), 2);
}

}  // namespace
}  // namespace moe
