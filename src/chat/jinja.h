// A Jinja interpreter for the subset of Jinja2 that chat templates use, configured like
// Hugging Face's apply_chat_template (trim_blocks, lstrip_blocks, loop controls, tojson without
// key sorting, raise_exception, strftime_now). Errors never throw: they come back as Result with
// the template line and column.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

#include "chat/jinja_budget.h"
#include "chat/jinja_value.h"
#include "core/result.h"

namespace moe::jinja {

struct Program;

class Template {
public:
    // Lexes, parses and checks filter/test names.
    static Result<Template> parse(const std::string& source);

    // Renders with `context` (a dict: messages, add_generation_prompt, bos_token, ...). Context
    // entries override the built-in functions of the same name (e.g. strftime_now in tests).
    // Exceeding `limits` (output, value sizes, steps, recursion) is a render error.
    Result<std::string> render(const Value& context) const;
    Result<std::string> render(const Value& context, const RenderLimits& limits) const;

    const std::string& source() const { return *src_; }

private:
    std::shared_ptr<const std::string> src_;
    std::shared_ptr<const Program> prog_;
};

// Converts JSON (tool definitions, extra context) to interpreter values, keeping key order.
Value from_json(const nlohmann::ordered_json& j);

}  // namespace moe::jinja
