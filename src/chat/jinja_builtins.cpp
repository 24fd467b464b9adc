#include "chat/jinja_builtins.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <optional>

#include "chat/jinja_budget.h"
#include "core/utf8.h"

namespace moe::jinja {

namespace {
// Number of characters of s, split as utf8::chars does (a stray byte counts as one).
size_t utf8_length(const std::string& s) {
    size_t n = 0;
    for (size_t p = 0; p < s.size(); p += utf8::char_len(s, p)) ++n;
    return n;
}
// utf8::chars, charged to the render budget: one std::string per character is ~30x the text.
std::vector<std::string> budgeted_chars(const std::string& s) {
    budget_charge(uint64_t(utf8_length(s)) * sizeof(std::string) + s.size());
    return utf8::chars(s);
}
}  // namespace

namespace {

constexpr int64_t kMaxRange = 1'000'000;

[[noreturn]] void fail(const std::string& msg) { throw JinjaError(msg); }

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

const std::string& need_str(const Value& v, const char* what) {
    if (!v.is_string()) fail(fmt::format("{} expects a string, got {}", what, kind_name(v)));
    return v.s;
}

int64_t need_int(const Value& v, const char* what) {
    if (v.kind == Value::Kind::Int) return v.i;
    if (v.kind == Value::Kind::Bool) return v.b;
    fail(fmt::format("{} expects an integer, got {}", what, kind_name(v)));
}

std::string strip_chars(const std::string& s, const Value& chars, bool left, bool right) {
    auto in_set = [&](char c) {
        return chars.is_string() ? chars.s.find(c) != std::string::npos : is_ws(c);
    };
    size_t a = 0, b = s.size();
    if (left)
        while (a < b && in_set(s[a])) ++a;
    if (right)
        while (b > a && in_set(s[b - 1])) --b;
    return s.substr(a, b - a);
}

std::string lower(std::string s) {
    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
}
std::string upper(std::string s) {
    for (char& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
    return s;
}
std::string capitalize(const std::string& s) {
    std::string out = lower(s);
    if (!out.empty()) out[0] = char(std::toupper(static_cast<unsigned char>(out[0])));
    return out;
}
std::string title(const std::string& s) {
    std::string out = s;
    bool start = true;
    for (char& c : out) {
        const unsigned char u = static_cast<unsigned char>(c);
        if (std::isalpha(u)) {
            c = char(start ? std::toupper(u) : std::tolower(u));
            start = false;
        } else {
            start = !std::isdigit(u) && u < 0x80;
        }
    }
    return out;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to,
                        int64_t count) {
    std::string out;
    if (from.empty()) {
        // Python inserts `to` between every character (and at both ends).
        auto chars = budgeted_chars(s);
        int64_t n = 0;
        for (const auto& c : chars) {
            if (count < 0 || n < count) {
                out += to;
                ++n;
            }
            out += c;
            budget_check_size(out.size(), "replace output");
        }
        if (count < 0 || n < count) out += to;
        return out;
    }
    size_t p = 0;
    int64_t n = 0;
    while (true) {
        const size_t q = s.find(from, p);
        if (q == std::string::npos || (count >= 0 && n >= count)) break;
        out.append(s, p, q - p);
        out += to;
        budget_check_size(out.size(), "replace output");
        p = q + from.size();
        ++n;
    }
    out.append(s, p, std::string::npos);
    return out;
}

Value split(const std::string& s, const Value& sep, int64_t maxsplit) {
    Array parts;
    if (!sep.is_string() || sep.s.empty()) {
        if (sep.is_string()) fail("split: empty separator");
        // Whitespace split: runs of whitespace, no empty parts.
        size_t p = 0;
        while (p < s.size()) {
            while (p < s.size() && is_ws(s[p])) ++p;
            if (p >= s.size()) break;
            if (maxsplit >= 0 && int64_t(parts.size()) >= maxsplit) {
                std::string rest = s.substr(p);
                while (!rest.empty() && is_ws(rest.back())) rest.pop_back();
                parts.emplace_back(rest);
                return Value(std::move(parts));
            }
            size_t q = p;
            while (q < s.size() && !is_ws(s[q])) ++q;
            parts.emplace_back(s.substr(p, q - p));
            budget_check_size(parts.size() * sizeof(Value), "split result");
            p = q;
        }
        return Value(std::move(parts));
    }
    size_t p = 0;
    while (true) {
        const size_t q = s.find(sep.s, p);
        if (q == std::string::npos || (maxsplit >= 0 && int64_t(parts.size()) >= maxsplit)) break;
        parts.emplace_back(s.substr(p, q - p));
        budget_check_size(parts.size() * sizeof(Value), "split result");
        p = q + sep.s.size();
    }
    parts.emplace_back(s.substr(p));
    return Value(std::move(parts));
}

bool affix_match(const std::string& s, const Value& affix, bool prefix) {
    auto one = [&](const Value& a) {
        const std::string& x = need_str(a, prefix ? "startswith" : "endswith");
        if (x.size() > s.size()) return false;
        return prefix ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0;
    };
    if (affix.is_array()) {
        for (const auto& a : *affix.arr)
            if (one(a)) return true;
        return false;
    }
    return one(affix);
}

Value method(const Value& self, const std::string& name) {
    // Bound methods capture a copy of self (cheap: strings copied, containers shared).
    if (self.is_string()) {
        static const char* names[] = {"strip", "lstrip", "rstrip", "split", "startswith", "endswith",
                                      "upper", "lower", "title", "capitalize", "replace", "find",
                                      "count", "join", "splitlines", "isdigit", "isspace", "isalpha",
                                      "rsplit"};
        if (std::none_of(std::begin(names), std::end(names), [&](const char* n) { return name == n; }))
            return Value::undefined(name);
        return Value::function([self, name](CallArgs& a) -> Value {
            const std::string& s = self.s;
            if (name == "strip") return strip_chars(s, a.get(0, "chars"), true, true);
            if (name == "lstrip") return strip_chars(s, a.get(0, "chars"), true, false);
            if (name == "rstrip") return strip_chars(s, a.get(0, "chars"), false, true);
            if (name == "split" || name == "rsplit") {
                const Value ms = a.get(1, "maxsplit");
                return split(s, a.get(0, "sep"), ms.is_undefined() ? -1 : need_int(ms, "split"));
            }
            if (name == "startswith") return affix_match(s, a.get(0, "prefix"), true);
            if (name == "endswith") return affix_match(s, a.get(0, "suffix"), false);
            if (name == "upper") return upper(s);
            if (name == "lower") return lower(s);
            if (name == "title") return title(s);
            if (name == "capitalize") return capitalize(s);
            if (name == "replace") {
                const Value c = a.get(2, "count");
                return replace_all(s, need_str(a.get(0, "old"), "replace"),
                                   need_str(a.get(1, "new"), "replace"),
                                   c.is_undefined() ? -1 : need_int(c, "replace"));
            }
            if (name == "find") {
                const size_t p = s.find(need_str(a.get(0, "sub"), "find"));
                return p == std::string::npos ? int64_t(-1) : int64_t(p);
            }
            if (name == "count") {
                const std::string& sub = need_str(a.get(0, "sub"), "count");
                if (sub.empty()) return int64_t(utf8_length(s) + 1);
                int64_t n = 0;
                for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
                return n;
            }
            if (name == "join") {
                std::string out;
                const Array items = iterate(a.get(0, "iterable"));
                for (size_t k = 0; k < items.size(); ++k) {
                    if (k) out += s;
                    out += need_str(items[k], "str.join");
                    budget_check_size(out.size(), "join output");
                }
                return out;
            }
            if (name == "splitlines") {
                Array lines;
                size_t p = 0;
                while (p < s.size()) {
                    size_t q = s.find('\n', p);
                    if (q == std::string::npos) q = s.size();
                    std::string line = s.substr(p, q - p);
                    if (!line.empty() && line.back() == '\r') line.pop_back();
                    lines.emplace_back(std::move(line));
                    budget_check_size(lines.size() * sizeof(Value), "splitlines result");
                    p = q + 1;
                }
                return Value(std::move(lines));
            }
            auto all = [&](auto pred) {
                return !s.empty() && std::all_of(s.begin(), s.end(), [&](char c) {
                    return pred(static_cast<unsigned char>(c));
                });
            };
            if (name == "isdigit") return all([](unsigned char c) { return std::isdigit(c) != 0; });
            if (name == "isspace") return all([](unsigned char c) { return std::isspace(c) != 0; });
            return all([](unsigned char c) { return std::isalpha(c) != 0; });
        });
    }
    if (self.is_object() && !self.obj->is_namespace) {
        if (name == "items")
            return Value::function([self](CallArgs&) -> Value {
                Array out;
                for (const auto& [k, v] : self.obj->items) out.emplace_back(Array{Value(k), v});
                return Value(std::move(out));
            });
        if (name == "keys")
            return Value::function([self](CallArgs&) -> Value {
                Array out;
                for (const auto& kv : self.obj->items) out.emplace_back(kv.first);
                return Value(std::move(out));
            });
        if (name == "values")
            return Value::function([self](CallArgs&) -> Value {
                Array out;
                for (const auto& kv : self.obj->items) out.push_back(kv.second);
                return Value(std::move(out));
            });
        if (name == "get")
            return Value::function([self](CallArgs& a) -> Value {
                const Value key = a.get(0, "key");
                if (key.is_string())
                    if (const Value* v = self.obj->find(key.s)) return *v;
                const Value d = a.get(1, "default");
                return d.is_undefined() ? Value::none() : d;
            });
    }
    return Value::undefined(name);
}

int compare_values(const Value& a, const Value& b) {
    if ((a.is_number() || a.kind == Value::Kind::Bool) && (b.is_number() || b.kind == Value::Kind::Bool)) {
        const double x = a.as_double(), y = b.as_double();
        return x < y ? -1 : x > y ? 1 : 0;
    }
    if (a.is_string() && b.is_string()) return a.s < b.s ? -1 : a.s > b.s ? 1 : 0;
    if (a.is_array() && b.is_array()) {
        for (size_t k = 0; k < std::min(a.arr->size(), b.arr->size()); ++k) {
            const int c = compare_values((*a.arr)[k], (*b.arr)[k]);
            if (c) return c;
        }
        return a.arr->size() < b.arr->size() ? -1 : a.arr->size() > b.arr->size() ? 1 : 0;
    }
    fail(fmt::format("cannot compare {} with {}", kind_name(a), kind_name(b)));
}

// attribute="a.b.0" lookup used by map/selectattr/sort/join/sum.
Value attr_path(const Value& v, const std::string& path) {
    Value cur = v;
    size_t p = 0;
    while (p <= path.size()) {
        size_t q = path.find('.', p);
        if (q == std::string::npos) q = path.size();
        const std::string part = path.substr(p, q - p);
        const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
        if (cur.is_undefined()) return cur;
        cur = digits && cur.is_array() ? get_item(cur, Value(int64_t(std::atoll(part.c_str()))))
                                       : get_item(cur, Value(part));
        p = q + 1;
    }
    return cur;
}

std::string html_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&#34;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
        }
    }
    return out;
}

