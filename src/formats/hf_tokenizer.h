// Hugging Face tokenizer files (tokenizer.json, tokenizer_config.json, chat_template.jinja)
// adapted to the GGUF tokenizer keys (tokenizer.ggml.*, tokenizer.chat_template), the way the
// upstream converter stores them, so one tokenizer implementation serves both formats.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/result.h"
#include "gguf/gguf.h"

namespace moe {

// Appends the tokenizer keys for the folder `dir` to kv. A folder without tokenizer.json gets
// none (the model still loads; commands that need text say there is no tokenizer).
Result<void> append_hf_tokenizer(const std::string& dir,
                                 std::vector<std::pair<std::string, gguf::Value>>& kv);

}  // namespace moe
