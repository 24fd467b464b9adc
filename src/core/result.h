// Result<T>: an expected-like return type for everything that touches user input (files,
// metadata, requests). Library code never exits or throws across module boundaries.
#pragma once

#include <fmt/format.h>

#include <string>
#include <utility>
#include <variant>

namespace moe {

struct Error {
    std::string message;
};

template <class... Args>
Error make_error(fmt::format_string<Args...> f, Args&&... args) {
    return Error{fmt::format(f, std::forward<Args>(args)...)};
}

template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}
    Result(Error e) : v_(std::move(e)) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const Error& error() const { return std::get<1>(v_); }
    const std::string& message() const { return error().message; }

private:
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error e) : err_(std::move(e)), ok_(false) {}
    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    const Error& error() const { return err_; }
    const std::string& message() const { return err_.message; }

private:
    Error err_;
    bool ok_ = true;
};

// Prepends context to an error: "loading blk.3: <inner message>".
inline Error with_context(const Error& e, const std::string& ctx) {
    return Error{ctx + ": " + e.message};
}

}  // namespace moe

#define MOE_CONCAT_INNER(a, b) a##b
#define MOE_CONCAT(a, b) MOE_CONCAT_INNER(a, b)

// MOE_TRY(auto x, expr): evaluates expr (a Result), returns its error or binds its value.
#define MOE_TRY(decl, expr) MOE_TRY_IMPL(MOE_CONCAT(moe_try_, __LINE__), decl, expr)
#define MOE_TRY_IMPL(tmp, decl, expr)          \
    auto tmp = (expr);                         \
    if (!tmp.ok()) return tmp.error();         \
    decl = std::move(tmp).value()

// MOE_TRY_VOID(expr): for Result<void>.
#define MOE_TRY_VOID(expr)                                  \
    do {                                                    \
        auto moe_try_void_ = (expr);                        \
        if (!moe_try_void_.ok()) return moe_try_void_.error(); \
    } while (0)
