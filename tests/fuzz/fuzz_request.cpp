// libFuzzer target: the server's request parsers on arbitrary bytes as the HTTP body of each
// endpoint (/v1/chat/completions, /v1/completions, /tokenize, /detokenize). Every body goes to
// all four parsers. An accepted request must satisfy what the handlers rely on (sampling values
// valid, limits in range); a refused one must be a 400 whose error body is valid JSON.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "server/openai_request.h"

namespace {

using namespace moe::server;

void check_refusal(const ApiError& e) {
    if (e.status != 400 || e.message.empty()) std::abort();
    // error_body replaces invalid UTF-8 (a field name echoed from the body) instead of throwing.
    const auto j = nlohmann::json::parse(error_body(e), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) std::abort();
}

void check_generation(const GenerationFields& g) {
    if (!g.sampling.validate()) std::abort();
    if (g.max_tokens && (*g.max_tokens < 1 || *g.max_tokens > kMaxTokensLimit)) std::abort();
    if (g.stop.size() > kMaxStopStrings) std::abort();
    for (const auto& s : g.stop)
        if (s.empty()) std::abort();
    if (g.top_logprobs < -1 || g.top_logprobs > kMaxTopLogprobs) std::abort();
    if (g.include_usage && !g.stream) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    if (auto r = parse_chat_request(body); r) {
        check_generation(*r);
        if (r->messages.empty() || !r->template_kwargs.is_object()) std::abort();
    } else {
        check_refusal(r.error());
    }
    if (auto r = parse_completion_request(body); r) {
        check_generation(*r);
        if (r->prompt_is_tokens == r->prompt_tokens.empty()) std::abort();
        for (int32_t t : r->prompt_tokens)
            if (t < 0) std::abort();
    } else {
        check_refusal(r.error());
    }
    if (auto r = parse_tokenize_request(body); !r) check_refusal(r.error());
    if (auto r = parse_detokenize_request(body); r) {
        for (int32_t t : r->tokens)
            if (t < 0) std::abort();
    } else {
        check_refusal(r.error());
    }
    return 0;
}
