// OpenAI response bodies in the exact shapes the API documents: chat.completion and its
// chat.completion.chunk stream pieces, text_completion (both forms), usage and logprobs.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "runtime/scheduler.h"

namespace moe::server {

using json = nlohmann::ordered_json;

struct ResponseMeta {
    std::string id;  // "chatcmpl-..." / "cmpl-..."
    std::string model;
    int64_t created = 0;  // unix seconds
};

struct Usage {
    int prompt = 0, completion = 0, cached = 0;
};

// Serializes with invalid UTF-8 (a token holding part of a character) replaced, never throwing.
std::string dump(const json& j);
// One server-sent event: "data: <json>\n\n".
std::string sse_data(const json& j);
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

const char* finish_reason_text(FinishReason f);  // "stop" or "length" (others: "stop")
json usage_json(const Usage& u);

// Chat: the choices[].logprobs.content entries of these tokens.
json chat_logprob_content(const std::vector<TokenEvent>& tokens);
// reasoning: nullopt leaves reasoning_content out.
json chat_completion(const ResponseMeta& m, const std::string& content,
                     const std::optional<std::string>& reasoning, const json& logprobs,
                     FinishReason finish, const Usage& u);
// delta: {"role": ..., "content": ..., "reasoning_content": ...}; finish: nullopt while running.
// with_usage: stream_options.include_usage, where every chunk carries "usage": null.
json chat_chunk(const ResponseMeta& m, const json& delta, const json& logprobs,
                std::optional<FinishReason> finish, bool with_usage);
// The last chunk when usage is included: no choices, the request's usage.
json usage_chunk(const ResponseMeta& m, const char* object, const Usage& u);

// Completions: {"tokens", "token_logprobs", "top_logprobs", "text_offset"}; offsets start at
// text_offset0 (bytes of text already returned).
json completion_logprobs(const std::vector<TokenEvent>& tokens, size_t text_offset0);
json text_completion(const ResponseMeta& m, const std::string& text, const json& logprobs,
                     std::optional<FinishReason> finish, const std::optional<Usage>& u,
                     bool with_usage_null);

// The "moe_routing" extension: one entry per generated token, in order,
// {"token": id, "layers": {"<model layer>": [[expert, weight], ...]}} with the k experts of each
// MoE layer best first. moe_layers[i] is the model layer of MoE layer i (TokenEvent::routing[i]).
json moe_routing_json(const std::vector<TokenEvent>& tokens, const std::vector<int>& moe_layers);

}  // namespace moe::server
