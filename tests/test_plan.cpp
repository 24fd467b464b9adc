// Plan mode: a family loader run on metadata alone lists exactly the tensors of a real file.
#include <gtest/gtest.h>

#include <set>

#include "fixtures.h"
#include "formats/metadata_source.h"
#include "models/model.h"

namespace moe {
namespace {

class PlanMatchesFile : public testing::TestWithParam<std::string> {};

TEST_P(PlanMatchesFile, SameTensorsAndShapes) {
    auto src = open_model_source(test::gguf_path(GetParam(), "f32"));
    ASSERT_TRUE(src.ok()) << src.message();
    auto meta = std::make_shared<MetadataSource>("meta", (*src)->metadata());
    auto plan = plan_model(meta);
    ASSERT_TRUE(plan.ok()) << plan.message();
    std::set<std::string> planned;
    for (const auto& p : *(*plan)->plan) {
        planned.insert(p.name);
        auto t = (*src)->tensor(p.name);
        if (!p.required && !t) continue;
        ASSERT_TRUE(t.has_value()) << p.name;
        // The whole shape: a transposed plan has the right element count but not this.
        EXPECT_EQ(t->shape, p.shape) << p.name << ": file " << t->shape.str() << ", plan "
                                     << p.shape.str();
    }
    for (const auto& n : (*src)->tensor_names()) EXPECT_TRUE(planned.count(n)) << n << " not planned";
}

INSTANTIATE_TEST_SUITE_P(Families, PlanMatchesFile,
                         testing::Values("llama", "mixtral", "qwen2moe", "qwen3moe", "olmoe",
                                         "deepseek2", "deepseek3", "gptoss"));

}  // namespace
}  // namespace moe
