// <think> splitting: the same result however the text is cut into stream pieces.
#include <gtest/gtest.h>

#include "server/reasoning.h"

namespace moe::server {
namespace {

struct Split {
    std::string reasoning, content;
};

Split run(const std::string& text, bool opens, size_t piece) {
    ReasoningSplitter sp(opens);
    Split out;
    for (size_t i = 0; i < text.size(); i += piece) {
        auto d = sp.feed(std::string_view(text).substr(i, piece));
        out.reasoning += d.reasoning;
        out.content += d.content;
    }
    auto d = sp.finish();
    out.reasoning += d.reasoning;
    out.content += d.content;
    return out;
}

void expect_split(const std::string& text, bool opens, const std::string& reasoning,
                  const std::string& content) {
    for (size_t piece : {size_t(1), size_t(2), size_t(3), size_t(7), text.size() + 1}) {
        const Split s = run(text, opens, piece);
        EXPECT_EQ(s.reasoning, reasoning) << text << " piece " << piece;
        EXPECT_EQ(s.content, content) << text << " piece " << piece;
    }
}

TEST(ServerReasoning, Qwen3Style) {
    expect_split("<think>\nLet me add.\n</think>\n\n4", false, "\nLet me add.\n", "4");
}

TEST(ServerReasoning, PromptAlreadyOpened) {
    // DeepSeek-R1 templates end the generation prompt with "<think>\n".
    expect_split("plan</think>answer", true, "plan", "answer");
    EXPECT_TRUE(prompt_opens_reasoning("<|Assistant|><think>\n"));
    EXPECT_FALSE(prompt_opens_reasoning("<|im_start|>assistant\n"));
    EXPECT_FALSE(prompt_opens_reasoning("<think>\n\n</think>\n\n"));  // thinking disabled
}

TEST(ServerReasoning, NoBlockIsAllContent) {
    expect_split("plain answer", false, "", "plain answer");
    expect_split("  <thin", false, "", "  <thin");  // a prefix of the tag at the end
    expect_split("a <think>b</think>", false, "", "a <think>b</think>");  // not at the start
    expect_split("", false, "", "");
}

TEST(ServerReasoning, UnclosedBlockIsReasoning) {
    expect_split("<think>still thinking </thi", false, "still thinking </thi", "");
}

TEST(ServerReasoning, EmptyBlock) {
    expect_split("<think>\n\n</think>\n\nHi", false, "\n\n", "Hi");
}

}  // namespace
}  // namespace moe::server
