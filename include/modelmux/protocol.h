// The client-facing API surface: which routes modelmux proxies, which protocol each speaks, and
// errors rendered in that protocol's shape (SPEC §6).
#pragma once

#include "modelmux/api.h"
#include "modelmux/registry.h"
#include "modelmux/result.h"

#include <string>
#include <string_view>

namespace modelmux {

// "/v1/chat/completions" and so on; nullopt for a path that is not a proxied route.
std::optional<ApiRoute> api_route_from_path(std::string_view path);
std::string_view path_of(ApiRoute route);
// The protocol the route's clients speak.
Protocol client_protocol(ApiRoute route);

int http_status(ErrorKind kind);

// {"error": {"message", "type", "param", "code"}}.
std::string openai_error_body(const Error& error);
// {"type": "error", "error": {"type", "message"}}.
std::string anthropic_error_body(const Error& error);
std::string error_body(Protocol protocol, const Error& error);

} // namespace modelmux
