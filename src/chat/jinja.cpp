// The Jinja evaluator: walks the syntax tree with a stack of scopes.
#include "chat/jinja.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "chat/jinja_ast.h"
#include "chat/jinja_budget.h"
#include "chat/jinja_builtins.h"
#include "chat/jinja_lexer.h"
#include "chat/jinja_parser.h"

namespace moe::jinja {
namespace {

constexpr int kMaxCallDepth = 64;  // nested macro calls (the budget also bounds all recursion)

using Frame = std::unordered_map<std::string, Value>;

enum class Flow { Normal, Break, Continue };

void check_names(const Expr* e);

void check_body(const Body& body) {
    for (const auto& s : body) {
        check_names(s->expr.get());
        check_names(s->cond.get());
        check_names(s->filter.get());
        for (const auto& c : s->conds) check_names(c.get());
        for (const auto& b : s->bodies) check_body(b);
        for (const auto& p : s->params) check_names(p.default_value.get());
        check_body(s->body);
        check_body(s->else_body);
    }
}

void check_names(const Expr* e) {
    if (!e) return;
    if (e->kind == Expr::Kind::Filter && !is_known_filter(e->name))
        throw JinjaError(fmt::format("unknown filter '{}'", e->name), e->pos);
    if (e->kind == Expr::Kind::Test && !is_known_test(e->name))
        throw JinjaError(fmt::format("unknown test '{}'", e->name), e->pos);
    check_names(e->a.get());
    check_names(e->b.get());
    check_names(e->c.get());
    for (const auto& x : e->args) check_names(x.get());
    for (const auto& [k, x] : e->kwargs) check_names(x.get());
}

class Interp {
public:
    Interp(const Value& context) {
        auto builtins = std::make_shared<Frame>();
        Value g = Value::object();
        add_global_functions(g);
        for (auto& [k, v] : g.obj->items) (*builtins)[k] = v;
        auto ctx = std::make_shared<Frame>();
        if (context.is_object())
            for (const auto& [k, v] : context.obj->items) (*ctx)[k] = v;
        scopes_ = {builtins, ctx, std::make_shared<Frame>()};
    }

    void run(const Body& body, std::string& out) {
        const Flow f = exec(body, out);
        if (f != Flow::Normal) throw JinjaError("'break' or 'continue' outside a loop");
    }

private:
    std::vector<std::shared_ptr<Frame>> scopes_;
    int call_depth_ = 0;

    static void step(size_t pos) {
        try {
            budget_steps();
        } catch (const JinjaError& e) {
            throw JinjaError(e.what(), pos);
        }
    }

    static void append(std::string& out, const std::string& s, size_t pos) {
        const size_t limit = budget_limits().max_output;
        if (s.size() > limit || out.size() > limit - s.size())
            throw JinjaError(fmt::format("rendered text over the limit of {} bytes", limit), pos);
        out += s;
    }

    // A namespace may not hold itself (directly or through lists, dicts or functions, which may
    // capture it): the reference cycle would never be freed and printing it would not end.
    static bool may_hold(const Value& v, const Object* ns, int depth = 0) {
        if (depth > 64) return true;
        if (v.is_function()) return true;
        if (v.is_array())
            for (const Value& x : *v.arr)
                if (may_hold(x, ns, depth + 1)) return true;
        if (v.is_object()) {
            if (v.obj.get() == ns) return true;
            for (const auto& kv : v.obj->items)
                if (may_hold(kv.second, ns, depth + 1)) return true;
        }
        return false;
    }

    Value lookup(const std::string& name) const {
        for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
            auto f = (*it)->find(name);
            if (f != (*it)->end()) return f->second;
        }
        return Value::undefined(name);
    }

    void assign(const std::string& name, Value v) { (*scopes_.back())[name] = std::move(v); }

    void assign_targets(const std::vector<std::string>& targets, const Value& v, size_t pos) {
        if (targets.size() == 1) {
            assign(targets[0], v);
            return;
        }
        if (!v.is_array() || v.arr->size() != targets.size())
            throw JinjaError(fmt::format("cannot unpack {} into {} names", kind_name(v), targets.size()), pos);
        for (size_t k = 0; k < targets.size(); ++k) assign(targets[k], (*v.arr)[k]);
    }

    Flow exec(const Body& body, std::string& out) {
        for (const auto& s : body) {
            const Flow f = exec_one(*s, out);
            if (f != Flow::Normal) return f;
        }
        return Flow::Normal;
    }