int64_t length_of(const Value& v) {
    switch (v.kind) {
        case Value::Kind::String: return int64_t(utf8_length(v.s));
        case Value::Kind::Array: return int64_t(v.arr->size());
        case Value::Kind::Object: return int64_t(v.obj->items.size());
        case Value::Kind::Undefined: return 0;
        default: fail(fmt::format("object of type {} has no length", kind_name(v)));
    }
}

// select/reject/selectattr/rejectattr: args after the attribute are (test name, test args...).
Value select_impl(const Value& input, CallArgs& a, bool by_attr, bool keep) {
    const size_t first = by_attr ? 1 : 0;
    std::string attr;
    if (by_attr) attr = need_str(a.get(0, "attribute"), "selectattr");
    std::string test;
    std::vector<Value> targs;
    if (a.pos.size() > first) {
        test = need_str(a.pos[first], "select");
        targs.assign(a.pos.begin() + long(first) + 1, a.pos.end());
    }
    Array out;
    for (const Value& item : iterate(input)) {
        const Value x = by_attr ? attr_path(item, attr) : item;
        const bool ok = test.empty() ? x.truthy() : apply_test(test, x, targs);
        if (ok == keep) out.push_back(item);
    }
    return Value(std::move(out));
}

}  // namespace

Array iterate(const Value& v) {
    switch (v.kind) {
        case Value::Kind::Undefined: return {};
        case Value::Kind::Array: budget_charge(value_copy_bytes(v)); return *v.arr;
        case Value::Kind::Object: {
            budget_charge(value_copy_bytes(v));
            Array keys;
            for (const auto& kv : v.obj->items) keys.emplace_back(kv.first);
            return keys;
        }
        case Value::Kind::String: {
            budget_check_size(uint64_t(utf8_length(v.s)) * sizeof(Value), "list of characters");
            Array out;
            for (auto& c : budgeted_chars(v.s)) out.emplace_back(std::move(c));
            return out;
        }
        default: fail(fmt::format("{} object is not iterable", kind_name(v)));
    }
}

