// What an upstream model server is sent for a target — URL, credentials, headers — and what its
// answer came to, free of any network library: the event loops' client and the prober's blocking
// client both take these.
#pragma once

#include "modelmux/http.h"
#include "modelmux/outcome.h"
#include "modelmux/protocol.h"
#include "modelmux/registry.h"

#include <string>

namespace modelmux {

struct UpstreamEndpoint {
  std::string origin;      // scheme://host:port
  std::string path_prefix; // "/v1"
};

UpstreamEndpoint parse_base_url(std::string_view base_url);

// Where a target's requests go: host, port, and whether (and how strictly) TLS is spoken.
struct UpstreamOrigin {
  std::string host;
  std::string port;
  bool tls = false;
  bool verify = true;
  std::string key; // one string naming all of the above, for the idle connection pools
};
UpstreamOrigin origin_of(const EndpointSettings& endpoint);

// What the client sent that an upstream of the same protocol should see.
struct ClientHeaders {
  std::string request_id;
  std::string anthropic_version;
  std::string anthropic_beta;
};

struct UpstreamRequest {
  std::string method = "POST";
  std::string path;
  HttpHeaders headers;
  std::string body;
  bool stream = false;
};

// The request for target: path under its base URL (Azure's deployment path included) and its
// credentials (its key_index-th key): Bearer for OpenAI, x-api-key + anthropic-version for
// Anthropic, api-key for Azure.
UpstreamRequest build_upstream_request(const Target& target, ApiRoute route,
                                       std::string_view upstream_model, std::string body,
                                       bool stream, const ClientHeaders& client,
                                       size_t key_index = 0);

struct UpstreamReply {
  int status = 0;
  HttpHeaders headers;
  std::string body;
  Outcome outcome = Outcome::ok;
  std::string detail; // for the attempt list: "connection refused", "HTTP 503"
};

// Replaces every credential of endpoint found in text with "[redacted]": an upstream's error
// body may quote the key it was sent ("Incorrect API key provided: sk-..."), and modelmux
// returns 4xx bodies to its clients.
void redact_credentials(std::string& text, const EndpointSettings& endpoint);

// The largest whole answer read when the config sets no server.max_answer_size.
inline constexpr size_t k_default_max_answer = 64 * 1024 * 1024;

} // namespace modelmux
