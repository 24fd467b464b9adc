// libFuzzer target: the Jinja lexer, parser and renderer on arbitrary template text, with a
// conversation in the context and a small render budget (so every input ends quickly).
#include <cstddef>
#include <cstdint>
#include <string>

#include "chat/jinja.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const moe::jinja::Value ctx = moe::jinja::from_json(nlohmann::ordered_json::parse(R"({
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <b>"},
                     {"role": "assistant", "content": "Hello", "tool_calls": [{"name": "f", "arguments": {"x": 1}}]},
                     {"role": "user", "content": "2+2?"}],
        "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>",
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]})"));
    moe::jinja::RenderLimits limits;
    limits.max_output = 1 << 20;
    limits.max_value = 1 << 20;
    limits.max_alloc = 32 << 20;
    limits.max_steps = 200'000;
    auto t = moe::jinja::Template::parse(std::string(reinterpret_cast<const char*>(data), size));
    if (!t) return 0;
    (void)t->render(ctx, limits);
    return 0;
}
