// OpenAI request bodies (chat completions, completions, tokenize, detokenize) parsed into
// validated structs. Pure functions: every failure is an ApiError naming the field as the API
// spells it (param "messages[1].role", "max_tokens", ...), never an exception.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/chat_template.h"
#include "runtime/sampler.h"
#include "server/api_error.h"

namespace moe::server {

// Upper bound on max_tokens before the model's context is known (the server also checks the
// context); anything above is "absurd" and refused.
constexpr int kMaxTokensLimit = 1 << 20;
constexpr int kMaxTopLogprobs = 20;
constexpr size_t kMaxStopStrings = 16;

// Fields chat and completions share.
struct GenerationFields {
    std::string model;              // "" when absent
    std::optional<int> max_tokens;  // absent: until the context is full
    SamplerParams sampling;         // OpenAI defaults: temperature 1, top_p 1, no top_k/min_p
    bool seed_given = false;
    std::vector<std::string> stop;
    int top_logprobs = -1;  // -1: no logprobs
    bool stream = false;
    bool include_usage = false;  // stream_options.include_usage
    bool ignore_eos = false;     // extension (as llama-server and vLLM): generate past EOS
    bool moe_routing = false;    // extension: per-token expert choices in every chunk (README)
};

struct ChatRequest : GenerationFields {
    std::vector<ChatMessage> messages;
    nlohmann::ordered_json template_kwargs = nlohmann::ordered_json::object();
};

struct CompletionRequest : GenerationFields {
    bool prompt_is_tokens = false;
    std::string prompt_text;
    std::vector<int32_t> prompt_tokens;  // as given (ids checked against the vocab later)
};

struct TokenizeRequest {
    std::string model;
    std::string content;
    bool add_special = false;  // BOS as the vocab says
    bool parse_special = true;
};

struct DetokenizeRequest {
    std::string model;
    std::vector<int32_t> tokens;
};

ApiResult<ChatRequest> parse_chat_request(std::string_view body);
ApiResult<CompletionRequest> parse_completion_request(std::string_view body);
ApiResult<TokenizeRequest> parse_tokenize_request(std::string_view body);
ApiResult<DetokenizeRequest> parse_detokenize_request(std::string_view body);

}  // namespace moe::server
