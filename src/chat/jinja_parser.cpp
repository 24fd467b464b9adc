#include "chat/jinja_parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "chat/jinja_lexer.h"

namespace moe::jinja {
namespace {

constexpr int kMaxDepth = 200;

using T = Token::Type;

bool is_keyword(const std::string& s) {
    static const char* kw[] = {"and", "or", "not", "in", "is", "if", "else", "recursive"};
    return std::any_of(std::begin(kw), std::end(kw), [&](const char* k) { return s == k; });
}

class Parser {
public:
    explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

    Program run() {
        Program p;
        std::string which;
        p.body = parse_body({}, &which, 0);
        return p;
    }

private:
    std::vector<Token> t_;
    size_t i_ = 0;
    int depth_ = 0;

    struct DepthGuard {
        int& d;
        DepthGuard(int& depth, size_t pos) : d(depth) {
            if (++d > kMaxDepth) throw JinjaError("template nested too deeply", pos);
        }
        ~DepthGuard() { --d; }
    };

    const Token& peek(size_t k = 0) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
    const Token& next() {
        const Token& t = t_[i_];
        if (i_ + 1 < t_.size()) ++i_;
        return t;
    }
    bool is_op(const char* op, size_t k = 0) const {
        return peek(k).type == T::Op && peek(k).text == op;
    }
    bool is_name(const char* n, size_t k = 0) const {
        return peek(k).type == T::Name && peek(k).text == n;
    }
    [[noreturn]] void fail(const std::string& msg, size_t pos) const { throw JinjaError(msg, pos); }
    std::string describe(const Token& t) const {
        switch (t.type) {
            case T::End: return "end of template";
            case T::ExprClose: return "'}}'";
            case T::StmtClose: return "'%}'";
            case T::Text: return "text";
            case T::String: return "string literal";
            default: return "'" + t.text + "'";
        }
    }
    void expect_op(const char* op) {
        if (!is_op(op)) fail(fmt::format("expected '{}', got {}", op, describe(peek())), peek().pos);
        next();
    }
    std::string expect_name() {
        if (peek().type != T::Name) fail(fmt::format("expected a name, got {}", describe(peek())), peek().pos);
        return next().text;
    }
    void expect_stmt_close() {
        if (peek().type != T::StmtClose)
            fail(fmt::format("expected '%}}', got {}", describe(peek())), peek().pos);
        next();
    }

    Body parse_body(const std::vector<std::string>& ends, std::string* which, size_t open_pos) {
        DepthGuard g(depth_, peek().pos);
        Body body;
        while (true) {
            const Token& tok = peek();
            if (tok.type == T::End) {
                if (!ends.empty())
                    fail(fmt::format("unexpected end of template: missing '{{% {} %}}' for the block "
                                     "opened here",
                                     ends.back()),
                         open_pos);
                return body;
            }
            if (tok.type == T::Text) {
                auto s = std::make_unique<Stmt>();
                s->kind = Stmt::Kind::Text;
                s->pos = tok.pos;
                s->text = tok.text;
                body.push_back(std::move(s));
                next();
            } else if (tok.type == T::ExprOpen) {
                auto s = std::make_unique<Stmt>();
                s->kind = Stmt::Kind::Output;
                s->pos = tok.pos;
                next();
                s->expr = parse_expression();
                if (peek().type != T::ExprClose)
                    fail(fmt::format("expected '}}}}', got {}", describe(peek())), peek().pos);
                next();
                body.push_back(std::move(s));
            } else if (tok.type == T::StmtOpen) {
                const Token& kw = peek(1);
                if (kw.type != T::Name) fail("expected a tag name after '{%'", kw.pos);
                if (std::find(ends.begin(), ends.end(), kw.text) != ends.end()) {
                    next();
                    next();
                    *which = kw.text;
                    return body;
                }
                const bool closer = kw.text.rfind("end", 0) == 0 || kw.text == "elif" ||
                                    kw.text == "else";
                if (closer && !ends.empty())
                    fail(fmt::format("unexpected '{{% {} %}}': expected '{{% {} %}}'", kw.text,
                                     ends.back()),
                         kw.pos);
                const size_t pos = tok.pos;
                next();
                body.push_back(parse_statement(pos));
            } else {
                fail(fmt::format("unexpected {}", describe(tok)), tok.pos);
            }
        }
    }