    std::string render_body(const Body& body) {
        std::string tmp;
        const Flow f = exec(body, tmp);
        if (f != Flow::Normal) throw JinjaError("'break' or 'continue' outside a loop");
        return tmp;
    }

    Flow exec_one(const Stmt& s, std::string& out) {
        DepthGuard depth;
        switch (s.kind) {
            case Stmt::Kind::Text: append(out, s.text, s.pos); return Flow::Normal;
            case Stmt::Kind::Output: append(out, to_str(eval(*s.expr)), s.pos); return Flow::Normal;
            case Stmt::Kind::If:
                for (size_t k = 0; k < s.conds.size(); ++k)
                    if (eval(*s.conds[k]).truthy()) return exec(s.bodies[k], out);
                return exec(s.else_body, out);
            case Stmt::Kind::For: return exec_for(s, out);
            case Stmt::Kind::Set: {
                Value v = eval(*s.expr);
                if (!s.attr.empty()) {
                    Value ns = lookup(s.text);
                    if (!ns.is_object() || !ns.obj->is_namespace)
                        throw JinjaError(fmt::format("cannot set attribute '{}' of '{}': only "
                                                     "namespace() objects can be assigned to",
                                                     s.attr, s.text),
                                         s.pos);
                    if (may_hold(v, ns.obj.get()))
                        throw JinjaError(fmt::format("cannot store a function or '{}' itself in "
                                                     "namespace '{}'",
                                                     s.text, s.text),
                                         s.pos);
                    ns.set(s.attr, std::move(v));
                } else {
                    assign_targets(s.targets, v, s.pos);
                }
                return Flow::Normal;
            }
            case Stmt::Kind::SetBlock: {
                Value v(render_body(s.body));
                if (s.filter) v = apply_filter_expr(*s.filter, v);
                assign(s.text, std::move(v));
                return Flow::Normal;
            }
            case Stmt::Kind::Macro: assign(s.text, make_macro(s)); return Flow::Normal;
            case Stmt::Kind::FilterBlock:
                append(out, to_str(apply_filter_expr(*s.filter, Value(render_body(s.body)))), s.pos);
                return Flow::Normal;
            case Stmt::Kind::Break: return Flow::Break;
            case Stmt::Kind::Continue: return Flow::Continue;
            case Stmt::Kind::Block: return exec(s.body, out);
        }
        return Flow::Normal;
    }

    struct ScopeGuard {
        std::vector<std::shared_ptr<Frame>>& scopes;
        explicit ScopeGuard(std::vector<std::shared_ptr<Frame>>& s) : scopes(s) {
            scopes.push_back(std::make_shared<Frame>());
        }
        ~ScopeGuard() { scopes.pop_back(); }
    };

    Flow exec_for(const Stmt& s, std::string& out) {
        const Value iterable = eval(*s.expr);
        if (iterable.is_none()) throw JinjaError("cannot iterate over none", s.expr->pos);
        Array items;
        try {
            items = iterate(iterable);
        } catch (const JinjaError& e) {
            throw JinjaError(e.what(), s.expr->pos);
        }
        if (s.cond) {
            Array kept;
            for (const Value& item : items) {
                ScopeGuard g(scopes_);
                assign_targets(s.targets, item, s.pos);
                if (eval(*s.cond).truthy()) kept.push_back(item);
            }
            items = std::move(kept);
        }
        if (items.empty()) return exec(s.else_body, out);
        const int64_t n = int64_t(items.size());
        for (int64_t k = 0; k < n; ++k) {
            step(s.pos);
            ScopeGuard g(scopes_);
            assign_targets(s.targets, items[size_t(k)], s.pos);
            Value loop = Value::object();
            loop.set("index0", k);
            loop.set("index", k + 1);
            loop.set("revindex0", n - k - 1);
            loop.set("revindex", n - k);
            loop.set("first", k == 0);
            loop.set("last", k == n - 1);
            loop.set("length", n);
            loop.set("depth", int64_t(1));
            loop.set("depth0", int64_t(0));
            loop.set("previtem", k > 0 ? items[size_t(k - 1)] : Value::undefined("previtem"));
            loop.set("nextitem", k + 1 < n ? items[size_t(k + 1)] : Value::undefined("nextitem"));
            loop.set("cycle", Value::function([k](CallArgs& a) -> Value {
                if (a.pos.empty()) throw JinjaError("loop.cycle needs at least one argument");
                return a.pos[size_t(k) % a.pos.size()];
            }));
            assign("loop", loop);
            const Flow f = exec(s.body, out);
            if (f == Flow::Break) break;
        }
        return Flow::Normal;
    }

