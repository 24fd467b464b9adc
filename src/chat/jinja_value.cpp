#include "chat/jinja_value.h"

#include "chat/jinja_budget.h"

#include <fmt/format.h>

#include <cmath>

namespace moe::jinja {

Value Value::undefined(std::string name) {
    Value v;
    v.s = std::move(name);
    return v;
}

Value Value::none() {
    Value v;
    v.kind = Kind::None;
    return v;
}

Value::Value(jinja::Array a) : kind(Kind::Array), arr(std::make_shared<jinja::Array>(std::move(a))) {}

Value Value::array(jinja::Array a) { return Value(std::move(a)); }

Value Value::object() {
    Value v;
    v.kind = Kind::Object;
    v.obj = std::make_shared<Object>();
    return v;
}

Value Value::namespace_object() {
    Value v = object();
    v.obj->is_namespace = true;
    return v;
}

Value Value::function(Function f) {
    Value v;
    v.kind = Kind::Function;
    v.fn = std::make_shared<Function>(std::move(f));
    return v;
}

bool Value::truthy() const {
    switch (kind) {
        case Kind::Undefined:
        case Kind::None: return false;
        case Kind::Bool: return b;
        case Kind::Int: return i != 0;
        case Kind::Float: return f != 0;
        case Kind::String: return !s.empty();
        case Kind::Array: return !arr->empty();
        case Kind::Object: return obj->is_namespace || !obj->items.empty();
        case Kind::Function: return true;
    }
    return false;
}

Value Value::get(const std::string& key) const {
    if (kind == Kind::Object)
        if (const Value* v = obj->find(key)) return *v;
    return undefined(key);
}

void Value::set(const std::string& key, Value v) {
    if (kind != Kind::Object) return;
    if (Value* p = obj->find(key)) *p = std::move(v);
    else obj->items.emplace_back(key, std::move(v));
}

bool Value::has(const std::string& key) const { return kind == Kind::Object && obj->find(key); }

Value* Object::find(const std::string& key) {
    for (auto& [k, v] : items)
        if (k == key) return &v;
    return nullptr;
}

const Value* Object::find(const std::string& key) const {
    for (const auto& [k, v] : items)
        if (k == key) return &v;
    return nullptr;
}

Value CallArgs::get(size_t i, const std::string& name) const {
    if (i < pos.size()) return pos[i];
    for (const auto& [k, v] : kw)
        if (k == name) return v;
    return Value::undefined(name);
}

bool CallArgs::has(size_t i, const std::string& name) const {
    if (i < pos.size()) return true;
    for (const auto& [k, v] : kw)
        if (k == name) return true;
    return false;
}

namespace {

std::string float_str(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
    std::string s = fmt::format("{}", d);
    if (s.find_first_of(".en") == std::string::npos) s += ".0";
    return s;
}

std::string py_quote(const std::string& s) {
    // Python repr: single quotes unless the text has ' and no ".
    const bool dq = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
    const char q = dq ? '"' : '\'';
    std::string out(1, q);
    for (char c : s) {
        switch (c) {
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c == q) {
                    out += '\\';
                    out += c;
                } else if (static_cast<unsigned char>(c) < 0x20) {
                    out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
                } else {
                    out += c;
                }
        }
    }
    out += q;
    return out;
}

void json_string(std::string& out, const std::string& s) {
    out += '"';
    for (char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20)
                    out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
                else
                    out += c;
        }
    }
    out += '"';
}

void json_rec(std::string& out, const Value& v, int indent, int level, int depth) {
    if (depth > 256) throw JinjaError("tojson: value nested too deeply");
    budget_check_size(out.size(), "tojson output");
    auto newline = [&](int lvl) {
        if (indent < 0) return;
        budget_check_size(out.size() + uint64_t(indent) * uint64_t(lvl), "tojson output");
        out += '\n';
        out.append(size_t(indent) * size_t(lvl), ' ');
    };
    const char* item_sep = indent < 0 ? ", " : ",";
    switch (v.kind) {
        case Value::Kind::Undefined:
        case Value::Kind::None: out += "null"; break;
        case Value::Kind::Bool: out += v.b ? "true" : "false"; break;
        case Value::Kind::Int: out += std::to_string(v.i); break;
        case Value::Kind::Float:
            if (std::isnan(v.f)) out += "NaN";
            else if (std::isinf(v.f)) out += v.f > 0 ? "Infinity" : "-Infinity";
            else out += float_str(v.f);
            break;
        case Value::Kind::String: json_string(out, v.s); break;
        case Value::Kind::Array:
            if (v.arr->empty()) {
                out += "[]";
                break;
            }
            out += '[';
            for (size_t k = 0; k < v.arr->size(); ++k) {
                if (k) out += item_sep;
                newline(level + 1);
                json_rec(out, (*v.arr)[k], indent, level + 1, depth + 1);
            }
            newline(level);
            out += ']';
            break;
        case Value::Kind::Object:
            if (v.obj->items.empty()) {
                out += "{}";
                break;
            }
            out += '{';
            for (size_t k = 0; k < v.obj->items.size(); ++k) {
                if (k) out += item_sep;
                newline(level + 1);
                json_string(out, v.obj->items[k].first);
                out += ": ";
                json_rec(out, v.obj->items[k].second, indent, level + 1, depth + 1);
            }
            newline(level);
            out += '}';
            break;
        case Value::Kind::Function: throw JinjaError("tojson: a function is not JSON serializable");
    }
}

