// Syntax tree of a parsed Jinja template.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja_value.h"

namespace moe::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Expr {
    enum class Kind {
        Literal,   // value
        Name,      // name
        Attr,      // a.name
        Index,     // a[b]
        Slice,     // a[b:c:d] (null parts allowed)
        Call,      // a(args, kw)
        Filter,    // a | name(args, kw)
        Test,      // a is [not] name(args)
        Unary,     // op a   ("not", "-", "+")
        Binary,    // a op b
        Ternary,   // b if a else c  (a = condition)
        List,      // [args]
        Tuple,     // (args)
        Dict,      // {k: v} as pairs in args (k0, v0, k1, v1, ...)
    };
    Kind kind;
    size_t pos = 0;
    int depth = 1;     // height of this subtree (bounded by the parser)
    std::string name;  // Name, Attr, Filter, Test, Unary/Binary operator
    Value value;       // Literal
    bool negated = false;
    ExprPtr a, b, c;
    std::vector<ExprPtr> args;
    std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct MacroParam {
    std::string name;
    ExprPtr default_value;  // may be null
};

struct Stmt {
    enum class Kind {
        Text,      // text
        Output,    // {{ expr }}
        If,        // conds[i] -> bodies[i]; else_body
        For,       // targets in expr [if cond]: body else else_body
        Set,       // targets (or ns.attr) = expr
        SetBlock,  // {% set name %}body{% endset %}
        Macro,     // {% macro name(params) %}body{% endmacro %}
        FilterBlock,  // {% filter f %}body{% endfilter %}
        Break,
        Continue,
        Block,     // a plain body, e.g. {% generation %}
    };
    Kind kind;
    size_t pos = 0;
    std::string text;                  // Text; Set/SetBlock/Macro name
    std::string attr;                  // Set: ns.attr target
    std::vector<std::string> targets;  // For / Set tuple targets
    ExprPtr expr, cond;                // Output/Set/For iterable; For filter condition
    ExprPtr filter;                    // FilterBlock / SetBlock filter (a Filter expr on a null input)
    std::vector<ExprPtr> conds;        // If
    std::vector<Body> bodies;          // If
    Body body, else_body;
    std::vector<MacroParam> params;    // Macro
};

struct Program {
    Body body;
};

}  // namespace moe::jinja
