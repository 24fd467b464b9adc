// Jinja lexer: splits a template into text and tag tokens, applying whitespace control the way
// Hugging Face configures Jinja for chat templates (trim_blocks, lstrip_blocks, `-` and `+`).
#pragma once

#include <string>
#include <vector>

namespace moe::jinja {

struct Token {
    enum class Type {
        Text,       // literal template text
        ExprOpen,   // {{
        ExprClose,  // }}
        StmtOpen,   // {%
        StmtClose,  // %}
        Name,
        String,     // value already unescaped
        Int,
        Float,
        Op,         // punctuation / operator
        End,
    };
    Type type;
    std::string text;
    size_t pos;  // byte offset in the template
};

// Throws JinjaError on unterminated tags, comments or strings.
std::vector<Token> lex(const std::string& src);

// "line L, column C" for a byte offset.
std::string describe_pos(const std::string& src, size_t pos);

}  // namespace moe::jinja