    StmtPtr parse_statement(size_t pos) {
        const Token kw = next();
        auto s = std::make_unique<Stmt>();
        s->pos = pos;
        const std::string& k = kw.text;
        std::string which;
        if (k == "if") {
            s->kind = Stmt::Kind::If;
            s->conds.push_back(parse_expression());
            expect_stmt_close();
            s->bodies.push_back(parse_body({"elif", "else", "endif"}, &which, pos));
            while (which == "elif") {
                s->conds.push_back(parse_expression());
                expect_stmt_close();
                s->bodies.push_back(parse_body({"elif", "else", "endif"}, &which, pos));
            }
            if (which == "else") {
                expect_stmt_close();
                s->else_body = parse_body({"endif"}, &which, pos);
            }
            expect_stmt_close();
        } else if (k == "for") {
            s->kind = Stmt::Kind::For;
            const bool paren = is_op("(");
            if (paren) next();
            s->targets.push_back(expect_name());
            while (is_op(",")) {
                next();
                s->targets.push_back(expect_name());
            }
            if (paren) expect_op(")");
            if (!is_name("in")) fail(fmt::format("expected 'in', got {}", describe(peek())), peek().pos);
            next();
            s->expr = parse_expression(false);
            if (is_name("if")) {
                next();
                s->cond = parse_expression(false);
            }
            if (is_name("recursive")) fail("recursive for loops are not supported", peek().pos);
            expect_stmt_close();
            s->body = parse_body({"else", "endfor"}, &which, pos);
            if (which == "else") {
                expect_stmt_close();
                s->else_body = parse_body({"endfor"}, &which, pos);
            }
            expect_stmt_close();
        } else if (k == "set") {
            s->text = expect_name();
            if (is_op(".")) {
                next();
                s->attr = expect_name();
            } else {
                s->targets.push_back(s->text);
                while (is_op(",")) {
                    next();
                    s->targets.push_back(expect_name());
                }
            }
            if (is_op("=")) {
                next();
                s->kind = Stmt::Kind::Set;
                s->expr = parse_tuple_or_expression();
                expect_stmt_close();
            } else {
                if (!s->attr.empty() || s->targets.size() != 1)
                    fail("expected '=' in set", peek().pos);
                s->kind = Stmt::Kind::SetBlock;
                if (is_op("|")) {
                    next();
                    s->filter = parse_filter_chain(nullptr);
                }
                expect_stmt_close();
                s->body = parse_body({"endset"}, &which, pos);
                expect_stmt_close();
            }
        } else if (k == "macro") {
            s->kind = Stmt::Kind::Macro;
            s->text = expect_name();
            expect_op("(");
            while (!is_op(")")) {
                MacroParam p;
                p.name = expect_name();
                if (is_op("=")) {
                    next();
                    p.default_value = parse_expression();
                }
                s->params.push_back(std::move(p));
                if (!is_op(",")) break;
                next();
            }
            expect_op(")");
            expect_stmt_close();
            s->body = parse_body({"endmacro"}, &which, pos);
            if (peek().type == T::Name) next();
            expect_stmt_close();
        } else if (k == "filter") {
            s->kind = Stmt::Kind::FilterBlock;
            s->filter = parse_filter_chain(nullptr);
            expect_stmt_close();
            s->body = parse_body({"endfilter"}, &which, pos);
            expect_stmt_close();
        } else if (k == "break" || k == "continue") {
            s->kind = k == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue;
            expect_stmt_close();
        } else if (k == "generation") {
            s->kind = Stmt::Kind::Block;
            expect_stmt_close();
            s->body = parse_body({"endgeneration"}, &which, pos);
            expect_stmt_close();
        } else if (k == "elif" || k == "else" || k.rfind("end", 0) == 0) {
            fail(fmt::format("unexpected '{{% {} %}}' with no open block", k), kw.pos);
        } else if (k == "include" || k == "import" || k == "extends" || k == "from" ||
                   k == "block" || k == "call" || k == "with" || k == "autoescape" || k == "do") {
            fail(fmt::format("unsupported tag '{}'", k), kw.pos);
        } else {
            fail(fmt::format("unknown tag '{}'", k), kw.pos);
        }
        return s;
    }

