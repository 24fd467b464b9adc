// Built-in filters, tests, methods (str.strip, dict.items, ...) and global functions of the Jinja
// interpreter. All of them throw JinjaError on bad input; the interpreter adds the position.
#pragma once

#include <string>
#include <vector>

#include "chat/jinja_value.h"

namespace moe::jinja {

bool is_known_filter(const std::string& name);
bool is_known_test(const std::string& name);

Value apply_filter(const std::string& name, const Value& input, CallArgs& args);
bool apply_test(const std::string& name, const Value& v, const std::vector<Value>& args);

// obj.name: a dict entry, a bound method of a str or dict, or Undefined.
Value get_attr(const Value& obj, const std::string& name);
// obj[key]: list/str index (negative from the end), dict entry, else Undefined.
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step] with Python semantics; parts may be Undefined/None.
Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// `item in container`.
bool contains(const Value& container, const Value& item);
// Elements a for loop visits (dict keys, string characters, list items).
Array iterate(const Value& v);

// range, namespace, dict, raise_exception, strftime_now.
void add_global_functions(Value& globals);

}  // namespace moe::jinja