bool contains(const Value& container, const Value& item) {
    switch (container.kind) {
        case Value::Kind::String:
            if (!item.is_string())
                fail(fmt::format("'in <string>' requires a string, got {}", kind_name(item)));
            return container.s.find(item.s) != std::string::npos;
        case Value::Kind::Array:
            budget_steps(container.arr->size());
            return std::any_of(container.arr->begin(), container.arr->end(),
                               [&](const Value& x) { return equals(x, item); });
        case Value::Kind::Object: return item.is_string() && container.obj->find(item.s);
        case Value::Kind::Undefined: return false;
        default: fail(fmt::format("argument of type {} is not iterable", kind_name(container)));
    }
}

Value get_attr(const Value& obj, const std::string& name) {
    if (obj.is_object())
        if (const Value* v = obj.obj->find(name)) return *v;
    return method(obj, name);
}

Value get_item(const Value& obj, const Value& key) {
    if (obj.is_array() && (key.kind == Value::Kind::Int || key.kind == Value::Kind::Bool)) {
        int64_t k = key.kind == Value::Kind::Int ? key.i : key.b;
        const int64_t n = int64_t(obj.arr->size());
        if (k < 0) k += n;
        if (k < 0 || k >= n) return Value::undefined();
        return (*obj.arr)[size_t(k)];
    }
    if (obj.is_string() && key.kind == Value::Kind::Int) {
        const auto chars = budgeted_chars(obj.s);
        int64_t k = key.i;
        const int64_t n = int64_t(chars.size());
        if (k < 0) k += n;
        if (k < 0 || k >= n) return Value::undefined();
        return Value(chars[size_t(k)]);
    }
    if (obj.is_object() && key.is_string()) {
        if (const Value* v = obj.obj->find(key.s)) return *v;
        return method(obj, key.s);
    }
    if (key.is_string()) return method(obj, key.s);
    return Value::undefined();
}

Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
    auto opt = [](const Value& v, const char* what) -> std::optional<int64_t> {
        if (v.is_undefined() || v.is_none()) return std::nullopt;
        return need_int(v, what);
    };
    const int64_t st = opt(step, "slice step").value_or(1);
    if (st == 0) fail("slice step cannot be zero");
    std::vector<std::string> chars;
    int64_t n;
    if (obj.is_array()) {
        n = int64_t(obj.arr->size());
    } else if (obj.is_string()) {
        chars = budgeted_chars(obj.s);
        n = int64_t(chars.size());
    } else if (obj.is_undefined()) {
        fail("cannot slice an undefined value");
    } else {
        fail(fmt::format("cannot slice a {}", kind_name(obj)));
    }
    auto norm = [&](std::optional<int64_t> v, int64_t dflt) {
        if (!v) return dflt;
        int64_t x = *v;
        if (x < 0) x += n;
        if (st > 0) return std::clamp<int64_t>(x, 0, n);
        return std::clamp<int64_t>(x, -1, n - 1);
    };
    const int64_t a = norm(opt(start, "slice start"), st > 0 ? 0 : n - 1);
    const int64_t b = norm(opt(stop, "slice stop"), st > 0 ? n : -1);
    Array out;
    std::string sout;
    for (int64_t k = a; st > 0 ? k < b : k > b;) {
        if (obj.is_array()) out.push_back((*obj.arr)[size_t(k)]);
        else sout += chars[size_t(k)];
        // Stop before k + st leaves [-1, n]: a huge step would overflow.
        if (st > 0 ? st >= b - k : st <= b - k) break;
        k += st;
    }
    if (obj.is_array()) return Value(std::move(out));
    return Value(std::move(sout));
}