    ExprPtr make(Expr::Kind k, size_t pos) {
        auto e = std::make_unique<Expr>();
        e->kind = k;
        e->pos = pos;
        return e;
    }

    ExprPtr parse_tuple_or_expression() {
        const size_t pos = peek().pos;
        auto first = parse_expression();
        if (!is_op(",")) return first;
        auto t = make(Expr::Kind::Tuple, pos);
        t->args.push_back(std::move(first));
        while (is_op(",")) {
            next();
            t->args.push_back(parse_expression());
        }
        return t;
    }

    ExprPtr parse_expression(bool condexpr = true) {
        DepthGuard g(depth_, peek().pos);
        if (!condexpr) return parse_or();
        auto a = parse_or();
        while (is_name("if")) {
            const size_t pos = next().pos;
            auto t = make(Expr::Kind::Ternary, pos);
            t->a = parse_or();
            t->b = std::move(a);
            if (is_name("else")) {
                next();
                t->c = parse_expression();
            } else {
                t->c = make(Expr::Kind::Literal, pos);
            }
            a = finish(std::move(t));
        }
        return a;
    }

    ExprPtr binary(const std::string& op, ExprPtr l, ExprPtr r, size_t pos) {
        auto e = make(Expr::Kind::Binary, pos);
        e->name = op;
        e->a = std::move(l);
        e->b = std::move(r);
        return finish(std::move(e));
    }

    // Records the subtree height; left-deep chains (a+b+c..., a.b.c..., x|f|g...) are built by
    // loops, not recursion, so their height is bounded here.
    ExprPtr finish(ExprPtr e) {
        int d = 0;
        for (const Expr* c : {e->a.get(), e->b.get(), e->c.get()})
            if (c) d = std::max(d, c->depth);
        for (const auto& c : e->args)
            if (c) d = std::max(d, c->depth);
        for (const auto& [k, c] : e->kwargs) d = std::max(d, c->depth);
        e->depth = d + 1;
        if (e->depth > kMaxDepth) fail("expression nested too deeply", e->pos);
        return e;
    }

    ExprPtr parse_or() {
        auto a = parse_and();
        while (is_name("or")) {
            const size_t pos = next().pos;
            a = binary("or", std::move(a), parse_and(), pos);
        }
        return a;
    }

    ExprPtr parse_and() {
        auto a = parse_not();
        while (is_name("and")) {
            const size_t pos = next().pos;
            a = binary("and", std::move(a), parse_not(), pos);
        }
        return a;
    }

    ExprPtr parse_not() {
        if (is_name("not")) {
            DepthGuard g(depth_, peek().pos);
            auto e = make(Expr::Kind::Unary, next().pos);
            e->name = "not";
            e->a = parse_not();
            return finish(std::move(e));
        }
        return parse_compare();
    }

    ExprPtr parse_compare() {
        auto a = parse_math1();
        while (true) {
            const Token& t = peek();
            if (t.type == T::Op && (t.text == "==" || t.text == "!=" || t.text == "<" ||
                                    t.text == ">" || t.text == "<=" || t.text == ">=")) {
                const std::string op = t.text;
                const size_t pos = next().pos;
                a = binary(op, std::move(a), parse_math1(), pos);
            } else if (is_name("in")) {
                const size_t pos = next().pos;
                a = binary("in", std::move(a), parse_math1(), pos);
            } else if (is_name("not") && is_name("in", 1)) {
                const size_t pos = next().pos;
                next();
                a = binary("not in", std::move(a), parse_math1(), pos);
            } else {
                return a;
            }
        }
    }

