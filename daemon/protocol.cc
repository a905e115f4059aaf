// Routes and protocol-shaped error bodies.
#include "modelmux/protocol.h"

#include "modelmux/json.h"

namespace modelmux {

std::optional<ApiRoute> api_route_from_path(std::string_view path) {
  if (path == "/v1/chat/completions") {
    return ApiRoute::chat_completions;
  }
  if (path == "/v1/messages") {
    return ApiRoute::messages;
  }
  if (path == "/v1/completions") {
    return ApiRoute::completions;
  }
  if (path == "/v1/embeddings") {
    return ApiRoute::embeddings;
  }
  if (path == "/v1/responses") {
    return ApiRoute::responses;
  }
  if (path == "/v1/messages/count_tokens") {
    return ApiRoute::count_tokens;
  }
  return std::nullopt;
}

std::string_view path_of(ApiRoute route) {
  switch (route) {
  case ApiRoute::chat_completions:
    return "/v1/chat/completions";
  case ApiRoute::completions:
    return "/v1/completions";
  case ApiRoute::embeddings:
    return "/v1/embeddings";
  case ApiRoute::messages:
    return "/v1/messages";
  case ApiRoute::responses:
    return "/v1/responses";
  case ApiRoute::count_tokens:
    return "/v1/messages/count_tokens";
  }
  return "/v1/chat/completions";
}

Protocol client_protocol(ApiRoute route) {
  if (route == ApiRoute::responses) {
    return Protocol::responses;
  }
  return route == ApiRoute::messages || route == ApiRoute::count_tokens ? Protocol::anthropic
                                                                        : Protocol::openai;
}

int http_status(ErrorKind kind) {
  switch (kind) {
  case ErrorKind::invalid_request:
    return 400;
  case ErrorKind::authentication:
    return 401;
  case ErrorKind::permission:
    return 403;
  case ErrorKind::not_found:
    return 404;
  case ErrorKind::too_large:
    return 413;
  case ErrorKind::rate_limited:
    return 429;
  case ErrorKind::internal:
    return 500;
  case ErrorKind::upstream:
    return 502;
  case ErrorKind::unavailable:
    return 503;
  case ErrorKind::timeout:
    return 504;
  }
  return 500;
}

namespace {

struct OpenAiKind {
  std::string_view type;
  std::string_view code; // empty: null
};

OpenAiKind openai_kind(const Error& e) {
  switch (e.kind) {
  case ErrorKind::invalid_request:
    return {"invalid_request_error", ""};
  case ErrorKind::authentication:
    return {"invalid_request_error", "invalid_api_key"};
  case ErrorKind::permission:
    return {"permission_error", "forbidden"};
  case ErrorKind::not_found:
    return {"invalid_request_error", e.param == "model" ? "model_not_found" : "not_found"};
  case ErrorKind::too_large:
    return {"invalid_request_error", "request_too_large"};
  case ErrorKind::rate_limited:
    return {"rate_limit_error", "rate_limit_exceeded"};
  case ErrorKind::internal:
    return {"server_error", "internal_error"};
  case ErrorKind::upstream:
    return {"server_error", "upstream_error"};
  case ErrorKind::unavailable:
    return {"server_error", "service_unavailable"};
  case ErrorKind::timeout:
    return {"server_error", "upstream_timeout"};
  }
  return {"server_error", ""};
}

std::string_view anthropic_type(ErrorKind kind) {
  switch (kind) {
  case ErrorKind::invalid_request:
    return "invalid_request_error";
  case ErrorKind::authentication:
    return "authentication_error";
  case ErrorKind::permission:
    return "permission_error";
  case ErrorKind::not_found:
    return "not_found_error";
  case ErrorKind::too_large:
    return "request_too_large";
  case ErrorKind::rate_limited:
    return "rate_limit_error";
  case ErrorKind::unavailable:
    return "overloaded_error";
  case ErrorKind::internal:
  case ErrorKind::upstream:
  case ErrorKind::timeout:
    return "api_error";
  }
  return "api_error";
}

} // namespace

std::string openai_error_body(const Error& error) {
  const auto k = openai_kind(error);
  std::string out;
  JsonWriter w(out);
  w.begin_object().key("error").begin_object();
  w.field("message", std::string_view(error.message)).field("type", k.type);
  w.key("param");
  if (error.param.empty()) {
    w.null();
  } else {
    w.value(std::string_view(error.param));
  }
  w.key("code");
  if (k.code.empty()) {
    w.null();
  } else {
    w.value(k.code);
  }
  w.end_object().end_object();
  return out;
}

std::string anthropic_error_body(const Error& error) {
  std::string out;
  JsonWriter w(out);
  w.begin_object().field("type", "error").key("error").begin_object();
  w.field("type", anthropic_type(error.kind)).field("message", std::string_view(error.message));
  w.end_object().end_object();
  return out;
}

std::string error_body(Protocol protocol, const Error& error) {
  return protocol == Protocol::anthropic ? anthropic_error_body(error) : openai_error_body(error);
}

} // namespace modelmux