    Value make_macro(const Stmt& s) {
        const Stmt* def = &s;
        return Value::function([this, def](CallArgs& a) -> Value {
            if (call_depth_ >= kMaxCallDepth)
                throw JinjaError(fmt::format("macro '{}' recursion too deep", def->text), def->pos);
            step(def->pos);
            if (a.pos.size() > def->params.size())
                throw JinjaError(fmt::format("macro '{}' takes {} arguments, {} given", def->text,
                                             def->params.size(), a.pos.size()),
                                 def->pos);
            // Macros see the globals and the template's top-level names, not the caller's locals.
            std::vector<std::shared_ptr<Frame>> saved = scopes_;
            scopes_.resize(3);
            scopes_.push_back(std::make_shared<Frame>());
            ++call_depth_;
            struct Restore {
                Interp& in;
                std::vector<std::shared_ptr<Frame>>& saved;
                ~Restore() {
                    in.scopes_ = std::move(saved);
                    --in.call_depth_;
                }
            } restore{*this, saved};
            for (const auto& [k, v] : a.kw) {
                const bool known = std::any_of(def->params.begin(), def->params.end(),
                                               [&](const MacroParam& p) { return p.name == k; });
                if (!known)
                    throw JinjaError(fmt::format("macro '{}' has no parameter '{}'", def->text, k),
                                     def->pos);
            }
            for (size_t k = 0; k < def->params.size(); ++k) {
                const MacroParam& p = def->params[k];
                Value v = a.get(k, p.name);
                if (v.is_undefined() && p.default_value) v = eval(*p.default_value);
                assign(p.name, v);
            }
            return Value(render_body(def->body));
        });
    }

    Value apply_filter_expr(const Expr& f, const Value& input) {
        // f is a chain of Filter nodes whose innermost input is null (the block's text).
        Value in = !f.a ? input
                        : f.a->kind == Expr::Kind::Filter ? apply_filter_expr(*f.a, input)
                                                          : eval(*f.a);
        CallArgs args = eval_args(f);
        try {
            return apply_filter(f.name, in, args);
        } catch (const JinjaError& e) {
            throw JinjaError(e.what(), e.pos == std::string::npos ? f.pos : e.pos);
        }
    }

    CallArgs eval_args(const Expr& e) {
        CallArgs a;
        for (const auto& x : e.args) a.pos.push_back(eval(*x));
        for (const auto& [k, x] : e.kwargs) a.kw.emplace_back(k, eval(*x));
        return a;
    }

    [[noreturn]] static void undefined_error(const Value& v, size_t pos) {
        throw JinjaError(v.s.empty() ? std::string("value is undefined")
                                     : fmt::format("'{}' is undefined", v.s),
                         pos);
    }

    // Every evaluation is a step and a level of recursion; new values are charged by the bytes
    // their creation copied (names, attributes and items share lists and dicts, not strings).
    Value eval(const Expr& e) {
        try {
            DepthGuard depth;
            budget_steps();
            Value v = eval_inner(e);
            using K = Expr::Kind;
            const bool shared = e.kind == K::Name || e.kind == K::Attr || e.kind == K::Index ||
                                e.kind == K::Literal || e.kind == K::Filter;
            if (!shared) budget_charge(value_copy_bytes(v));
            else if (v.is_string() && e.kind != K::Filter) budget_charge(v.s.size());
            return v;
        } catch (const JinjaError& err) {
            if (err.pos != std::string::npos) throw;
            throw JinjaError(err.what(), e.pos);
        }
    }

