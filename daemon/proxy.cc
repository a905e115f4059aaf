// The attempt loop and the relay of answers to the client, stream and non-stream.
#include "modelmux/proxy.h"

#include "modelmux/mock.h"
#include "modelmux/request_body.h"
#include "modelmux/router.h"

#include <chrono>
#include <random>
#include <thread>

namespace modelmux {

namespace {

using Clock = std::chrono::steady_clock;

std::mt19937_64& thread_rng() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng;
}

struct Attempt {
  std::string label;
  Outcome outcome;
  std::string detail;
};

// What the access log line says about one request.
struct RequestRecord {
  std::string request_id;
  ApiRoute route = ApiRoute::chat_completions;
  std::string model;
  std::string target;
  size_t attempts = 0;
  int status = 0;
  bool stream = false;
  Clock::time_point started;
};

void log_request(Log& log, const RequestRecord& r) {
  if (!log.enabled(LogLevel::info)) {
    return;
  }
  const auto ms = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - r.started);
  const std::string status = std::to_string(r.status);
  const std::string attempts = std::to_string(r.attempts);
  char latency[32];
  std::snprintf(latency, sizeof latency, "%.2f", static_cast<double>(ms.count()) / 1000.0);
  log.info("request", {{"request_id", r.request_id},
                       {"route", path_of(r.route)},
                       {"model", r.model},
                       {"target", r.target},
                       {"attempts", attempts, true},
                       {"status", status, true},
                       {"stream", r.stream ? "true" : "false", true},
                       {"latency_ms", latency, true}});
}

bool compatible(ApiRoute route, Protocol target) {
  if (target == Protocol::any) {
    return true;
  }
  if (route == ApiRoute::completions || route == ApiRoute::embeddings) {
    return target == Protocol::openai;
  }
  return target == client_protocol(route);
}

std::string_view protocol_name(Protocol p) {
  return p == Protocol::anthropic ? "Anthropic" : "OpenAI";
}

Error all_failed(std::string_view model, const std::vector<Attempt>& attempts) {
  std::string message = "no target could answer model \"" + std::string(model) + "\": ";
  bool all_429 = true;
  for (size_t i = 0; i < attempts.size(); ++i) {
    const auto& a = attempts[i];
    message += (i == 0 ? "" : "; ") + a.label + " " + std::string(to_string(a.outcome)) + " (" +
               a.detail + ")";
    all_429 = all_429 && a.outcome == Outcome::http_429;
  }
  ErrorKind kind = ErrorKind::upstream;
  if (!attempts.empty() && all_429) {
    kind = ErrorKind::rate_limited;
  } else if (!attempts.empty() && (attempts.back().outcome == Outcome::timeout ||
                                   attempts.back().outcome == Outcome::idle)) {
    kind = ErrorKind::timeout;
  }
  return make_error(kind, message);
}

void set_modelmux_headers(httplib::Response& res, const std::string& target, size_t attempts) {
  res.set_header("x-modelmux-target", target);
  res.set_header("x-modelmux-attempts", std::to_string(attempts));
}

// Relays the upstream's content type, or the one the protocol implies.
std::string content_type_of(const httplib::Headers& headers, bool stream) {
  const auto it = headers.find("Content-Type");
  if (it != headers.end() && !it->second.empty()) {
    return it->second;
  }
  return stream ? "text/event-stream" : "application/json";
}

class ProxyRequest {
public:
  ProxyRequest(App& app, const Snapshot& snapshot, ApiRoute route, const httplib::Request& req,
               httplib::Response& res)
      : m_app(app), m_snapshot(snapshot), m_route(route), m_protocol(client_protocol(route)),
        m_req(req), m_res(res) {
    m_record.started = Clock::now();
    m_record.route = route;
    m_record.request_id = req.get_header_value("x-request-id");
    if (m_record.request_id.empty() || m_record.request_id.size() > 128) {
      m_record.request_id = new_request_id();
    }
    m_deadline = m_record.started + snapshot.config->server.request_timeout;
  }

  void run() {
    m_res.set_header("x-request-id", m_record.request_id);
    auto parsed = parse_request_body(m_route, m_req.body);
    if (!parsed) {
      return fail(parsed.error());
    }
    m_body = &parsed.value();
    m_record.model = m_body->model;
    m_record.stream = m_body->stream;
    const auto policy = parse_policy(m_req.get_header_value("x-modelmux-policy"));
    if (!policy) {
      return fail(policy.error());
    }
    RouteOptions options;
    options.policy = policy.value();
    options.estimated_prompt_tokens = m_body->estimated_prompt_tokens;
    auto route = resolve_route(*m_snapshot.registry, m_body->model, options);
    if (!route) {
      return fail(route.error());
    }
    std::vector<const RouteStep*> steps;
    std::string incompatible;
    for (const auto& step : route->chain) {
      const Protocol p = step.target->protocol();
      if (compatible(m_route, p)) {
        steps.push_back(&step);
      } else if (incompatible.empty()) {
        incompatible = step.label + " speaks the " + std::string(protocol_name(p)) + " API";
      }
    }
    if (steps.empty()) {
      return fail(make_error(ErrorKind::invalid_request,
                             "model \"" + m_body->model + "\" resolves to " + incompatible +
                                 ", and " + std::string(path_of(m_route)) +
                                 " cannot be translated to it yet",
                             "model"));
    }
    for (const RouteStep* step : steps) {
      if (Clock::now() >= m_deadline) {
        break;
      }
      if (attempt(*step)) {
        return;
      }
    }
    fail(all_failed(m_body->model, m_attempts));
  }

private:
  void fail(const Error& e) {
    m_res.status = http_status(e.kind);
    m_res.set_content(error_body(m_protocol, e), "application/json");
    if (!m_attempts.empty()) {
      m_res.set_header("x-modelmux-attempts", std::to_string(m_attempts.size()));
    }
    finish(m_res.status);
  }

