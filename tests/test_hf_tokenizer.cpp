// Tokenizers of Hugging Face folders (tokenizer.json) against the ids Hugging Face produced.
#include <gtest/gtest.h>

#include "fixtures.h"
#include "tokenizer/tokenizer.h"

namespace moe {
namespace {

class HfTokenizer : public testing::TestWithParam<std::string> {};

TEST_P(HfTokenizer, TextPromptGivesReferenceIds) {
    const std::string name = GetParam();
    auto src = open_model_source(test::model_dir(name));
    ASSERT_TRUE(src.ok()) << src.message();
    auto tok = Tokenizer::from_source(**src);
    ASSERT_TRUE(tok.ok()) << tok.message();
    const auto ref = test::load_ref(name);
    const auto text = ref["text_prompt"].get<std::string>();
    const auto want = ref["text_prompt_ids"].get<std::vector<int32_t>>();
    ASSERT_FALSE(want.empty());
    EXPECT_EQ((*tok)->encode(text, false, false), want);
    EXPECT_EQ((*tok)->decode(want), text);
    EXPECT_EQ((*tok)->bos(), 1);  // "<s>" in these fixtures' tokenizer_config.json
    EXPECT_EQ((*tok)->eos(), 2);
}

INSTANTIATE_TEST_SUITE_P(Families, HfTokenizer,
                         testing::Values("qwen2moe", "qwen3moe", "olmoe", "deepseek2", "deepseek3",
                                         "gptoss"));

}  // namespace
}  // namespace moe