bool is_known_filter(const std::string& n) {
    static const char* names[] = {
        "trim", "length", "count", "tojson", "upper", "lower", "capitalize", "title", "join",
        "default", "d", "first", "last", "list", "string", "int", "float", "abs", "replace",
        "selectattr", "rejectattr", "select", "reject", "map", "items", "reverse", "sort",
        "unique", "safe", "e", "escape", "indent", "round", "sum", "min", "max", "dictsort",
        "wordcount", "batch", "striptags", "center", "truncate", "format", "attr", "bool"};
    return std::any_of(std::begin(names), std::end(names), [&](const char* x) { return n == x; });
}

bool is_known_test(const std::string& n) {
    static const char* names[] = {
        "defined", "undefined", "none", "boolean", "false", "true", "integer", "float", "number",
        "string", "mapping", "iterable", "sequence", "callable", "even", "odd", "divisibleby",
        "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan",
        ">", "ge", ">=", "in", "sameas", "lower", "upper", "filter", "test", "escaped"};
    return std::any_of(std::begin(names), std::end(names), [&](const char* x) { return n == x; });
}

bool apply_test(const std::string& n, const Value& v, const std::vector<Value>& args) {
    using K = Value::Kind;
    auto arg = [&](size_t k) -> const Value& {
        if (k >= args.size()) fail(fmt::format("test '{}' needs an argument", n));
        return args[k];
    };
    if (n == "defined") return !v.is_undefined();
    if (n == "undefined") return v.is_undefined();
    if (n == "none") return v.is_none();
    if (n == "boolean") return v.kind == K::Bool;
    if (n == "false") return v.kind == K::Bool && !v.b;
    if (n == "true") return v.kind == K::Bool && v.b;
    if (n == "integer") return v.kind == K::Int;
    if (n == "float") return v.kind == K::Float;
    if (n == "number") return v.is_number() || v.kind == K::Bool;
    if (n == "string") return v.is_string();
    if (n == "mapping") return v.is_object();
    if (n == "iterable") return v.is_array() || v.is_object() || v.is_string();
    if (n == "sequence") return v.is_array() || v.is_object() || v.is_string();
    if (n == "callable") return v.is_function();
    if (n == "even") return need_int(v, "even") % 2 == 0;
    if (n == "odd") return need_int(v, "odd") % 2 != 0;
    if (n == "divisibleby") {
        const int64_t d = need_int(arg(0), "divisibleby");
        if (d == 0) fail("divisibleby: division by zero");
        return need_int(v, "divisibleby") % d == 0;
    }
    if (n == "eq" || n == "equalto" || n == "==") return equals(v, arg(0));
    if (n == "ne" || n == "!=") return !equals(v, arg(0));
    if (n == "lt" || n == "lessthan" || n == "<") return compare_values(v, arg(0)) < 0;
    if (n == "le" || n == "<=") return compare_values(v, arg(0)) <= 0;
    if (n == "gt" || n == "greaterthan" || n == ">") return compare_values(v, arg(0)) > 0;
    if (n == "ge" || n == ">=") return compare_values(v, arg(0)) >= 0;
    if (n == "in") return contains(arg(0), v);
    if (n == "sameas") {
        const Value& o = arg(0);
        if (v.kind != o.kind) return false;
        if (v.is_array()) return v.arr == o.arr;
        if (v.is_object()) return v.obj == o.obj;
        return equals(v, o);
    }
    if (n == "lower") return v.is_string() && lower(v.s) == v.s;
    if (n == "upper") return v.is_string() && upper(v.s) == v.s;
    if (n == "filter") return v.is_string() && is_known_filter(v.s);
    if (n == "test") return v.is_string() && is_known_test(v.s);
    if (n == "escaped") return false;
    fail(fmt::format("unknown test '{}'", n));
}

