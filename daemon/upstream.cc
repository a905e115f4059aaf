// The request a target gets: its URL under the base URL, its credentials, its headers.
#include "modelmux/upstream.h"

namespace modelmux {

namespace {

std::string_view route_suffix(ApiRoute route) {
  switch (route) {
  case ApiRoute::chat_completions:
    return "/chat/completions";
  case ApiRoute::completions:
    return "/completions";
  case ApiRoute::embeddings:
    return "/embeddings";
  case ApiRoute::messages:
    return "/messages";
  case ApiRoute::responses:
    return "/responses";
  case ApiRoute::count_tokens:
    return "/messages/count_tokens";
  }
  return "/chat/completions";
}

} // namespace

namespace {

// Where the path of a base URL starts; npos when it has none.
size_t path_start_of(std::string_view base_url) {
  const size_t scheme_end = base_url.find("://");
  return scheme_end == std::string_view::npos ? std::string_view::npos
                                              : base_url.find('/', scheme_end + 3);
}

// The path of a base URL without its trailing slashes, as a view: every proxied request builds
// its upstream path from it.
std::string_view path_prefix_of(std::string_view base_url) {
  const size_t path_start = path_start_of(base_url);
  std::string_view path =
      path_start == std::string_view::npos ? std::string_view() : base_url.substr(path_start);
  while (!path.empty() && path.back() == '/') {
    path.remove_suffix(1);
  }
  return path;
}

} // namespace

UpstreamEndpoint parse_base_url(std::string_view base_url) {
  UpstreamEndpoint e;
  e.origin = std::string(base_url.substr(0, path_start_of(base_url)));
  e.path_prefix = std::string(path_prefix_of(base_url));
  return e;
}

UpstreamOrigin origin_of(const EndpointSettings& endpoint) {
  UpstreamOrigin o;
  const std::string origin = parse_base_url(endpoint.base_url).origin;
  std::string_view rest = origin;
  o.tls = rest.substr(0, 8) == "https://";
  const size_t scheme_end = rest.find("://");
  if (scheme_end != std::string_view::npos) {
    rest = rest.substr(scheme_end + 3);
  }
  const size_t colon = rest.rfind(':');
  const size_t bracket = rest.rfind(']');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    o.host = std::string(rest.substr(0, colon));
    o.port = std::string(rest.substr(colon + 1));
  } else {
    o.host = std::string(rest);
    o.port = o.tls ? "443" : "80";
  }
  if (o.host.size() > 2 && o.host.front() == '[' && o.host.back() == ']') {
    o.host = o.host.substr(1, o.host.size() - 2); // an IPv6 literal
  }
  o.verify = endpoint.tls_verify;
  o.key = (o.tls ? "https://" : "http://") + o.host + ":" + o.port + (o.verify ? "" : " noverify");
  return o;
}

UpstreamRequest build_upstream_request(const Target& target, ApiRoute route,
                                       std::string_view upstream_model, std::string body,
                                       bool stream, const ClientHeaders& client, size_t key_index) {
  UpstreamRequest r;
  const auto& ep = target.endpoint;
  const std::string_view suffix = route_suffix(route);
  r.path.reserve(ep.base_url.size() + suffix.size() + 64);
  r.path = path_prefix_of(ep.base_url);
  const std::string* key = key_index < ep.api_keys.size() ? &ep.api_keys[key_index].value : nullptr;
  switch (ep.type) {
  case TargetType::azure_openai:
    r.path += "/openai/deployments/";
    r.path += ep.deployment.empty() ? std::string(upstream_model) : ep.deployment;
    r.path += suffix;
    r.path += "?api-version=";
    r.path += ep.api_version;
    if (key != nullptr) {
      r.headers.add("api-key", *key);
    }
    break;
  case TargetType::anthropic:
    r.path += suffix;
    if (key != nullptr) {
      r.headers.add("x-api-key", *key);
    }
    r.headers.add("anthropic-version", client.anthropic_version.empty() ? std::string("2023-06-01")
                                                                        : client.anthropic_version);
    if (!client.anthropic_beta.empty()) {
      r.headers.add("anthropic-beta", client.anthropic_beta);
    }
    break;
  case TargetType::openai:
  case TargetType::mock:
    r.path += suffix;
    if (key != nullptr) {
      r.headers.add("Authorization", "Bearer " + *key);
    }
    break;
  }
  r.headers.add("Accept", stream ? "text/event-stream" : "application/json");
  if (!client.request_id.empty()) {
    r.headers.add("x-request-id", client.request_id);
  }
  r.body = std::move(body);
  r.stream = stream;
  return r;
}

void redact_credentials(std::string& text, const EndpointSettings& endpoint) {
  constexpr std::string_view k_redacted = "[redacted]";
  for (const auto& key : endpoint.api_keys) {
    if (key.value.empty()) {
      continue;
    }
    for (size_t at = text.find(key.value); at != std::string::npos;
         at = text.find(key.value, at + k_redacted.size())) {
      text.replace(at, key.value.size(), k_redacted);
    }
  }
}

} // namespace modelmux