    Value eval_inner(const Expr& e) {
        using K = Expr::Kind;
        switch (e.kind) {
            case K::Literal: return e.value;
            case K::Name: return lookup(e.name);
            case K::Attr: {
                const Value o = eval(*e.a);
                if (o.is_undefined()) undefined_error(o, e.pos);
                Value r = get_attr(o, e.name);
                if (r.is_undefined()) r.s = e.name;
                return r;
            }
            case K::Index: {
                const Value o = eval(*e.a);
                if (o.is_undefined()) undefined_error(o, e.pos);
                return get_item(o, eval(*e.b));
            }
            case K::Slice: {
                const Value o = eval(*e.a);
                Value parts[3];
                for (int k = 0; k < 3; ++k)
                    if (e.args[size_t(k)]) parts[k] = eval(*e.args[size_t(k)]);
                return slice(o, parts[0], parts[1], parts[2]);
            }
            case K::Call: {
                const Value f = eval(*e.a);
                if (f.is_undefined()) undefined_error(f, e.pos);
                if (!f.is_function())
                    throw JinjaError(fmt::format("a {} is not callable", kind_name(f)), e.pos);
                CallArgs a = eval_args(e);
                return (*f.fn)(a);
            }
            case K::Filter: return apply_filter_expr(e, Value());
            case K::Test: {
                const Value v = eval(*e.a);
                std::vector<Value> args;
                for (const auto& x : e.args) args.push_back(eval(*x));
                const bool r = apply_test(e.name, v, args);
                return e.negated ? !r : r;
            }
            case K::Unary: {
                const Value v = eval(*e.a);
                if (e.name == "not") return !v.truthy();
                if (v.kind == Value::Kind::Int) return e.name == "-" ? checked_neg(v.i) : v.i;
                if (v.kind == Value::Kind::Float) return e.name == "-" ? -v.f : v.f;
                if (v.kind == Value::Kind::Bool) return int64_t(e.name == "-" ? -int(v.b) : int(v.b));
                if (v.is_undefined()) undefined_error(v, e.pos);
                throw JinjaError(fmt::format("bad operand type for unary {}: {}", e.name, kind_name(v)), e.pos);
            }
            case K::Binary: return eval_binary(e);
            case K::Ternary: return eval(*e.a).truthy() ? eval(*e.b) : eval(*e.c);
            case K::List:
            case K::Tuple: {
                Array out;
                for (const auto& x : e.args) out.push_back(eval(*x));
                return Value(std::move(out));
            }
            case K::Dict: {
                Value d = Value::object();
                for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
                    const Value key = eval(*e.args[k]);
                    d.set(key.is_string() ? key.s : to_str(key), eval(*e.args[k + 1]));
                }
                return d;
            }
        }
        return Value();
    }