    ExprPtr parse_math1() {
        auto a = parse_concat();
        while (is_op("+") || is_op("-")) {
            const std::string op = peek().text;
            const size_t pos = next().pos;
            a = binary(op, std::move(a), parse_concat(), pos);
        }
        return a;
    }

    ExprPtr parse_concat() {
        auto a = parse_math2();
        while (is_op("~")) {
            const size_t pos = next().pos;
            a = binary("~", std::move(a), parse_math2(), pos);
        }
        return a;
    }

    ExprPtr parse_math2() {
        auto a = parse_pow();
        while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
            const std::string op = peek().text;
            const size_t pos = next().pos;
            a = binary(op, std::move(a), parse_pow(), pos);
        }
        return a;
    }

    ExprPtr parse_pow() {
        auto a = parse_unary(true);
        while (is_op("**")) {
            const size_t pos = next().pos;
            a = binary("**", std::move(a), parse_unary(true), pos);
        }
        return a;
    }

    ExprPtr parse_unary(bool with_filter) {
        DepthGuard g(depth_, peek().pos);
        ExprPtr e;
        if (is_op("-") || is_op("+")) {
            e = make(Expr::Kind::Unary, peek().pos);
            e->name = next().text;
            e->a = parse_unary(false);
            e = finish(std::move(e));
        } else {
            e = parse_primary();
        }
        e = parse_postfix(std::move(e));
        if (with_filter) {
            while (true) {
                if (is_op("|")) {
                    next();
                    e = parse_filter_chain(std::move(e));
                } else if (is_name("is")) {
                    e = parse_test(std::move(e));
                } else {
                    break;
                }
                e = parse_postfix(std::move(e));
            }
        }
        return e;
    }

    // One filter (after '|') and any further '|' filters.
    ExprPtr parse_filter_chain(ExprPtr input) {
        const size_t pos = peek().pos;
        auto f = make(Expr::Kind::Filter, pos);
        f->name = expect_name();
        f->a = std::move(input);
        if (is_op("(")) parse_call_args(*f);
        f = finish(std::move(f));
        while (is_op("|")) {
            next();
            auto g2 = make(Expr::Kind::Filter, peek().pos);
            g2->name = expect_name();
            g2->a = std::move(f);
            if (is_op("(")) parse_call_args(*g2);
            f = finish(std::move(g2));
        }
        return f;
    }

    ExprPtr parse_test(ExprPtr input) {
        const size_t pos = next().pos;  // 'is'
        auto t = make(Expr::Kind::Test, pos);
        if (is_name("not")) {
            next();
            t->negated = true;
        }
        t->name = expect_name();
        t->a = std::move(input);
        if (is_op("(")) {
            parse_call_args(*t);
        } else {
            const Token& n = peek();
            if (n.type == T::String || n.type == T::Int || n.type == T::Float ||
                (n.type == T::Name && !is_keyword(n.text)))
                t->args.push_back(parse_postfix(parse_primary()));
        }
        return finish(std::move(t));
    }

    void parse_call_args(Expr& e) {
        expect_op("(");
        while (!is_op(")")) {
            if (peek().type == T::Name && is_op("=", 1)) {
                std::string name = next().text;
                next();
                e.kwargs.emplace_back(std::move(name), parse_expression());
            } else {
                if (!e.kwargs.empty()) fail("positional argument after keyword argument", peek().pos);
                e.args.push_back(parse_expression());
            }
            if (!is_op(",")) break;
            next();
        }
        expect_op(")");
    }

