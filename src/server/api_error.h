// OpenAI-style API errors: the HTTP status plus the body fields of
// {"error": {"message", "type", "param", "code"}}, and a Result-like holder for request parsing.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace moe::server {

struct ApiError {
    int status = 400;
    std::string message;
    std::string type = "invalid_request_error";
    std::string param;  // "" -> null
    std::string code;   // "" -> null
};

ApiError bad_request(std::string param, std::string message, std::string code = {});

// The JSON body of an error response.
std::string error_body(const ApiError& e);

template <class T>
class [[nodiscard]] ApiResult {
  public:
    ApiResult(T v) : v_(std::move(v)) {}
    ApiResult(ApiError e) : v_(std::move(e)) {}
    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() { return std::get<0>(v_); }
    const T& value() const { return std::get<0>(v_); }
    T& operator*() { return value(); }
    T* operator->() { return &value(); }
    const ApiError& error() const { return std::get<1>(v_); }

  private:
    std::variant<T, ApiError> v_;
};

}  // namespace moe::server
