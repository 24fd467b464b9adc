// Splits a thinking model's output into reasoning and answer: text inside <think>...</think>
// (Qwen3, DeepSeek-R1) becomes reasoning_content, the rest content, as llama-server and vLLM
// return it. Incremental: fed the text of a stream piece by piece, it holds back only a tail that
// may begin a tag, so stream deltas and the non-stream split agree.
#pragma once

#include <string>
#include <string_view>

namespace moe::server {

class ReasoningSplitter {
  public:
    struct Delta {
        std::string reasoning, content;
    };
    // starts_in_reasoning: the prompt already opened the block (a template whose generation
    // prompt ends with "<think>"), so the output begins inside it.
    explicit ReasoningSplitter(bool starts_in_reasoning);

    Delta feed(std::string_view text);
    Delta finish();  // releases what is held back

  private:
    enum class State { Start, Reasoning, AfterReasoning, Content };
    State state_;
    std::string buf_;
};

// True when a rendered prompt ends inside an open <think> block.
bool prompt_opens_reasoning(std::string_view prompt);

}  // namespace moe::server