    ExprPtr parse_postfix(ExprPtr e) {
        while (true) {
            if (is_op(".")) {
                const size_t pos = next().pos;
                if (peek().type == T::Int) {
                    auto ix = make(Expr::Kind::Index, pos);
                    auto lit = make(Expr::Kind::Literal, pos);
                    lit->value = Value(int64_t(std::strtoll(next().text.c_str(), nullptr, 10)));
                    ix->a = std::move(e);
                    ix->b = std::move(lit);
                    e = finish(std::move(ix));
                    continue;
                }
                auto a = make(Expr::Kind::Attr, pos);
                a->name = expect_name();
                a->a = std::move(e);
                e = finish(std::move(a));
            } else if (is_op("[")) {
                const size_t pos = next().pos;
                ExprPtr parts[3];
                int n = 0;
                bool slice = false;
                while (true) {
                    if (!is_op(":") && !is_op("]")) parts[n] = parse_expression();
                    if (is_op(":")) {
                        if (n == 2) fail("too many ':' in slice", peek().pos);
                        slice = true;
                        next();
                        ++n;
                        continue;
                    }
                    break;
                }
                expect_op("]");
                if (slice) {
                    auto s = make(Expr::Kind::Slice, pos);
                    s->a = std::move(e);
                    for (auto& p : parts) s->args.push_back(std::move(p));
                    e = finish(std::move(s));
                } else {
                    if (!parts[0]) fail("empty subscript", pos);
                    auto ix = make(Expr::Kind::Index, pos);
                    ix->a = std::move(e);
                    ix->b = std::move(parts[0]);
                    e = finish(std::move(ix));
                }
            } else if (is_op("(")) {
                auto c = make(Expr::Kind::Call, peek().pos);
                c->a = std::move(e);
                parse_call_args(*c);
                e = finish(std::move(c));
            } else {
                return e;
            }
        }
    }

    ExprPtr parse_primary() {
        DepthGuard g(depth_, peek().pos);
        const Token& t = peek();
        const size_t pos = t.pos;
        switch (t.type) {
            case T::Name: {
                const std::string n = next().text;
                auto e = make(Expr::Kind::Literal, pos);
                if (n == "true" || n == "True") e->value = Value(true);
                else if (n == "false" || n == "False") e->value = Value(false);
                else if (n == "none" || n == "None") e->value = Value::none();
                else {
                    e->kind = Expr::Kind::Name;
                    e->name = n;
                }
                return e;
            }
            case T::String: {
                std::string s;
                while (peek().type == T::String) s += next().text;
                auto e = make(Expr::Kind::Literal, pos);
                e->value = Value(std::move(s));
                return e;
            }
            case T::Int: {
                auto e = make(Expr::Kind::Literal, pos);
                errno = 0;
                const long long v = std::strtoll(next().text.c_str(), nullptr, 10);
                if (errno == ERANGE) fail("integer literal out of range", pos);
                e->value = Value(int64_t(v));
                return e;
            }
            case T::Float: {
                auto e = make(Expr::Kind::Literal, pos);
                e->value = Value(std::strtod(next().text.c_str(), nullptr));
                return e;
            }
            case T::Op:
                if (t.text == "(") {
                    next();
                    auto tup = make(Expr::Kind::Tuple, pos);
                    if (is_op(")")) {
                        next();
                        return tup;
                    }
                    auto first = parse_expression();
                    if (!is_op(",")) {
                        expect_op(")");
                        return first;
                    }
                    tup->args.push_back(std::move(first));
                    while (is_op(",")) {
                        next();
                        if (is_op(")")) break;
                        tup->args.push_back(parse_expression());
                    }
                    expect_op(")");
                    return finish(std::move(tup));
                }
                if (t.text == "[") {
                    next();
                    auto l = make(Expr::Kind::List, pos);
                    while (!is_op("]")) {
                        l->args.push_back(parse_expression());
                        if (!is_op(",")) break;
                        next();
                    }
                    expect_op("]");
                    return finish(std::move(l));
                }
                if (t.text == "{") {
                    next();
                    auto d = make(Expr::Kind::Dict, pos);
                    while (!is_op("}")) {
                        d->args.push_back(parse_expression());
                        expect_op(":");
                        d->args.push_back(parse_expression());
                        if (!is_op(",")) break;
                        next();
                    }
                    expect_op("}");
                    return finish(std::move(d));
                }
                break;
            default: break;
        }
        fail(fmt::format("unexpected {} in expression", describe(t)), t.pos);
    }
};

}  // namespace

Program parse(const std::string& src) { return Parser(lex(src)).run(); }

}  // namespace moe::jinja
