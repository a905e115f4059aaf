// Upstream requests, client pools and the stream relay.
#include "modelmux/upstream.h"

#include <condition_variable>
#include <mutex>

namespace modelmux {

std::string_view to_string(Outcome outcome) {
  switch (outcome) {
  case Outcome::ok:
    return "ok";
  case Outcome::connect_error:
    return "connect_error";
  case Outcome::timeout:
    return "timeout";
  case Outcome::reset:
    return "reset";
  case Outcome::http_4xx:
    return "http_4xx";
  case Outcome::http_429:
    return "http_429";
  case Outcome::http_5xx:
    return "http_5xx";
  case Outcome::idle:
    return "idle";
  case Outcome::malformed:
    return "malformed";
  case Outcome::truncated:
    return "truncated";
  }
  return "ok";
}

Outcome outcome_from(int status) {
  if (status == 429) {
    return Outcome::http_429;
  }
  if (status >= 500) {
    return Outcome::http_5xx; // Anthropic's 529 "overloaded" included
  }
  if (status >= 400) {
    return Outcome::http_4xx;
  }
  if (status >= 200 && status < 300) {
    return Outcome::ok;
  }
  // A redirect or an informational status is not an answer modelmux can relay.
  return Outcome::http_5xx;
}

Outcome outcome_from(httplib::Error error, bool timed_out) {
  switch (error) {
  case httplib::Error::Success:
    return Outcome::ok;
  case httplib::Error::Connection:
  case httplib::Error::ConnectionTimeout:
  case httplib::Error::BindIPAddress:
  case httplib::Error::SSLConnection:
  case httplib::Error::SSLLoadingCerts:
  case httplib::Error::SSLServerVerification:
    return Outcome::connect_error;
  case httplib::Error::Read:
    return timed_out ? Outcome::timeout : Outcome::reset;
  default:
    return Outcome::reset;
  }
}

namespace {

std::string detail_of(httplib::Error error, Outcome outcome) {
  switch (error) {
  case httplib::Error::Connection:
    return "connection refused or unreachable";
  case httplib::Error::ConnectionTimeout:
    return "connection timed out";
  case httplib::Error::SSLConnection:
    return "TLS handshake failed";
  case httplib::Error::SSLServerVerification:
    return "TLS certificate not trusted";
  case httplib::Error::SSLLoadingCerts:
    return "TLS trust store could not be loaded";
  case httplib::Error::Read:
    return outcome == Outcome::timeout ? "no answer in time" : "connection reset";
  case httplib::Error::Write:
    return "connection reset while sending";
  case httplib::Error::Canceled:
    return "cancelled";
  default:
    return "connection failed (" + httplib::to_string(error) + ")";
  }
}

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

UpstreamEndpoint parse_base_url(std::string_view base_url) {
  UpstreamEndpoint e;
  const size_t scheme_end = base_url.find("://");
  const size_t path_start = scheme_end == std::string_view::npos
                                ? std::string_view::npos
                                : base_url.find('/', scheme_end + 3);
  e.origin = std::string(base_url.substr(0, path_start));
  if (path_start != std::string_view::npos) {
    e.path_prefix = std::string(base_url.substr(path_start));
  }
  while (!e.path_prefix.empty() && e.path_prefix.back() == '/') {
    e.path_prefix.pop_back();
  }
  return e;
}

UpstreamRequest build_upstream_request(const Target& target, ApiRoute route,
                                       std::string_view upstream_model, std::string body,
                                       bool stream, const ClientHeaders& client, size_t key_index) {
  UpstreamRequest r;
  const auto& ep = target.endpoint;
  r.path = parse_base_url(ep.base_url).path_prefix;
  const std::string* key = key_index < ep.api_keys.size() ? &ep.api_keys[key_index].value : nullptr;
  switch (ep.type) {
  case TargetType::azure_openai:
    r.path += "/openai/deployments/";
    r.path += ep.deployment.empty() ? std::string(upstream_model) : ep.deployment;
    r.path += route_suffix(route);
    r.path += "?api-version=" + ep.api_version;
    if (key != nullptr) {
      r.headers.emplace("api-key", *key);
    }
    break;
  case TargetType::anthropic:
    r.path += route_suffix(route);
    if (key != nullptr) {
      r.headers.emplace("x-api-key", *key);
    }
    r.headers.emplace("anthropic-version", client.anthropic_version.empty()
                                               ? std::string("2023-06-01")
                                               : client.anthropic_version);
    if (!client.anthropic_beta.empty()) {
      r.headers.emplace("anthropic-beta", client.anthropic_beta);
    }
    break;
  case TargetType::openai:
  case TargetType::mock:
    r.path += route_suffix(route);
    if (key != nullptr) {
      r.headers.emplace("Authorization", "Bearer " + *key);
    }
    break;
  }
  r.headers.emplace("Accept", stream ? "text/event-stream" : "application/json");
  if (!client.request_id.empty()) {
    r.headers.emplace("x-request-id", client.request_id);
  }
  r.body = std::move(body);
  r.stream = stream;
  return r;
}

ClientPool::ClientPool(const Target& target)
    : m_endpoint(parse_base_url(target.endpoint.base_url)),
      m_tls_verify(target.endpoint.tls_verify), m_timeout(target.timeout),
      m_read_timeout(std::max(target.timeout, target.idle_timeout)) {}

std::unique_ptr<httplib::Client> ClientPool::acquire() {
  std::unique_ptr<httplib::Client> client;
  if (m_free.try_dequeue(client)) {
    return client;
  }
  client = std::make_unique<httplib::Client>(m_endpoint.origin);
  client->set_keep_alive(true);
  client->set_tcp_nodelay(true);
  client->set_follow_location(false);
  client->set_connection_timeout(
      std::min<std::chrono::milliseconds>(m_timeout, std::chrono::seconds(10)));
  client->set_read_timeout(m_read_timeout);
  client->set_write_timeout(std::chrono::seconds(30));
  client->enable_server_certificate_verification(m_tls_verify);
  return client;
}

void ClientPool::release(std::unique_ptr<httplib::Client> client) {
  m_free.enqueue(std::move(client));
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

UpstreamReply send_buffered(ClientPool& pool, UpstreamRequest request,
                            std::chrono::milliseconds timeout, size_t max_answer) {
  UpstreamReply reply;
  auto client = pool.acquire();
  client->set_read_timeout(timeout);
  httplib::Request req;
  req.method = std::move(request.method);
  req.path = std::move(request.path);
  req.headers = std::move(request.headers);
  req.body = std::move(request.body);
  req.set_header("Content-Type", "application/json");
  std::string body;
  bool too_big = false;
  req.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
    if (body.size() + size > max_answer) {
      too_big = true;
      return false;
    }
    body.append(data, size);
    return true;
  };
  httplib::Response res;
  httplib::Error error = httplib::Error::Success;
  const auto started = std::chrono::steady_clock::now();
  const bool sent = client->send(req, res, error);
  if (too_big) {
    reply.outcome = Outcome::malformed;
    reply.detail =
        "answer larger than server.max_answer_size (" + std::to_string(max_answer / 1024) + " KiB)";
    return reply;
  }
  if (!sent) {
    const bool timed_out = std::chrono::steady_clock::now() - started >= timeout * 95 / 100;
    reply.outcome = outcome_from(error, timed_out);
    reply.detail = detail_of(error, reply.outcome);
    return reply;
  }
  reply.status = res.status;
  reply.outcome = outcome_from(res.status);
  reply.detail = "HTTP " + std::to_string(res.status);
  reply.headers = std::move(res.headers);
  reply.body = std::move(body);
  pool.release(std::move(client));
  return reply;
}

// Shared by the relay thread (producer) and the request thread (consumer).
struct UpstreamStream::State {
  std::shared_ptr<ClientPool> pool;
  std::unique_ptr<httplib::Client> client;
  UpstreamRequest request;