  void finish(int status) {
    m_record.status = status;
    m_record.attempts = m_attempts.size();
    log_request(m_app.log(), m_record);
  }

  void record(const RouteStep& step, Outcome outcome, std::string detail) {
    m_attempts.push_back(Attempt{step.label, outcome, std::move(detail)});
    if (outcome != Outcome::ok && outcome != Outcome::http_4xx) {
      m_app.log().warn("attempt_failed", {{"request_id", m_record.request_id},
                                          {"target", step.label},
                                          {"outcome", to_string(outcome)},
                                          {"detail", m_attempts.back().detail}});
    }
  }

  // Answers from the step's target when it can; false moves on to the next target.
  bool attempt(const RouteStep& step) {
    if (step.target->endpoint.type == TargetType::mock) {
      return attempt_mock(step);
    }
    std::string body = rewrite_request_body(m_req.body, *m_body, step.upstream_model,
                                            step.target->endpoint.params);
    ClientHeaders client{m_record.request_id, m_req.get_header_value("anthropic-version"),
                         m_req.get_header_value("anthropic-beta")};
    auto request = build_upstream_request(*step.target, m_route, step.upstream_model,
                                          std::move(body), m_body->stream, client);
    const auto& pool = m_snapshot.pools[step.target->index];
    if (m_body->stream) {
      return attempt_stream(step, pool, std::move(request));
    }
    const auto timeout =
        std::min(step.target->timeout,
                 std::chrono::duration_cast<std::chrono::milliseconds>(m_deadline - Clock::now()));
    auto reply = send_buffered(*pool, std::move(request), timeout);
    record(step, reply.outcome, reply.detail);
    if (reply.outcome != Outcome::ok && reply.outcome != Outcome::http_4xx) {
      return false;
    }
    // A 4xx other than 429 is the client's own error: returned as is, no fallback.
    m_res.status = reply.status;
    m_res.set_content(std::move(reply.body), content_type_of(reply.headers, false));
    set_modelmux_headers(m_res, step.label, m_attempts.size());
    m_record.target = step.label;
    finish(reply.status);
    return true;
  }

  bool attempt_mock(const RouteStep& step) {
    const auto& mock = step.target->endpoint.mock;
    if (mock.latency.count() > 0) {
      std::this_thread::sleep_for(mock.latency);
    }
    const bool fail = mock.fail_rate > 0.0 && std::uniform_real_distribution<double>(0.0, 1.0)(
                                                  thread_rng()) < mock.fail_rate;
    const std::string id = new_request_id().substr(0, 24);
    MockRequest request{m_route,
                        m_body,
                        step.upstream_model,
                        id,
                        std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count(),
                        fail};
    auto reply = mock_reply(request);
    const Outcome outcome = outcome_from(reply.status);
    record(step, outcome, "HTTP " + std::to_string(reply.status));
    if (outcome != Outcome::ok) {
      return false;
    }
    m_res.status = 200;
    set_modelmux_headers(m_res, step.label, m_attempts.size());
    m_record.target = step.label;
    if (reply.events.empty()) {
      m_res.set_content(std::move(reply.body), reply.content_type);
      finish(200);
      return true;
    }
    m_res.set_header("Cache-Control", "no-cache");
    auto events = std::make_shared<std::vector<std::string>>(std::move(reply.events));
    auto next = std::make_shared<size_t>(0);
    m_record.status = 200;
    m_record.attempts = m_attempts.size();
    auto log_record = m_record;
    Log& log = m_app.log();
    m_res.set_chunked_content_provider(
        reply.content_type,
        [events, next](size_t, httplib::DataSink& sink) {
          if (*next < events->size()) {
            const auto& e = (*events)[(*next)++];
            return sink.write(e.data(), e.size());
          }
          sink.done();
          return true;
        },
        [&log, log_record](bool) { log_request(log, log_record); });
    return true;
  }

