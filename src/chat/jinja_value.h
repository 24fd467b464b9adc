// Values of the Jinja interpreter: Python-like dynamic values (None, bool, int, float, str, list,
// dict with insertion order, namespace, callable) plus Jinja's Undefined.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace moe::jinja {

// Internal error of the chat module (lexing, parsing or rendering). Never leaves src/chat: the
// public entry points turn it into a Result.
struct JinjaError : std::runtime_error {
    size_t pos;  // byte offset in the template, or npos
    JinjaError(const std::string& msg, size_t p = std::string::npos)
        : std::runtime_error(msg), pos(p) {}
};

struct Value;
using Array = std::vector<Value>;
struct Object;
struct CallArgs;
using Function = std::function<Value(CallArgs&)>;

struct Value {
    enum class Kind { Undefined, None, Bool, Int, Float, String, Array, Object, Function };
    Kind kind = Kind::Undefined;
    bool b = false;
    int64_t i = 0;
    double f = 0;
    std::string s;                       // String; also the name of an Undefined value
    std::shared_ptr<jinja::Array> arr;   // shared like Python lists
    std::shared_ptr<Object> obj;         // shared like Python dicts
    std::shared_ptr<Function> fn;

    Value() = default;
    static Value undefined(std::string name = {});
    static Value none();
    Value(bool v) : kind(Kind::Bool), b(v) {}
    Value(int v) : kind(Kind::Int), i(v) {}
    Value(int64_t v) : kind(Kind::Int), i(v) {}
    Value(size_t v) : kind(Kind::Int), i(int64_t(v)) {}
    Value(double v) : kind(Kind::Float), f(v) {}
    Value(std::string v) : kind(Kind::String), s(std::move(v)) {}
    Value(const char* v) : kind(Kind::String), s(v) {}
    Value(jinja::Array a);
    static Value array(jinja::Array a = {});
    static Value object();
    static Value namespace_object();
    static Value function(Function f);

    bool is_undefined() const { return kind == Kind::Undefined; }
    bool is_none() const { return kind == Kind::None; }
    bool is_string() const { return kind == Kind::String; }
    bool is_number() const { return kind == Kind::Int || kind == Kind::Float; }
    bool is_array() const { return kind == Kind::Array; }
    bool is_object() const { return kind == Kind::Object; }
    bool is_function() const { return kind == Kind::Function; }
    bool truthy() const;
    double as_double() const { return kind == Kind::Float ? f : double(kind == Kind::Bool ? b : i); }

    // Object helpers (no-ops / Undefined for other kinds).
    Value get(const std::string& key) const;
    void set(const std::string& key, Value v);
    bool has(const std::string& key) const;
};

struct Object {
    std::vector<std::pair<std::string, Value>> items;  // insertion order, like a Python dict
    bool is_namespace = false;
    Value* find(const std::string& key);
    const Value* find(const std::string& key) const;
};

struct CallArgs {
    std::vector<Value> pos;
    std::vector<std::pair<std::string, Value>> kw;
    // Positional i, else keyword `name`, else Undefined; marks nothing.
    Value get(size_t i, const std::string& name) const;
    bool has(size_t i, const std::string& name) const;
};

// Bytes a copy of v allocates: its string, or its list/dict slots and the strings directly in
// them (nested lists and dicts are shared, not copied).
uint64_t value_copy_bytes(const Value& v);

// Python str(): what {{ v }} prints.
std::string to_str(const Value& v);
// Python repr() (strings quoted), used inside lists and dicts.
std::string to_repr(const Value& v);
// json.dumps(v, ensure_ascii=False, indent=indent) as Hugging Face's tojson filter does.
std::string to_json(const Value& v, int indent = -1);
// Python ==.
bool equals(const Value& a, const Value& b);
const char* kind_name(const Value& v);

}  // namespace moe::jinja