std::string repr_rec(const Value& v, int depth);

std::string str_rec(const Value& v, int depth) {
    if (depth > 256) throw JinjaError("value nested too deeply to print");
    switch (v.kind) {
        case Value::Kind::Undefined: return "";
        case Value::Kind::None: return "None";
        case Value::Kind::Bool: return v.b ? "True" : "False";
        case Value::Kind::Int: return std::to_string(v.i);
        case Value::Kind::Float: return float_str(v.f);
        case Value::Kind::String: return v.s;
        case Value::Kind::Array: {
            std::string out = "[";
            for (size_t k = 0; k < v.arr->size(); ++k) {
                if (k) out += ", ";
                out += repr_rec((*v.arr)[k], depth + 1);
                budget_check_size(out.size(), "printed list");
            }
            return out + "]";
        }
        case Value::Kind::Object: {
            std::string out = v.obj->is_namespace ? "<Namespace {" : "{";
            for (size_t k = 0; k < v.obj->items.size(); ++k) {
                if (k) out += ", ";
                out += py_quote(v.obj->items[k].first) + ": " +
                       repr_rec(v.obj->items[k].second, depth + 1);
                budget_check_size(out.size(), "printed dict");
            }
            return out + (v.obj->is_namespace ? "}>" : "}");
        }
        case Value::Kind::Function: return "<function>";
    }
    return "";
}

std::string repr_rec(const Value& v, int depth) {
    if (v.kind == Value::Kind::String) return py_quote(v.s);
    if (v.kind == Value::Kind::Undefined) return "Undefined";
    return str_rec(v, depth);
}

}  // namespace

uint64_t value_copy_bytes(const Value& v) {
    if (v.is_string()) return v.s.size();
    uint64_t n = 0;
    if (v.is_array())
        for (const Value& x : *v.arr) n += sizeof(Value) + (x.is_string() ? x.s.size() : 0);
    if (v.is_object())
        for (const auto& [k, x] : v.obj->items)
            n += sizeof(std::pair<std::string, Value>) + k.size() + (x.is_string() ? x.s.size() : 0);
    return n;
}

std::string to_str(const Value& v) { return str_rec(v, 0); }
std::string to_repr(const Value& v) { return repr_rec(v, 0); }

std::string to_json(const Value& v, int indent) {
    std::string out;
    json_rec(out, v, indent, 0, 0);
    return out;
}

bool equals(const Value& a, const Value& b) {
    using K = Value::Kind;
    const bool an = a.is_number() || a.kind == K::Bool, bn = b.is_number() || b.kind == K::Bool;
    if (an && bn) {
        if (a.kind != K::Float && b.kind != K::Float) return a.as_double() == b.as_double() &&
                                                             (a.kind == K::Bool ? int64_t(a.b) : a.i) ==
                                                                 (b.kind == K::Bool ? int64_t(b.b) : b.i);
        return a.as_double() == b.as_double();
    }
    if (a.kind != b.kind) return false;
    switch (a.kind) {
        case K::Undefined:
        case K::None: return true;
        case K::String: return a.s == b.s;
        case K::Array:
            if (a.arr == b.arr) return true;
            if (a.arr->size() != b.arr->size()) return false;
            for (size_t k = 0; k < a.arr->size(); ++k)
                if (!equals((*a.arr)[k], (*b.arr)[k])) return false;
            return true;
        case K::Object:
            if (a.obj == b.obj) return true;
            if (a.obj->items.size() != b.obj->items.size()) return false;
            for (const auto& [k, v] : a.obj->items) {
                const Value* o = b.obj->find(k);
                if (!o || !equals(v, *o)) return false;
            }
            return true;
        case K::Function: return a.fn == b.fn;
        default: return false;
    }
}

const char* kind_name(const Value& v) {
    switch (v.kind) {
        case Value::Kind::Undefined: return "undefined";
        case Value::Kind::None: return "none";
        case Value::Kind::Bool: return "bool";
        case Value::Kind::Int: return "int";
        case Value::Kind::Float: return "float";
        case Value::Kind::String: return "string";
        case Value::Kind::Array: return "list";
        case Value::Kind::Object: return "dict";
        case Value::Kind::Function: return "function";
    }
    return "?";
}

}  // namespace moe::jinja
