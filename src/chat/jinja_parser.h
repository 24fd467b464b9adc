// Jinja parser: tokens -> syntax tree. Recursive descent following Jinja's own precedence
// (filters and tests bind tighter than arithmetic; `not` looser than comparisons).
#pragma once

#include <string>

#include "chat/jinja_ast.h"

namespace moe::jinja {

// Throws JinjaError (with the byte offset) on a syntax error or too deep nesting.
Program parse(const std::string& src);

}  // namespace moe::jinja