  std::mutex mutex;
  std::condition_variable changed;
  bool head_ready = false;
  bool finished = false;
  bool cancelled = false;
  int status = 0;
  httplib::Headers headers;
  std::string pending; // received, not yet taken
  httplib::Error error = httplib::Error::Success;
  bool timed_out = false;
  Outcome outcome = Outcome::ok;
  std::shared_ptr<StreamNotifier> notifier;
  std::chrono::steady_clock::time_point last_activity; // the send, the head, or the last bytes

  // With the mutex held: wakes the reader, and a race waiting on several streams.
  void notify() {
    changed.notify_all();
    if (notifier) {
      notifier->notify();
    }
  }
};

namespace {

// A relay that gets this far ahead of a slow client stops reading, so a stalled client does
// not make modelmux buffer a whole answer.
constexpr size_t k_max_pending = 1 << 20;

} // namespace

uint64_t StreamNotifier::version() const {
  std::lock_guard lock(m_mutex);
  return m_version;
}

void StreamNotifier::notify() {
  std::lock_guard lock(m_mutex);
  ++m_version;
  m_changed.notify_all();
}

void StreamNotifier::wait(uint64_t seen, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(m_mutex);
  m_changed.wait_until(lock, deadline, [&] { return m_version != seen; });
}

std::unique_ptr<UpstreamStream> UpstreamStream::start(std::shared_ptr<ClientPool> pool,
                                                      UpstreamRequest request, ElasticPool& relay,
                                                      std::shared_ptr<StreamNotifier> notifier) {
  auto state = std::make_shared<State>();
  state->notifier = std::move(notifier);
  state->client = pool->acquire();
  state->pool = std::move(pool);
  state->request = std::move(request);
  relay.enqueue([state] {
    httplib::Request req;
    req.method = "POST";
    req.path = std::move(state->request.path);
    req.headers = std::move(state->request.headers);
    req.body = std::move(state->request.body);
    req.set_header("Content-Type", "application/json");
    req.response_handler = [&](const httplib::Response& r) {
      std::lock_guard lock(state->mutex);
      state->status = r.status;
      state->headers = r.headers;
      state->head_ready = true;
      state->last_activity = std::chrono::steady_clock::now();
      state->notify();
      return !state->cancelled;
    };
    req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
      std::unique_lock lock(state->mutex);
      state->changed.wait(
          lock, [&] { return state->cancelled || state->pending.size() < k_max_pending; });
      if (state->cancelled) {
        return false;
      }
      state->pending.append(data, len);
      state->last_activity = std::chrono::steady_clock::now();
      state->notify();
      return true;
    };
    httplib::Response res;
    httplib::Error error = httplib::Error::Success;
    {
      std::lock_guard lock(state->mutex);
      state->last_activity = std::chrono::steady_clock::now();
    }
    const bool ok = state->client->send(req, res, error);
    std::lock_guard lock(state->mutex);
    state->finished = true;
    if (!ok) {
      state->error = error;
      // A read that failed a read timeout after the last bytes met a silent peer, not a
      // broken one.
      state->timed_out = error == httplib::Error::Read &&
                         std::chrono::steady_clock::now() - state->last_activity >=
                             state->pool->read_timeout() * 95 / 100;
      state->outcome = outcome_from(error, state->timed_out);
    } else {
      state->status = res.status;
      state->head_ready = true;
      // A body the library delivered without the receiver (error statuses) goes to pending too.
      if (!res.body.empty()) {
        state->pending.append(res.body);
      }
    }
    if (ok && !state->cancelled && res.status >= 200 && res.status < 300) {
      state->pool->release(std::move(state->client));
    } else {
      state->client.reset();
    }
    state->notify();
  });
  return std::unique_ptr<UpstreamStream>(new UpstreamStream(std::move(state)));
}

UpstreamStream::~UpstreamStream() {
  cancel();
}

void UpstreamStream::cancel() {
  std::lock_guard lock(m_state->mutex);
  if (m_state->finished || m_state->cancelled) {
    m_state->cancelled = true;
    return;
  }
  m_state->cancelled = true;
  // Unblocks a relay thread waiting in recv; the connection is closed, never reused.
  if (m_state->client) {
    m_state->client->stop();
  }
  m_state->notify();
}

UpstreamStream::Wait UpstreamStream::wait_head(Clock::time_point deadline) {
  std::unique_lock lock(m_state->mutex);
  const bool done = m_state->changed.wait_until(
      lock, deadline, [&] { return m_state->head_ready || m_state->finished; });
  if (!done) {
    return Wait::timed_out;
  }
  return m_state->head_ready ? Wait::ready : Wait::failed;
}

int UpstreamStream::status() const {
  std::lock_guard lock(m_state->mutex);
  return m_state->status;
}

const httplib::Headers& UpstreamStream::headers() const {
  // Written once before head_ready is set and never again.
  return m_state->headers;
}

UpstreamStream::Read UpstreamStream::read(std::string& out, Clock::time_point deadline) {
  std::unique_lock lock(m_state->mutex);
  const bool woke = m_state->changed.wait_until(
      lock, deadline, [&] { return !m_state->pending.empty() || m_state->finished; });
  if (!woke) {
    return Read::timed_out;
  }
  if (!m_state->pending.empty()) {
    out.clear();
    out.swap(m_state->pending);
    m_state->changed.notify_all(); // room again for a relay waiting on a slow client
    return Read::data;
  }
  return m_state->error == httplib::Error::Success ? Read::end : Read::failed;
}

Outcome UpstreamStream::failure() const {
  std::lock_guard lock(m_state->mutex);
  return m_state->outcome;
}

std::string UpstreamStream::failure_detail() const {
  std::lock_guard lock(m_state->mutex);
  return detail_of(m_state->error, m_state->outcome);
}

} // namespace modelmux
