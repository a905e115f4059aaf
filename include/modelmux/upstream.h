// Talking to upstream model servers: the request sent for a target (URL, auth headers), a
// keep-alive client pool per target, the mapping of library errors and statuses to attempt
// outcomes, and the two ways of sending: buffered (whole answer) and streaming (bytes handed to
// the caller as they arrive, read on a relay thread so the caller can wait with deadlines).
#pragma once

#include "modelmux/elastic_pool.h"
#include "modelmux/protocol.h"
#include "modelmux/registry.h"

#include <atomic>
#include <chrono>
#include <concurrentqueue/concurrentqueue.h>
#include <condition_variable>
#include <httplib.h>
#include <memory>
#include <mutex>
#include <string>

namespace modelmux {

enum class Outcome {
  ok,
  connect_error,
  timeout,
  reset,
  http_4xx,
  http_429,
  http_5xx,
  idle,
  malformed,
  truncated,
};

std::string_view to_string(Outcome outcome);
Outcome outcome_from(int status);
// timed_out: the failure came at the read deadline, so a silent peer, not a broken one.
Outcome outcome_from(httplib::Error error, bool timed_out);

struct UpstreamEndpoint {
  std::string origin;      // scheme://host:port
  std::string path_prefix; // "/v1"
};

UpstreamEndpoint parse_base_url(std::string_view base_url);

// What the client sent that an upstream of the same protocol should see.
struct ClientHeaders {
  std::string request_id;
  std::string anthropic_version;
  std::string anthropic_beta;
};

struct UpstreamRequest {
  std::string method = "POST";
  std::string path;
  httplib::Headers headers;
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

// Keep-alive clients for one target. httplib::Client serves one request at a time, so each
// request in flight checks one out and returns it only if its connection is clean.
class ClientPool {
public:
  explicit ClientPool(const Target& target);

  std::unique_ptr<httplib::Client> acquire();
  void release(std::unique_ptr<httplib::Client> client);
  // How long a streaming read waits for bytes before giving up.
  std::chrono::milliseconds read_timeout() const { return m_read_timeout; }

private:
  UpstreamEndpoint m_endpoint;
  bool m_tls_verify;
  std::chrono::milliseconds m_timeout;
  std::chrono::milliseconds m_read_timeout;
  moodycamel::ConcurrentQueue<std::unique_ptr<httplib::Client>> m_free;
};

struct UpstreamReply {
  int status = 0;
  httplib::Headers headers;
  std::string body;
  Outcome outcome = Outcome::ok;
  std::string detail; // for the attempt list: "connection refused", "HTTP 503"
};

// Replaces every credential of endpoint found in text with "[redacted]": an upstream's error
// body may quote the key it was sent ("Incorrect API key provided: sk-..."), and modelmux
// returns 4xx bodies to its clients.
void redact_credentials(std::string& text, const EndpointSettings& endpoint);

// Sends request (its body is moved out, not copied) and reads the whole answer. An answer over
// max_answer bytes is not read further: the attempt fails as malformed and the connection is
// dropped, never reused.
inline constexpr size_t k_default_max_answer = 64 * 1024 * 1024;
UpstreamReply send_buffered(ClientPool& pool, UpstreamRequest request,
                            std::chrono::milliseconds timeout,
                            size_t max_answer = k_default_max_answer);

// Wakes one waiter when any of several streams changes (a head, data, an end), so a request can
// race two upstreams without polling.
class StreamNotifier {
public:
  uint64_t version() const;
  void notify();
  // Waits until the version is no longer seen, or until deadline.
  void wait(uint64_t seen, std::chrono::steady_clock::time_point deadline);

private:
  mutable std::mutex m_mutex;
  std::condition_variable m_changed;
  uint64_t m_version = 0;
};

// A streaming exchange read on a relay thread. The caller waits for the head, then takes the
// body in slices; every wait has a deadline, and cancel() (or destruction) closes the upstream
// connection so an abandoned stream costs the upstream nothing more.
class UpstreamStream {
public:
  using Clock = std::chrono::steady_clock;

  // notifier, when given, is told of every change too.
  static std::unique_ptr<UpstreamStream> start(std::shared_ptr<ClientPool> pool,
                                               UpstreamRequest request, ElasticPool& relay,
                                               std::shared_ptr<StreamNotifier> notifier = {});
  ~UpstreamStream();

  enum class Wait { ready, failed, timed_out };
  // Waits for the status line and headers.
  Wait wait_head(Clock::time_point deadline);
  int status() const;
  const httplib::Headers& headers() const;

  enum class Read { data, end, failed, timed_out };
  // Swaps the bytes received so far into out (out's old contents are discarded): data when
  // there were some, end after the last, failed when the connection broke.
  Read read(std::string& out, Clock::time_point deadline);
  // Why it failed, for the attempt list.
  Outcome failure() const;
  std::string failure_detail() const;

  void cancel();

private:
  struct State;
  explicit UpstreamStream(std::shared_ptr<State> state) : m_state(std::move(state)) {}
  std::shared_ptr<State> m_state;
};

} // namespace modelmux