namespace {

// The filters, by the kind of value they make. Each returns nullopt for names it does not own.

std::string indent_lines(const std::string& s, const std::string& pad, bool first, bool blank) {
    std::string out;
    size_t p = 0;
    bool first_line = true;
    while (p <= s.size()) {
        size_t q = s.find('\n', p);
        const bool last = q == std::string::npos;
        if (last) q = s.size();
        const std::string line = s.substr(p, q - p);
        if ((!first_line || first) && (blank || !line.empty())) out += pad;
        out += line;
        budget_check_size(out.size(), "indent output");
        if (last) break;
        out += '\n';
        p = q + 1;
        first_line = false;
    }
    return out;
}

std::string center(const std::string& s, int64_t width) {
    const int64_t len = int64_t(utf8_length(s));
    if (len >= width) return s;
    budget_check_size(uint64_t(width - len) + s.size(), "center output");
    const int64_t left = (width - len) / 2;
    return std::string(size_t(left), ' ') + s + std::string(size_t(width - len - left), ' ');
}

std::optional<Value> string_filter(const std::string& n, const Value& in, CallArgs& a) {
    if (n == "trim") return strip_chars(to_str(in), a.get(0, "chars"), true, true);
    if (n == "tojson") {
        const Value ind = a.get(0, "indent");
        if (ind.is_undefined() || ind.is_none()) return to_json(in, -1);
        const int64_t w = need_int(ind, "tojson");
        budget_check_size(uint64_t(std::max<int64_t>(w, 0)), "tojson indent");
        return to_json(in, int(w));
    }
    if (n == "string") return to_str(in);
    if (n == "upper") return upper(to_str(in));
    if (n == "lower") return lower(to_str(in));
    if (n == "capitalize") return capitalize(to_str(in));
    if (n == "title") return title(to_str(in));
    if (n == "e" || n == "escape") return html_escape(to_str(in));
    if (n == "replace") {
        const Value c = a.get(2, "count");
        return replace_all(to_str(in), to_str(a.get(0, "old")), to_str(a.get(1, "new")),
                           c.is_undefined() || c.is_none() ? -1 : need_int(c, "replace"));
    }
    if (n == "indent") {
        const Value w = a.get(0, "width");
        std::string pad;
        if (w.is_string()) {
            pad = w.s;
        } else {
            const int64_t width = w.is_undefined() ? 4 : need_int(w, "indent");
            budget_check_size(uint64_t(std::max<int64_t>(width, 0)), "indent width");
            pad.assign(size_t(std::max<int64_t>(width, 0)), ' ');
        }
        return indent_lines(to_str(in), pad, a.get(1, "first").truthy(), a.get(2, "blank").truthy());
    }
    if (n == "wordcount") return int64_t(split(to_str(in), Value::undefined(), -1).arr->size());
    if (n == "center")
        return center(to_str(in), a.has(0, "width") ? need_int(a.get(0, "width"), "center") : 80);
    return std::nullopt;
}

std::optional<Value> number_filter(const std::string& n, const Value& in, CallArgs& a) {
    // float -> int64 only inside the range (the cast is undefined outside it, NaN included).
    auto to_int = [](double d) -> Value {
        if (!(d > -9.2e18 && d < 9.2e18)) fail(fmt::format("int: {} does not fit an integer", d));
        return int64_t(d);
    };
    if (n == "int") {
        if (in.kind == Value::Kind::Int) return in;
        if (in.kind == Value::Kind::Float) return to_int(in.f);
        if (in.kind == Value::Kind::Bool) return int64_t(in.b);
        if (in.is_string()) {
            char* end = nullptr;
            const std::string t = strip_chars(in.s, Value::undefined(), true, true);
            errno = 0;
            const long long v = std::strtoll(t.c_str(), &end, 10);
            if (!t.empty() && end && *end == '\0' && errno == 0) return int64_t(v);
            const double d = std::strtod(t.c_str(), &end);
            if (!t.empty() && end && *end == '\0' && d > -9.2e18 && d < 9.2e18) return int64_t(d);
        }
        const Value dflt = a.get(0, "default");
        return dflt.is_undefined() ? Value(int64_t(0)) : dflt;
    }
    if (n == "float") {
        if (in.is_number() || in.kind == Value::Kind::Bool) return in.as_double();
        if (in.is_string()) {
            char* end = nullptr;
            const double d = std::strtod(in.s.c_str(), &end);
            if (!in.s.empty() && end && *end == '\0') return d;
        }
        const Value dflt = a.get(0, "default");
        return dflt.is_undefined() ? Value(0.0) : dflt;
    }
    if (n == "abs") {
        if (in.kind == Value::Kind::Int) return in.i < 0 ? checked_neg(in.i) : in.i;
        if (in.kind == Value::Kind::Float) return std::fabs(in.f);
        fail(fmt::format("abs: expected a number, got {}", kind_name(in)));
    }
    if (n == "round") {
        const Value p = a.get(0, "precision");
        const int64_t prec = std::clamp<int64_t>(p.is_undefined() ? 0 : need_int(p, "round"), -400, 400);
        const std::string method = a.has(1, "method") ? to_str(a.get(1, "method")) : "common";
        const double scale = std::pow(10.0, double(prec)), x = in.as_double() * scale;
        const double r = method == "floor" ? std::floor(x) : method == "ceil" ? std::ceil(x) : std::round(x);
        return r / scale;
    }
    if (n == "sum") {
        const Value attr = a.get(0, "attribute");
        Value acc = a.has(1, "start") ? a.get(1, "start") : Value(int64_t(0));
        for (const Value& v0 : iterate(in)) {
            const Value v = attr.is_undefined() ? v0 : attr_path(v0, to_str(attr));
            if (acc.kind == Value::Kind::Int && v.kind == Value::Kind::Int) acc = checked_add(acc.i, v.i);
            else acc = acc.as_double() + v.as_double();
        }
        return acc;
    }
    if (n == "bool") return in.truthy();
    return std::nullopt;
}

Value map_filter(const Value& in, CallArgs& a) {
    Array out;
    const Value attr = a.get(99, "attribute");
    if (!attr.is_undefined()) {
        const Value dflt = a.get(99, "default");
        for (const Value& item : iterate(in)) {
            Value x = attr_path(item, to_str(attr));
            out.push_back(x.is_undefined() && !dflt.is_undefined() ? dflt : x);
        }
        return Value(std::move(out));
    }
    if (a.pos.empty()) fail("map: expected a filter name or attribute=");
    const std::string f = need_str(a.pos[0], "map");
    if (!is_known_filter(f)) fail(fmt::format("unknown filter '{}'", f));
    CallArgs rest;
    rest.pos.assign(a.pos.begin() + 1, a.pos.end());
    rest.kw = a.kw;
    for (const Value& item : iterate(in)) out.push_back(apply_filter(f, item, rest));
    return Value(std::move(out));
}

Value sort_filter(const Value& in, CallArgs& a) {
    Array items = iterate(in);
    budget_steps(uint64_t(items.size()) * 64);  // ~n log n comparisons
    const bool rev = a.get(0, "reverse").truthy();
    const bool cs = a.get(1, "case_sensitive").truthy();
    const Value attr = a.get(2, "attribute");
    auto key = [&](const Value& v) {
        Value x = attr.is_undefined() ? v : attr_path(v, to_str(attr));
        if (!cs && x.is_string()) x = Value(lower(x.s));
        return x;
    };
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
        const int c = compare_values(key(x), key(y));
        return rev ? c > 0 : c < 0;
    });
    return Value(std::move(items));
}

