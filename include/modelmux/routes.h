// What modelmux answers at each path, independent of the network shell: the routes it serves
// itself (health, models, metrics, status page and API, admin), client keys, and which API
// route a proxied request takes.
#pragma once

#include "modelmux/app.h"
#include "modelmux/http.h"
#include "modelmux/protocol.h"

#include <optional>

namespace modelmux {

// Answers req into res, or returns the API route the proxy must serve (the client key checked).
std::optional<ApiRoute> route_request(App& app, const Snapshot& snapshot, const HttpRequest& req,
                                      HttpResponse& res);

// The protocol errors on a path are shaped in: Anthropic's under /v1/messages, else OpenAI's.
Protocol protocol_for_path(std::string_view path);
void set_error(HttpResponse& res, Protocol protocol, const Error& e);

// True when the request carries one of the configured client keys (or none are configured).
bool client_authorized(const AuthConfig& auth, const HttpRequest& req);

// The /v1/models answer: OpenAI's list shape, or Anthropic's when the client is an Anthropic SDK.
std::string models_list_body(const Registry& registry, bool anthropic_shape);
// GET /v1/models/{id}: the entry of the list named id; nullopt when the list has none.
std::optional<std::string> model_entry_body(const Registry& registry, std::string_view id,
                                            bool anthropic_shape);

} // namespace modelmux
