// Result<T>: the value of an operation that can fail on the request path, where exceptions are
// not used. An Error carries a kind (which maps to an HTTP status and protocol error type) and a
// message written for the person who sent the request.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace modelmux {

enum class ErrorKind {
  invalid_request, // 400
  authentication,  // 401
  permission,      // 403
  not_found,       // 404
  too_large,       // 413
  rate_limited,    // 429
  internal,        // 500
  upstream,        // 502
  unavailable,     // 503
  timeout,         // 504
};

struct Error {
  ErrorKind kind = ErrorKind::internal;
  std::string message;
  // The request field the error is about, when there is one (OpenAI's "param").
  std::string param;
};

template <typename T> class Result {
public:
  Result(T value) : m_state(std::move(value)) {}
  Result(Error error) : m_state(std::move(error)) {}

  explicit operator bool() const { return m_state.index() == 0; }
  T& value() { return std::get<0>(m_state); }
  const T& value() const { return std::get<0>(m_state); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(m_state); }

private:
  std::variant<T, Error> m_state;
};

struct Unit {};
using Status = Result<Unit>;
inline Status ok() {
  return Unit{};
}

inline Error make_error(ErrorKind kind, std::string message, std::string param = {}) {
  return Error{kind, std::move(message), std::move(param)};
}

} // namespace modelmux