  bool attempt_stream(const RouteStep& step, const std::shared_ptr<ClientPool>& pool,
                      UpstreamRequest request) {
    std::shared_ptr<UpstreamStream> stream =
        UpstreamStream::start(pool, std::move(request), m_app.relay());
    const auto first_byte_deadline = std::min(m_deadline, Clock::now() + step.target->timeout);
    const auto head = stream->wait_head(first_byte_deadline);
    if (head == UpstreamStream::Wait::timed_out) {
      stream->cancel();
      record(step, Outcome::timeout, "no answer in time");
      return false;
    }
    if (head == UpstreamStream::Wait::failed) {
      record(step, stream->failure(), stream->failure_detail());
      return false;
    }
    const int status = stream->status();
    const Outcome outcome = outcome_from(status);
    // Fall back until the first byte of the answer reaches the client: wait for it here.
    std::string first;
    const auto read = stream->read(first, first_byte_deadline);
    if (outcome != Outcome::ok) {
      std::string body = first;
      std::string more;
      while (body.size() < 65536 &&
             stream->read(more, first_byte_deadline) == UpstreamStream::Read::data) {
        body += more;
      }
      record(step, outcome, "HTTP " + std::to_string(status));
      if (outcome != Outcome::http_4xx) {
        return false;
      }
      m_res.status = status;
      m_res.set_content(std::move(body), content_type_of(stream->headers(), false));
      set_modelmux_headers(m_res, step.label, m_attempts.size());
      m_record.target = step.label;
      finish(status);
      return true;
    }
    if (read == UpstreamStream::Read::timed_out) {
      stream->cancel();
      record(step, Outcome::timeout, "no first byte in time");
      return false;
    }
    if (read == UpstreamStream::Read::failed) {
      record(step, stream->failure(), stream->failure_detail());
      return false;
    }
    if (read == UpstreamStream::Read::end) {
      record(step, Outcome::truncated, "the stream ended before any data");
      return false;
    }
    record(step, Outcome::ok, "HTTP " + std::to_string(status));
    m_res.status = status;
    m_res.set_header("Cache-Control", "no-cache");
    set_modelmux_headers(m_res, step.label, m_attempts.size());
    m_record.target = step.label;
    m_record.status = status;
    m_record.attempts = m_attempts.size();

    // The relay state lives in the provider; one buffer is reused for every slice.
    struct Relay {
      std::shared_ptr<UpstreamStream> stream;
      std::string buffer;
      bool first_sent = false;
      Clock::time_point deadline;
      std::chrono::milliseconds idle;
      Protocol protocol;
    };
    auto relay = std::make_shared<Relay>(
        Relay{stream, std::move(first), false, m_deadline, step.target->idle_timeout, m_protocol});
    auto log_record = m_record;
    Log& log = m_app.log();
    m_res.set_chunked_content_provider(
        content_type_of(stream->headers(), true),
        [relay](size_t, httplib::DataSink& sink) {
          if (!relay->first_sent) {
            relay->first_sent = true;
            return sink.write(relay->buffer.data(), relay->buffer.size());
          }
          const auto deadline = std::min(relay->deadline, Clock::now() + relay->idle);
          switch (relay->stream->read(relay->buffer, deadline)) {
          case UpstreamStream::Read::data:
            return sink.write(relay->buffer.data(), relay->buffer.size());
          case UpstreamStream::Read::end:
            sink.done();
            return true;
          case UpstreamStream::Read::failed:
          case UpstreamStream::Read::timed_out: {
            relay->stream->cancel();
            const auto event = stream_error_event(
                relay->protocol,
                make_error(ErrorKind::upstream,
                           "the upstream stream broke off before the answer was complete"));
            sink.write(event.data(), event.size());
            sink.done();
            return true;
          }
          }
          return false;
        },
        [relay, &log, log_record](bool) {
          relay->stream->cancel(); // a client that left closes the upstream too
          log_request(log, log_record);
        });
    return true;
  }

  App& m_app;
  const Snapshot& m_snapshot;
  ApiRoute m_route;
  Protocol m_protocol;
  const httplib::Request& m_req;
  httplib::Response& m_res;
  const RequestBody* m_body = nullptr;
  std::vector<Attempt> m_attempts;
  RequestRecord m_record;
  Clock::time_point m_deadline;
};

} // namespace

std::string stream_error_event(Protocol protocol, const Error& error) {
  if (protocol == Protocol::anthropic) {
    return "event: error\ndata: " + anthropic_error_body(error) + "\n\n";
  }
  return "data: " + openai_error_body(error) + "\n\n";
}

std::string new_request_id() {
  static constexpr char k_hex[] = "0123456789abcdef";
  auto& rng = thread_rng();
  std::string id(32, '0');
  uint64_t bits = rng();
  for (size_t i = 0; i < id.size(); ++i) {
    if (i == 16) {
      bits = rng();
    }
    id[i] = k_hex[bits & 0xF];
    bits >>= 4;
  }
  return id;
}

void handle_proxied(App& app, const Snapshot& snapshot, ApiRoute route, const httplib::Request& req,
                    httplib::Response& res) {
  ProxyRequest(app, snapshot, route, req, res).run();
}

} // namespace modelmux