std::optional<Value> list_filter(const std::string& n, const Value& in, CallArgs& a) {
    if (n == "length" || n == "count") return length_of(in);
    if (n == "join") {
        const Value sep = a.get(0, "d");
        const Value attr = a.get(1, "attribute");
        std::string out;
        const Array items = iterate(in);
        for (size_t k = 0; k < items.size(); ++k) {
            if (k) out += sep.is_undefined() ? "" : to_str(sep);
            out += to_str(attr.is_undefined() ? items[k] : attr_path(items[k], to_str(attr)));
            budget_check_size(out.size(), "join output");
        }
        return out;
    }
    if (n == "first" || n == "last") {
        const Array items = iterate(in);
        if (items.empty()) return Value::undefined();
        return n == "first" ? items.front() : items.back();
    }
    if (n == "list") return Value(iterate(in));
    if (n == "selectattr") return select_impl(in, a, true, true);
    if (n == "rejectattr") return select_impl(in, a, true, false);
    if (n == "select") return select_impl(in, a, false, true);
    if (n == "reject") return select_impl(in, a, false, false);
    if (n == "map") return map_filter(in, a);
    if (n == "items") {
        if (in.is_undefined()) return Value(Array{});
        if (!in.is_object()) fail(fmt::format("items: expected a dict, got {}", kind_name(in)));
        return get_attr(in, "items").fn->operator()(a);
    }
    if (n == "dictsort") {
        if (!in.is_object()) fail("dictsort: expected a dict");
        Array out;
        for (const auto& [k, v] : in.obj->items) out.emplace_back(Array{Value(k), v});
        std::stable_sort(out.begin(), out.end(), [](const Value& x, const Value& y) {
            return lower((*x.arr)[0].s) < lower((*y.arr)[0].s);
        });
        return Value(std::move(out));
    }
    if (n == "reverse") {
        if (in.is_string()) {
            auto chars = budgeted_chars(in.s);
            std::string out;
            for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += *it;
            return out;
        }
        Array items = iterate(in);
        std::reverse(items.begin(), items.end());
        return Value(std::move(items));
    }
    if (n == "sort") return sort_filter(in, a);
    if (n == "unique") {
        Array out;
        for (const Value& v : iterate(in)) {
            budget_steps(out.size());
            if (std::none_of(out.begin(), out.end(), [&](const Value& o) { return equals(o, v); }))
                out.push_back(v);
        }
        return Value(std::move(out));
    }
    if (n == "min" || n == "max") {
        const Array items = iterate(in);
        if (items.empty()) return Value::undefined();
        Value best = items[0];
        for (const Value& v : items) {
            const int c = compare_values(v, best);
            if (n == "min" ? c < 0 : c > 0) best = v;
        }
        return best;
    }
    return std::nullopt;
}

