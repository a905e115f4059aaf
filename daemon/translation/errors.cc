// An upstream's error body, in any shape, as the client's protocol writes errors.
#include "modelmux/translate.h"
#include "translation/dom.h"

namespace modelmux {

namespace {

using namespace dom;

// Status -> the ErrorKind whose protocol type the client expects for it.
ErrorKind kind_for_status(int status) {
  switch (status) {
  case 400:
  case 422:
    return ErrorKind::invalid_request;
  case 401:
    return ErrorKind::authentication;
  case 403:
    return ErrorKind::permission;
  case 404:
    return ErrorKind::not_found;
  case 413:
    return ErrorKind::too_large;
  case 429:
    return ErrorKind::rate_limited;
  case 503:
  case 529:
    return ErrorKind::unavailable;
  default:
    return status >= 500 ? ErrorKind::upstream : ErrorKind::invalid_request;
  }
}

} // namespace

std::string translate_error_body(std::string_view body, int status, Protocol client) {
  std::string message;
  object root;
  if (!parse_answer(body, root)) {
    if (const auto error = object_of(root, "error")) {
      message = std::string(string_of(*error, "message").value_or(""));
    } else if (const auto m = string_of(root, "message")) {
      message = std::string(*m);
    } else if (const auto detail = string_of(root, "detail")) {
      message = std::string(*detail); // FastAPI-based servers (vLLM)
    } else if (const auto e = string_of(root, "error")) {
      message = std::string(*e); // Ollama, llama.cpp
    }
  }
  if (message.empty()) {
    std::string_view snippet = body.substr(0, 300);
    while (!snippet.empty() && (snippet.back() == '\n' || snippet.back() == ' ')) {
      snippet.remove_suffix(1);
    }
    message = "the upstream answered HTTP " + std::to_string(status) +
              (snippet.empty() ? std::string() : ": " + std::string(snippet));
  }
  return error_body(client, make_error(kind_for_status(status), std::move(message)));
}

} // namespace modelmux