    Value eval_binary(const Expr& e) {
        const std::string& op = e.name;
        if (op == "and") {
            Value l = eval(*e.a);
            return l.truthy() ? eval(*e.b) : l;
        }
        if (op == "or") {
            Value l = eval(*e.a);
            return l.truthy() ? l : eval(*e.b);
        }
        const Value l = eval(*e.a), r = eval(*e.b);
        if (op == "==") return equals(l, r);
        if (op == "!=") return !equals(l, r);
        if (op == "in") return contains(r, l);
        if (op == "not in") return !contains(r, l);
        if (op == "<" || op == ">" || op == "<=" || op == ">=") {
            std::vector<Value> arg{r};
            return apply_test(op, l, arg);
        }
        if (op == "~") {
            std::string ls = to_str(l);
            const std::string rs = to_str(r);
            budget_check_size(uint64_t(ls.size()) + rs.size(), "string concatenation");
            return ls += rs;
        }
        if (l.is_undefined()) undefined_error(l, e.pos);
        if (r.is_undefined()) undefined_error(r, e.pos);
        const bool ln = l.is_number() || l.kind == Value::Kind::Bool;
        const bool rn = r.is_number() || r.kind == Value::Kind::Bool;
        const bool ints = ln && rn && l.kind != Value::Kind::Float && r.kind != Value::Kind::Float;
        auto ival = [](const Value& v) { return v.kind == Value::Kind::Bool ? int64_t(v.b) : v.i; };
        if (op == "+") {
            if (l.is_string() && r.is_string()) {
                budget_check_size(uint64_t(l.s.size()) + r.s.size(), "string concatenation");
                return l.s + r.s;
            }
            if (l.is_array() && r.is_array()) {
                budget_check_size((uint64_t(l.arr->size()) + r.arr->size()) * sizeof(Value),
                                  "list concatenation");
                Array out = *l.arr;
                out.insert(out.end(), r.arr->begin(), r.arr->end());
                return Value(std::move(out));
            }
            if (ints) return checked_add(ival(l), ival(r));
            if (ln && rn) return l.as_double() + r.as_double();
        } else if (op == "-") {
            if (ints) return checked_sub(ival(l), ival(r));
            if (ln && rn) return l.as_double() - r.as_double();
        } else if (op == "*") {
            if (ints) return checked_mul(ival(l), ival(r));
            if (ln && rn) return l.as_double() * r.as_double();
            const Value& s = l.is_string() ? l : r;
            const Value& n = l.is_string() ? r : l;
            if (s.is_string() && n.kind == Value::Kind::Int) {
                std::string out;
                if (n.i <= 0 || s.s.empty()) return out;
                // Compared by division: the product of two large sizes wraps around.
                if (uint64_t(n.i) > budget_limits().max_value / s.s.size())
                    throw JinjaError(fmt::format("string repetition too large: {} bytes x {} is "
                                                 "over the limit of {} bytes",
                                                 s.s.size(), n.i, budget_limits().max_value),
                                     e.pos);
                out.reserve(s.s.size() * size_t(n.i));
                for (int64_t k = 0; k < n.i; ++k) out += s.s;
                return out;
            }
        } else if (op == "/" || op == "//" || op == "%") {
            if (ln && rn) {
                if (r.as_double() == 0) throw JinjaError("division by zero", e.pos);
                if (op == "/") return l.as_double() / r.as_double();
                if (ints) {
                    const int64_t a = ival(l), b = ival(r);
                    return op == "//" ? Value(floor_div(a, b)) : Value(floor_mod(a, b));
                }
                const double a = l.as_double(), b = r.as_double();
                if (op == "//") return std::floor(a / b);
                const double m = std::fmod(a, b);
                return (m != 0 && ((m < 0) != (b < 0))) ? m + b : m;
            }
        } else if (op == "**") {
            if (ints && ival(r) >= 0) {
                const int64_t base = ival(l), ex = ival(r);
                if (base == 0) return int64_t(ex == 0 ? 1 : 0);
                if (base == 1) return int64_t(1);
                if (base == -1) return int64_t(ex % 2 ? -1 : 1);
                int64_t out = 1;  // |base| >= 2 overflows within 63 factors
                for (int64_t k = 0; k < ex; ++k) out = checked_mul(out, base);
                return out;
            }
            if (ln && rn) return std::pow(l.as_double(), r.as_double());
        }
        throw JinjaError(fmt::format("unsupported operand types for {}: {} and {}", op,
                                     kind_name(l), kind_name(r)),
                         e.pos);
    }
};

Error located(const std::string& src, const std::exception& e) {
    const auto* je = dynamic_cast<const JinjaError*>(&e);
    if (je && je->pos != std::string::npos)
        return make_error("chat template, {}: {}", describe_pos(src, je->pos), e.what());
    return make_error("chat template: {}", e.what());
}

}  // namespace

Result<Template> Template::parse(const std::string& source) {
    Template t;
    t.src_ = std::make_shared<const std::string>(source);
    try {
        auto prog = std::make_shared<Program>(jinja::parse(*t.src_));
        check_body(prog->body);
        t.prog_ = std::move(prog);
    } catch (const std::exception& e) {
        return located(*t.src_, e);
    }
    return t;
}

Result<std::string> Template::render(const Value& context) const {
    return render(context, RenderLimits{});
}

Result<std::string> Template::render(const Value& context, const RenderLimits& limits) const {
    std::string out;
    try {
        BudgetScope budget(limits);
        Interp in(context);
        in.run(prog_->body, out);
    } catch (const std::exception& e) {
        return located(*src_, e);
    }
    return out;
}

Value from_json(const nlohmann::ordered_json& j) {
    switch (j.type()) {
        case nlohmann::ordered_json::value_t::null: return Value::none();
        case nlohmann::ordered_json::value_t::boolean: return Value(j.get<bool>());
        case nlohmann::ordered_json::value_t::number_integer: return Value(j.get<int64_t>());
        case nlohmann::ordered_json::value_t::number_unsigned: return Value(int64_t(j.get<uint64_t>()));
        case nlohmann::ordered_json::value_t::number_float: return Value(j.get<double>());
        case nlohmann::ordered_json::value_t::string: return Value(j.get<std::string>());
        case nlohmann::ordered_json::value_t::array: {
            Array out;
            for (const auto& x : j) out.push_back(from_json(x));
            return Value(std::move(out));
        }
        case nlohmann::ordered_json::value_t::object: {
            Value o = Value::object();
            for (const auto& [k, v] : j.items()) o.set(k, from_json(v));
            return o;
        }
        default: return Value::none();
    }
}

}  // namespace moe::jinja