std::optional<Value> other_filter(const std::string& n, const Value& in, CallArgs& a) {
    if (n == "safe") return in;
    if (n == "default" || n == "d") {
        const Value dflt = a.get(0, "default_value");
        const bool boolean = a.get(1, "boolean").truthy();
        if (in.is_undefined() || (boolean && !in.truthy())) return dflt.is_undefined() ? Value("") : dflt;
        return in;
    }
    if (n == "attr") return get_attr(in, to_str(a.get(0, "name")));
    return std::nullopt;
}

}  // namespace

Value apply_filter(const std::string& n, const Value& in, CallArgs& a) {
    std::optional<Value> r = string_filter(n, in, a);
    if (!r) r = number_filter(n, in, a);
    if (!r) r = list_filter(n, in, a);
    if (!r) r = other_filter(n, in, a);
    if (!r) fail(fmt::format("filter '{}' is not supported", n));
    budget_charge(value_copy_bytes(*r));
    return std::move(*r);
}

void add_global_functions(Value& g) {
    g.set("range", Value::function([](CallArgs& a) -> Value {
        int64_t start = 0, stop = 0, step = 1;
        if (a.pos.size() == 1) {
            stop = need_int(a.pos[0], "range");
        } else if (a.pos.size() >= 2) {
            start = need_int(a.pos[0], "range");
            stop = need_int(a.pos[1], "range");
            if (a.pos.size() >= 3) step = need_int(a.pos[2], "range");
        } else {
            fail("range expects 1 to 3 arguments");
        }
        if (step == 0) fail("range: step must not be zero");
        // Element count in unsigned arithmetic: stop - start and the step may not fit an int64.
        const uint64_t span = step > 0 ? (stop > start ? uint64_t(stop) - uint64_t(start) : 0)
                                       : (start > stop ? uint64_t(start) - uint64_t(stop) : 0);
        const uint64_t mag = step > 0 ? uint64_t(step) : uint64_t(0) - uint64_t(step);
        const uint64_t count = span / mag + (span % mag != 0);
        if (count > uint64_t(kMaxRange)) fail(fmt::format("range of {} elements is too large", count));
        const int64_t n = int64_t(count);
        Array out;
        // start + k * step modulo 2^64: exact whenever the element itself fits, which it does.
        for (int64_t k = 0; k < n; ++k)
            out.emplace_back(int64_t(uint64_t(start) + uint64_t(k) * uint64_t(step)));
        return Value(std::move(out));
    }));
    g.set("namespace", Value::function([](CallArgs& a) -> Value {
        Value ns = Value::namespace_object();
        for (const auto& p : a.pos) {
            if (!p.is_object()) fail("namespace() positional argument must be a dict");
            for (const auto& [k, v] : p.obj->items) ns.set(k, v);
        }
        for (const auto& [k, v] : a.kw) ns.set(k, v);
        return ns;
    }));
    g.set("dict", Value::function([](CallArgs& a) -> Value {
        Value d = Value::object();
        for (const auto& p : a.pos)
            if (p.is_object())
                for (const auto& [k, v] : p.obj->items) d.set(k, v);
        for (const auto& [k, v] : a.kw) d.set(k, v);
        return d;
    }));
    g.set("raise_exception", Value::function([](CallArgs& a) -> Value {
        throw JinjaError("the template raised an exception: " + to_str(a.get(0, "message")));
    }));
    g.set("strftime_now", Value::function([](CallArgs& a) -> Value {
        const std::string fmt_s = need_str(a.get(0, "format"), "strftime_now");
        const std::time_t t = std::time(nullptr);
        std::tm tm{};
        localtime_r(&t, &tm);
        char buf[256];
        const size_t n = std::strftime(buf, sizeof buf, fmt_s.c_str(), &tm);
        return std::string(buf, n);
    }));
}

}  // namespace moe::jinja
