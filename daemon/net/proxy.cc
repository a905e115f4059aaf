// The attempt loop and the relay of answers to the client, stream and non-stream, as coroutines
// on the worker's event loop.
#include "net/proxy.h"

#include "modelmux/attempt_engine.h"
#include "modelmux/mock.h"
#include "modelmux/request_body.h"
#include "modelmux/response_cache.h"
#include "modelmux/router.h"
#include "modelmux/stream_relay.h"
#include "modelmux/translate.h"
#include "modelmux/translation/replay.h"
#include "modelmux/translation/responses.h"
#include "modelmux/translation/token_count.h"
#include "net/signal.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <chrono>
#include <random>

namespace modelmux::net {

namespace {

using Clock = std::chrono::steady_clock;

// Shared state (SPEC §12) is never on the critical path for long: a read that takes longer than
// this is treated as absent. Redis on a LAN answers in well under a millisecond.
constexpr auto k_shared_read_deadline = std::chrono::milliseconds(30);
// How far back a conversation is followed in Redis, and how long a response is kept there (as
// the local store keeps it).
constexpr int k_max_shared_turns = 256;
constexpr auto k_shared_response_ttl = std::chrono::hours(24);

// A read of shared state, awaited on this worker for at most `within`: nullopt when the key is
// absent, the answer is slow, or the link is down. The answer comes on the link's thread and is
// posted here; one that comes too late finds the wait over and is dropped.
Task<std::optional<std::string>> shared_get(SharedState& shared, std::string key,
                                            std::chrono::milliseconds within) {
  const auto executor = co_await asio::this_coro::executor;
  struct Wait {
    explicit Wait(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;
    std::optional<std::string> value;
    bool over = false;
  };
  auto wait = std::make_shared<Wait>(executor);
  wait->timer.expires_after(within);
  shared.get(std::move(key), [wait, executor](std::optional<std::string> value) {
    asio::post(executor, [wait, value = std::move(value)]() mutable {
      if (!wait->over) {
        wait->over = true;
        wait->value = std::move(value);
        wait->timer.cancel();
      }
    });
  });
  co_await wait->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  wait->over = true;
  co_return std::move(wait->value);
}

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

// Chat, messages and responses translate between the protocols; completions and embeddings
// have no Anthropic counterpart.
bool compatible(ApiRoute route, Protocol target) {
  if (route == ApiRoute::completions || route == ApiRoute::embeddings) {
    return target != Protocol::anthropic;
  }
  return true;
}

int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
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

double elapsed_ms(Clock::time_point since) {
  return static_cast<double>(
             std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - since).count()) /
         1000.0;
}

// Tokens, cost and times into a usage record. Estimated tokens are flagged as such.
void complete_usage(UsageRecord& r, const TokenUsage& tokens, const std::optional<Price>& price,
                    const std::optional<Price>& reference, double latency_ms, double ttft_ms) {
  set_tokens(r, tokens);
  r.estimated = !tokens.reported && (tokens.input_tokens > 0 || tokens.output_tokens > 0);
  r.cost_micros = price ? cost_micros(*price, tokens) : 0;
  r.reference_cost_micros = reference ? cost_micros(*reference, tokens) : 0;
  r.latency_ms = latency_ms;
  r.ttft_ms = ttft_ms;
}

void set_modelmux_headers(HttpResponse& res, const std::string& target, size_t attempts) {
  res.headers.set("x-modelmux-target", target);
  res.headers.set("x-modelmux-attempts", std::to_string(attempts));
}

// Relays the upstream's content type, or the one the protocol implies.
std::string content_type_of(const HttpHeaders& headers, bool stream) {
  const auto type = headers.get("Content-Type");
  if (!type.empty()) {
    return std::string(type);
  }
  return stream ? "text/event-stream" : "application/json";
}

// A new request id: 32 hex digits.
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

class ProxyRequest {
public:
  ProxyRequest(Worker& worker, App& app, std::shared_ptr<const Snapshot> snapshot, ApiRoute route,
               const HttpRequest& req, ClientReply& reply)
      : m_worker(worker), m_app(app), m_snapshot_owner(std::move(snapshot)),
        m_snapshot(*m_snapshot_owner), m_route(route), m_protocol(client_protocol(route)),
        m_req(req), m_reply(reply), m_parser(worker.take_parser()) {
    m_record.started = Clock::now();
    m_record.route = route;
    m_record.request_id = std::string(req.header("x-request-id"));
    if (m_record.request_id.empty() || m_record.request_id.size() > 128) {
      m_record.request_id = new_request_id();
    }
    m_deadline = m_record.started + m_snapshot.config->server.request_timeout;
    m_app.metrics().request_started(route);
  }

  ~ProxyRequest() {
    m_app.metrics().request_finished(m_route);
    release_parser();
  }

  ProxyRequest(const ProxyRequest&) = delete;
  ProxyRequest& operator=(const ProxyRequest&) = delete;

  // Answers the request: a whole response once decided, or a stream relayed.
  Task<void> run() {
    co_await decide();
    m_body = nullptr; // it lived in decide()'s frame
    if (m_committed) {
      release_parser(); // the relay needs nothing more of the parsed request
      co_await finish_stream();
    } else if (!m_streamed) {
      co_await m_reply.send(m_res);
    }
  }

private:
  Task<void> decide() {
    m_res.headers.set("x-request-id", m_record.request_id);
    auto parsed = parse_request_body(m_route, m_req.body, *m_parser);
    if (!parsed) {
      co_return fail(parsed.error());
    }
    m_body = &parsed.value();
    m_record.model = m_body->model;
    m_record.stream = m_body->stream;
    const auto policy = parse_policy(std::string(m_req.header("x-modelmux-policy")));
    if (!policy) {
      co_return fail(policy.error());
    }
    if (m_route == ApiRoute::responses) {
      co_await fetch_shared_conversation();
      if (auto st = start_response(); !st) {
        co_return fail(st.error());
      }
    }
    RouteOptions options;
    options.policy = policy.value();
    options.estimated_prompt_tokens = m_body->estimated_prompt_tokens;
    options.needs = needed_capabilities(m_route, m_body->root);
    const auto now = Clock::now();
    options.usable = [this, now](const RouteStep& s) { return health_of(s).usable(now); };
    options.learned_context_window = [this](const Target& t, std::string_view model) {
      return m_snapshot.health[t.index]->learned_context_window(model);
    };
    options.learned_capabilities = [this](const Target& t) {
      return m_snapshot.health[t.index]->learned_capabilities();
    };
    auto route = resolve_route(*m_snapshot.registry, m_body->model, options);
    if (!route) {
      co_return fail(route.error());
    }
    for (const auto& skipped : route->skipped) {
      if (skipped.reason.starts_with("lacks ")) { // a capability the request needs
        m_skips.push_back(Skip{skipped.label, skipped.reason, false});
      }
    }

    // Each step by its target's one name, the name its health, metrics and records carry.
    for (auto& step : route->chain) {
      step.label = m_snapshot.health[step.target->index]->member_for(step.upstream_model).target;
    }
    // Over budget, only free targets serve.
    const auto budget = m_app.budget(m_snapshot.config->budget,
                                     std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
    std::vector<StepTraits> traits;
    traits.reserve(route->chain.size());
    for (const auto& step : route->chain) {
      StepTraits t;
      t.priced = step.cost && (step.cost->input > 0 || step.cost->output > 0);
      t.compatible = compatible(m_route, step.target->protocol());
      traits.push_back(t);
    }
    const auto admitted = admit_steps(traits, budget.exhausted);
    std::vector<const RouteStep*> steps;
    for (const size_t i : admitted.steps) {
      steps.push_back(&route->chain[i]);
    }
    if (steps.empty() && admitted.priced_skipped) {
      co_return fail(make_error(ErrorKind::rate_limited, "budget exhausted: " + budget.why +
                                                             "; model \"" + m_body->model +
                                                             "\" has no free target"));
    }
    if (steps.empty()) {
      const auto& step = route->chain[admitted.first_incompatible.value_or(0)];
      co_return fail(
          make_error(ErrorKind::invalid_request,
                     "model \"" + m_body->model + "\" resolves to " + step.label + " speaks the " +
                         std::string(protocol_name(step.target->protocol())) + " API, and " +
                         std::string(path_of(m_route)) + " has no Anthropic counterpart",
                     "model"));
    }
    if (m_route == ApiRoute::count_tokens) {
      co_return co_await count_tokens(steps);
    }
    if (co_await answer_from_cache(route.value())) {
      co_return;
    }
    if (co_await try_chain(steps)) {
      co_return;
    }
    // A request that no target could even be sent (every one needed a translation the request
    // cannot have) is the client's error, and says why.
    if (m_attempts.empty() && m_refusal) {
      co_return fail(*m_refusal);
    }
    // Every target was busy: a 503 the SDKs retry, after a second.
    if (m_attempts.empty() &&
        std::any_of(m_skips.begin(), m_skips.end(), [](const Skip& s) { return s.busy; })) {
      m_res.headers.set("retry-after", "1");
      co_return fail(
          make_error(ErrorKind::unavailable,
                     "every target for model \"" + m_body->model + "\" is busy: " + skips_text()));
    }
    fail(all_failed(m_body->model, m_attempts));
  }

  // The biggest stream kept to be stored: a bigger answer is served, not cached.
  static constexpr size_t k_max_cached_stream = 8 * 1024 * 1024;

  // SPEC §11: looks the request up in the response cache and answers from it on a hit; on a miss
  // leaves m_cache_key set, so the answer is stored once it is whole and successful. Concurrent
  // identical misses each go upstream (no request waits on another's), and the first to finish
  // is stored.
  Task<bool> answer_from_cache(const Route& route) {
    const auto& config = m_snapshot.config->cache;
    if (!config.enabled || (m_route != ApiRoute::chat_completions &&
                            m_route != ApiRoute::messages && m_route != ApiRoute::responses)) {
      co_return false;
    }
    if (cache_use(config.when, m_req.header("x-modelmux-cache"), m_body->root) ==
        CacheUse::bypass) {
      m_app.metrics().cache_request("bypass");
      co_return false;
    }
    const auto canonical = canonical_json(m_req.body, {"stream", "stream_options"});
    if (!canonical) {
      co_return false;
    }
    std::vector<std::string> chain;
    for (const auto& step : route.chain) {
      chain.push_back(step.label);
    }
    m_cache_key = cache_key(m_route, chain, canonical.value());
    auto hit = m_app.cache().get(m_cache_key, m_app.cache_now());
    if (auto* shared = m_app.shared(); !hit && shared != nullptr) {
      // Another instance may have stored it (SPEC §12): asked, for a moment at most.
      if (auto bytes =
              co_await shared_get(*shared, "cache:" + m_cache_key, k_shared_read_deadline)) {
        if (auto decoded = decode_cached_answer(*bytes)) {
          hit = std::make_shared<const CachedAnswer>(std::move(*decoded));
          m_app.cache().put(m_cache_key, hit, m_app.cache_now());
        }
      }
    }
    if (!hit) {
      m_app.metrics().cache_request("miss");
      m_res.headers.set("x-modelmux-cache", "miss");
      co_return false;
    }
    std::optional<std::string> replay;
    if (m_body->stream) {
      auto stream = stream_of_answer(m_protocol, hit->body, m_body->include_usage);
      if (!stream) {
        // A stored answer that cannot replay is the cache's fault: the request goes upstream
        // as a miss, and its answer takes the entry's place.
        m_app.metrics().cache_request("miss");
        m_res.headers.set("x-modelmux-cache", "miss");
        co_return false;
      }
      replay = std::move(stream.value());
    }
    m_app.metrics().cache_request("hit");
    m_cache_key.clear(); // nothing to store
    co_await serve_cached(*hit, replay);
    co_return true;
  }

  // A hit: the stored answer in the client's mode — as it is, or `replay`, its stream — with
  // its original usage, at no cost, counting what it saved.
  Task<void> serve_cached(const CachedAnswer& hit, const std::optional<std::string>& replay) {
    m_res.status = 200;
    m_res.headers.set("x-modelmux-cache", "hit");
    set_modelmux_headers(m_res, hit.target, 0);
    m_record.target = hit.target;
    m_record.status = 200;
    m_served_price.reset(); // a hit costs nothing
    UsageRecord usage = usage_draft();
    usage.cache_hit = true;
    usage.cache_savings_micros = hit.cost_micros;
    if (!m_body->stream) {
      m_res.set_content(hit.body, "application/json");
      log_request(m_app.log(), m_record);
      observe_overhead();
      complete_usage(usage, hit.usage, std::nullopt, m_snapshot.reference_price,
                     elapsed_ms(m_record.started), elapsed_ms(m_record.started));
      m_app.record_usage(std::move(usage));
      co_return;
    }
    m_res.content_type = "text/event-stream";
    m_res.headers.set("Cache-Control", "no-cache");
    m_streamed = true;
    observe_overhead();
    release_parser();
    if (co_await m_reply.begin_stream(m_res) && co_await m_reply.write(*replay)) {
      co_await m_reply.end_stream();
    }
    log_request(m_app.log(), m_record);
    complete_usage(usage, hit.usage, std::nullopt, m_snapshot.reference_price,
                   elapsed_ms(m_record.started), elapsed_ms(m_record.started));
    m_app.record_usage(std::move(usage));
  }

  // A stream's relayed bytes, kept while the request may be stored.
  void capture_for_cache(std::string_view bytes) {
    if (m_cache_key.empty()) {
      return;
    }
    if (m_cache_capture.size() + bytes.size() > k_max_cached_stream) {
      m_cache_key.clear(); // too big to keep: served, not stored
      m_cache_capture = std::string();
      return;
    }
    m_cache_capture.append(bytes);
  }

  void store_in_cache(const std::string& body, const TokenUsage& tokens, int64_t cost_micros) {
    auto answer = std::make_shared<CachedAnswer>();
    answer->body = body;
    answer->target = m_record.target;
    answer->usage = tokens;
    answer->cost_micros = cost_micros;
    if (auto* shared = m_app.shared()) {
      shared->put("cache:" + m_cache_key, encode_cached_answer(*answer),
                  m_snapshot.config->cache.ttl);
    }
    m_app.cache().put(m_cache_key, std::move(answer), m_app.cache_now());
    m_cache_key.clear();
  }

  // A slot at step's target into lease: at once, after a wait in its queue, or not at all
  // (the target is busy; skipped, recorded in m_skips). A hedge takes one only if it is free
  // now: it never queues, and is not a skip. A target without max_concurrency costs one
  // branch here.
  Task<bool> take_slot(const RouteStep& step, SlotLease& lease, bool hedge) {
    if (step.target->endpoint.max_concurrency.value_or(0) <= 0) {
      co_return true;
    }
    const auto& slots = m_snapshot.slots[step.target->index];
    const auto started = Clock::now();
    if (hedge) {
      if (!slots->try_acquire()) {
        co_return false;
      }
      lease = SlotLease(slots, started);
      co_return true;
    }
    // The wake comes from whichever worker gave a slot back; it is posted to this one, where
    // the timer the wait sleeps on lives.
    struct Wait {
      explicit Wait(asio::io_context& io) : timer(io) {}
      asio::steady_timer timer;
      bool woken = false;
    };
    auto wait = std::make_shared<Wait>(m_worker.io);
    auto admission = slots->acquire(started, m_snapshot.config->routing.spill_after,
                                    [wait, executor = m_worker.io.get_executor()] {
                                      asio::post(executor, [wait] {
                                        wait->woken = true;
                                        wait->timer.cancel();
                                      });
                                    });
    switch (admission.decision) {
    case TargetSlots::Decision::granted:
      lease = SlotLease(slots, started);
      co_return true;
    case TargetSlots::Decision::full:
      skip_busy(step, "busy: queue full");
      co_return false;
    case TargetSlots::Decision::spill:
      skip_busy(step, "busy: expected wait over spill_after");
      co_return false;
    case TargetSlots::Decision::queued:
      break;
    }
    // Leaves the queue however the wait ends, a coroutine destroyed at shutdown included; a
    // slot granted meanwhile is given back.
    struct Leave {
      std::shared_ptr<TargetSlots> slots;
      std::shared_ptr<TargetSlots::Waiter> waiter;
      bool done = false;
      ~Leave() {
        if (!done && slots->leave(waiter)) {
          slots->release(Clock::duration::zero());
        }
      }
    } leave{slots, admission.waiter};
    const auto until =
        std::min(m_deadline, started + step.target->endpoint.slot_limits().queue_timeout);
    while (!wait->woken && Clock::now() < until) {
      wait->timer.expires_at(until);
      co_await wait->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    leave.done = true;
    const bool granted = slots->leave(admission.waiter);
    const auto now = Clock::now();
    m_app.metrics().queue_wait(step.target->name,
                               std::chrono::duration<double>(now - started).count());
    if (!granted) {
      skip_busy(step, "busy: no slot within queue_timeout");
      co_return false;
    }
    lease = SlotLease(slots, now);
    co_return true;
  }

  void skip_busy(const RouteStep& step, std::string reason) {
    m_skips.push_back(Skip{step.label, std::move(reason), true});
  }

  // "custom:local (busy: queue full), ..."
  std::string skips_text() const {
    std::string out;
    for (const auto& s : m_skips) {
      out += (out.empty() ? "" : ", ") + s.label + " (" + s.reason + ")";
    }
    return out;
  }

  // A stream's relay: the translator (or pass-through reader) and what it produced that the
  // client has not received yet; reused for every slice.
  struct RelayState {
    std::unique_ptr<StreamRelay> relay;
    std::string out; // relayed bytes not yet written to the client
    std::shared_ptr<TargetHealth> health;
    GatewayMetrics* metrics = nullptr;
    std::string target; // its one name, as on every surface
    std::chrono::milliseconds first_byte_latency{0};
    bool settled = false;
    Outcome outcome = Outcome::ok;

    // How the stream ended is the attempt's outcome, recorded once in the metrics and the
    // target's health (and, by the caller, the usage log): a stream cut after its first byte is
    // a failed attempt, never "ok". A client that leaves settles nothing against the target.
    void settle(Outcome how) {
      if (!settled) {
        settled = true;
        outcome = how;
        metrics->attempt(target, how);
        health->record_attempt(how, first_byte_latency, Clock::now());
      }
    }
    void client_left() {
      if (!settled) {
        settled = true;
        metrics->attempt(target, Outcome::ok); // the target did not fail; it was cut off
      }
    }
    void broke_off(const std::string& why) {
      relay->write_failure(make_error(ErrorKind::upstream, why), out);
    }
  };

  // A stream whose first byte is on its way to the client: what its relay and its usage record
  // need, once the attempt loop has ended.
  struct Committed {
    std::unique_ptr<UpstreamExchange> exchange;
    std::unique_ptr<RelayState> relay;
    SlotLease lease; // the target's slot, held until the stream ends
    UsageRecord usage;
    TokenUsage estimated;
  };

  void fail(const Error& e) {
    m_res.status = http_status(e.kind);
    m_res.set_content(error_body(m_protocol, e), "application/json");
    if (!m_attempts.empty()) {
      m_res.headers.set("x-modelmux-attempts", std::to_string(m_attempts.size()));
    }
    report_skips("none");
    finish(m_res.status);
  }

  // Targets passed over on the way to `to`, busy or lacking a capability: said in
  // x-modelmux-skipped, and the busy ones counted as spills. They are not attempts: not in
  // x-modelmux-attempts, nor in any target's health.
  void report_skips(const std::string& to) {
    if (m_skips.empty()) {
      return;
    }
    m_res.headers.set("x-modelmux-skipped", skips_text());
    for (const auto& s : m_skips) {
      if (s.busy) {
        m_app.metrics().spill(s.label, to);
      }
    }
  }

  void served_by(const RouteStep& step, bool translated = false) {
    set_modelmux_headers(m_res, step.label, m_attempts.size());
    report_skips(step.label);
    if (translated && !m_responses.tools.dropped.empty()) {
      // Hosted tools (web_search, ...) this target cannot run were left out; say which.
      std::string names;
      for (const auto& t : m_responses.tools.dropped) {
        names += (names.empty() ? "" : ", ") + t;
      }
      m_res.headers.set("x-modelmux-dropped-tools", names);
    }
    m_record.target = step.label;
    m_served_price = step.cost;
  }

  // A request answered in one piece (or refused): logged, and its usage recorded.
  void finish(int status) {
    m_record.status = status;
    m_record.attempts = m_attempts.size();
    log_request(m_app.log(), m_record);
    observe_overhead();
    UsageRecord usage = usage_draft();
    TokenUsage tokens;
    // Counting tokens is free: its record says so, whatever the count.
    if (status >= 200 && status < 300 && m_route != ApiRoute::count_tokens) {
      // A translated answer's usage was read while translating; any other is read here.
      tokens = m_answer_usage
                   ? *m_answer_usage
                   : usage_of_answer(m_protocol, m_res.body).value_or(estimate(m_res.body.size()));
    }
    complete_usage(usage, tokens, m_served_price, m_snapshot.reference_price,
                   elapsed_ms(m_record.started), elapsed_ms(m_record.started));
    if (status == 200 && !m_cache_key.empty() && !m_record.target.empty()) {
      store_in_cache(m_res.body, tokens, usage.cost_micros);
    }
    m_app.record_usage(std::move(usage));
  }

  // POST /v1/messages/count_tokens: an Anthropic target counts exactly (and a failure moves on
  // to the next); any other target's count is modelmux's estimate, and says so.
  Task<void> count_tokens(const std::vector<const RouteStep*>& steps) {
    for (const auto* step : steps) {
      if (step->target->protocol() == Protocol::anthropic) {
        const std::vector<const RouteStep*> one{step};
        if (co_await try_chain(one)) {
          co_return;
        }
        continue;
      }
      const auto exact = co_await count_with_tokenizer(*step);
      m_res.status = 200;
      served_by(*step);
      if (!exact) {
        m_res.headers.set("x-modelmux-estimated", "true");
      }
      std::string body;
      JsonWriter(body)
          .begin_object()
          .field("input_tokens", exact.value_or(m_body->estimated_prompt_tokens))
          .end_object();
      m_res.set_content(std::move(body), "application/json");
      finish(200);
      co_return;
    }
    fail(all_failed(m_body->model, m_attempts));
  }

  // An exact count from the tokenizer endpoint of the step's server (vLLM, llama.cpp), on the
  // chat request the messages request would become; nullopt when it has none or it failed.
  // The calls are on the attempt list but never count against the target's health: a server
  // started without its tokenizer routes answers 404 and still serves.
  Task<std::optional<int64_t>> count_with_tokenizer(const RouteStep& step) {
    const Tokenizer tokenizer = tokenizer_of(*step.target);
    if (tokenizer == Tokenizer::none) {
      co_return std::nullopt;
    }
    auto chat = anthropic_request_to_openai(m_body->root, step.upstream_model, {});
    if (!chat) {
      co_return std::nullopt;
    }
    const size_t key = health_of(step).key_for(Clock::now()).value_or(0);
    // No co_await inside a conditional expression: GCC 12 destroys its temporaries twice.
    if (tokenizer == Tokenizer::vllm) {
      const auto body = vllm_tokenize_body(chat.value());
      if (!body) {
        co_return std::nullopt;
      }
      const auto answer = co_await tokenizer_call(step, key, "/tokenize", *body);
      co_return answer ? vllm_token_count(*answer) : std::nullopt;
    }
    const auto prompt =
        co_await tokenizer_call(step, key, "/apply-template", std::move(chat.value()));
    const auto body = prompt ? llamacpp_tokenize_body(*prompt) : std::nullopt;
    if (!body) {
      co_return std::nullopt;
    }
    const auto answer = co_await tokenizer_call(step, key, "/tokenize", *body);
    co_return answer ? llamacpp_token_count(*answer) : std::nullopt;
  }

  // One call to a tokenizer route at the root of step's server (not under /v1).
  Task<std::optional<std::string>> tokenizer_call(const RouteStep& step, size_t key,
                                                  std::string path, std::string body) {
    auto request = build_upstream_request(*step.target, ApiRoute::chat_completions,
                                          step.upstream_model, std::move(body), false,
                                          ClientHeaders{m_record.request_id, {}, {}}, key);
    request.path = std::move(path);
    m_attempt_started = Clock::now();
    const auto deadline = attempt_deadline(step);
    auto reply = co_await send_buffered(m_worker.pools, m_snapshot.origins[step.target->index],
                                        request, deadline, deadline, 1024 * 1024);
    record(step, reply.outcome, "tokenizer " + reply.detail, false);
    if (reply.outcome != Outcome::ok) {
      co_return std::nullopt;
    }
    co_return std::move(reply.body);
  }

  // Returns the body parser to the worker once nothing reads the parsed request any more (a
  // stream's relay needs none of it): 9,000 open streams would otherwise hold 9,000 parsers.
  // m_body's root is not to be read after this.
  void release_parser() {
    if (m_parser) {
      m_worker.give_back(std::move(m_parser));
    }
  }

  // The time to first byte a target is given, within the request's own deadline.
  Clock::time_point attempt_deadline(const RouteStep& step) const {
    return std::min(m_deadline, Clock::now() + step.target->timeout);
  }

  // What modelmux itself added until the answer (or a stream's first byte) was ready: the time
  // so far minus the time spent on upstream attempts.
  void observe_overhead() {
    const auto total = Clock::now() - m_record.started;
    m_app.metrics().overhead(m_route,
                             std::chrono::duration<double>(total - m_upstream_wait).count());
  }

  // Tokens when the upstream reported none: the prompt as estimated, four bytes an output token.
  TokenUsage estimate(size_t output_bytes) const {
    TokenUsage u;
    u.input_tokens = m_body ? m_body->estimated_prompt_tokens : 0;
    u.output_tokens = static_cast<int64_t>(output_bytes / 4);
    return u;
  }

  // The usage record of this request, but for tokens, cost and times.
  UsageRecord usage_draft() const {
    UsageRecord r;
    r.ts_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
    r.request_id = m_record.request_id;
    r.route = std::string(path_of(m_route));
    r.model = m_record.model;
    r.target = m_record.target;
    r.attempts = static_cast<int64_t>(m_attempts.size());
    r.status = m_record.status;
    r.stream = m_record.stream;
    for (const auto& a : m_attempts) {
      if (a.outcome != Outcome::ok && a.outcome != Outcome::http_4xx) {
        r.failed_targets.push_back(a.label);
      }
    }
    return r;
  }

  // Adds to the attempt list and, unless counted later (a stream, when it ends), to the target's
  // health.
  void record(const RouteStep& step, Outcome outcome, std::string detail,
              bool count_health = true) {
    m_upstream_wait += Clock::now() - m_attempt_started;
    m_app.metrics().attempt(step.label, outcome);
    if (count_health) {
      const auto now = Clock::now();
      health_of(step).record_attempt(
          outcome, std::chrono::duration_cast<std::chrono::milliseconds>(now - m_attempt_started),
          now);
    }
    m_attempts.push_back(Attempt{step.label, outcome, std::move(detail)});
    if (outcome != Outcome::ok && outcome != Outcome::http_4xx) {
      m_app.log().warn("attempt_failed", {{"request_id", m_record.request_id},
                                          {"target", step.label},
                                          {"outcome", to_string(outcome)},
                                          {"detail", m_attempts.back().detail}});
    }
  }

  // The request for one target, before a key is chosen.
  struct Prepared {
    Protocol upstream = Protocol::openai;
    bool translate = false;
    ApiRoute route = ApiRoute::chat_completions;
    std::string body;
    ClientHeaders client;
  };

  // The wire a target gets this request in: its own protocol, or Responses for a target that
  // speaks it (responses: true) when the client does too.
  Protocol upstream_wire(const Target& target) const {
    const Protocol p = target.protocol();
    if (m_protocol == Protocol::responses && p == Protocol::openai && target.endpoint.responses) {
      return Protocol::responses;
    }
    return p;
  }

  // Translates or rewrites the body for step's target; nullopt (and m_refusal) when the request
  // cannot be translated for it.
  std::optional<Prepared> prepare(const RouteStep& step) {
    Prepared p;
    p.upstream = upstream_wire(*step.target);
    p.translate = p.upstream != m_protocol;
    p.route = m_route;
    const auto& params = step.target->endpoint.params;
    const auto limit = output_limit(step);
    if (m_protocol == Protocol::responses) {
      auto body = prepare_responses(step, p.upstream);
      if (!body) {
        m_refusal = body.error();
        return std::nullopt;
      }
      p.body = std::move(body.value());
      p.route = p.upstream == Protocol::anthropic ? ApiRoute::messages
                : p.upstream == Protocol::openai  ? ApiRoute::chat_completions
                                                  : ApiRoute::responses;
    } else if (p.translate) {
      auto translated =
          m_protocol == Protocol::openai
              ? openai_request_to_anthropic(m_body->root, step.upstream_model, params, limit)
              : anthropic_request_to_openai(m_body->root, step.upstream_model, params, limit);
      if (!translated) {
        m_refusal = translated.error();
        return std::nullopt;
      }
      p.body = std::move(translated.value());
      p.route = m_protocol == Protocol::openai ? ApiRoute::messages : ApiRoute::chat_completions;
    } else {
      const bool ask_usage =
          m_body->stream && p.upstream == Protocol::openai &&
          (m_route == ApiRoute::chat_completions || m_route == ApiRoute::completions);
      p.body =
          rewrite_request_body(m_req.body, *m_body, step.upstream_model, params, ask_usage, limit);
    }
    // Only an Anthropic client talking to an Anthropic target has version headers to pass on;
    // every other pair skips the two case-insensitive header lookups.
    const bool anthropic_pair = !p.translate && p.upstream == Protocol::anthropic;
    p.client = ClientHeaders{
        m_record.request_id,
        anthropic_pair ? std::string(m_req.header("anthropic-version")) : std::string(),
        anthropic_pair ? std::string(m_req.header("anthropic-beta")) : std::string()};
    return p;
  }

  // The health of step's target (a provider's model, or a custom model).
  TargetHealth& health_of(const RouteStep& step) const {
    return *m_snapshot.health[step.target->index]->member_for(step.upstream_model).health;
  }

  // The most output tokens step's target can give this request: its max_output_tokens, and what
  // its context window, as its probe learned it, leaves after the prompt (vLLM and llama.cpp
  // refuse a request whose prompt and max_tokens together exceed the window).
  std::optional<int64_t> output_limit(const RouteStep& step) const {
    auto limit = step.target->endpoint.max_output_tokens;
    const auto window =
        m_snapshot.health[step.target->index]->learned_context_window(step.upstream_model);
    if (window) {
      const int64_t room = *window - m_body->estimated_prompt_tokens;
      if (room > 0) {
        limit = limit ? std::min(*limit, room) : room;
      }
    }
    return limit;
  }

  // The Responses request for one target: as is (but for the model, and the conversation in
  // place of previous_response_id) to a target that speaks Responses, else translated to chat
  // completions or to Anthropic messages.
  Result<std::string> prepare_responses(const RouteStep& step, Protocol upstream) {
    const auto& endpoint = step.target->endpoint;
    const auto limit = output_limit(step);
    if (upstream == Protocol::responses) {
      if (m_responses.previous_response_id.empty()) {
        return rewrite_request_body(m_req.body, *m_body, step.upstream_model, endpoint.params,
                                    false, limit);
      }
      return responses_request_with_input(m_body->root, m_input, step.upstream_model, limit);
    }
    m_responses.tools = ResponsesTools{};
    if (upstream == Protocol::anthropic) {
      return responses_request_to_anthropic(m_body->root, m_input, step.upstream_model,
                                            endpoint.params, m_responses.tools, limit);
    }
    return responses_request_to_chat(m_body->root, m_input, step.upstream_model, endpoint.params,
                                     upstream, m_responses.tools, limit);
  }

  // With shared state (SPEC §12), a conversation another instance stored: its responses are
  // read from Redis, newest first, until one known here or the first, and kept here too. Each
  // read waits k_shared_read_deadline at most; what does not come in time is simply unknown.
  Task<void> fetch_shared_conversation() {
    auto* shared = m_app.shared();
    std::string_view previous;
    if (shared == nullptr || m_body->root["previous_response_id"].get(previous) ||
        previous.empty()) {
      co_return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (m_app.responses().conversation(previous, now)) {
      co_return;
    }
    std::vector<std::pair<std::string, std::string>> fetched; // id, "parent\nitems"
    std::string id(previous);
    for (int hops = 0; hops < k_max_shared_turns && !id.empty(); ++hops) {
      auto bytes = co_await shared_get(*shared, "resp:" + id, k_shared_read_deadline);
      if (!bytes || bytes->find('\n') == std::string::npos) {
        co_return; // unknown, slow or down: the request says the id is unknown
      }
      std::string parent = bytes->substr(0, bytes->find('\n'));
      fetched.emplace_back(std::move(id), std::move(*bytes));
      if (parent.empty() || m_app.responses().conversation(parent, now)) {
        break;
      }
      id = std::move(parent);
    }
    for (auto it = fetched.rbegin(); it != fetched.rend(); ++it) {
      const size_t nl = it->second.find('\n');
      m_app.responses().put(it->first, it->second.substr(0, nl), it->second.substr(nl + 1), now);
    }
  }

  // A Responses request: its id, and the conversation it continues.
  Status start_response() {
    const auto& root = m_body->root;
    m_responses.id = "resp_" + new_request_id();
    m_responses.created_at = unix_seconds();
    bool store = true;
    if (!root["store"].get(store)) {
      m_responses.store = store;
    }
    std::string_view previous;
    if (!root["previous_response_id"].get(previous)) {
      m_responses.previous_response_id = std::string(previous);
    }
    simdjson::dom::element input;
    const bool has_input = !root["input"].get(input) && !input.is_null();
    if (!has_input && previous.empty()) {
      return make_error(ErrorKind::invalid_request, "'input' is required", "input");
    }
    const std::string items = has_input ? responses_input_items(input) : std::string();
    if (m_responses.store) {
      m_input_items = items;
    }
    if (previous.empty()) {
      m_input = input;
      return ok();
    }
    auto conversation = m_app.responses().conversation(previous, std::chrono::steady_clock::now());
    if (!conversation) {
      return make_error(ErrorKind::invalid_request,
                        "previous_response_id \"" + std::string(previous) +
                            "\" is unknown or has expired (modelmux keeps the latest responses "
                            "whose request did not say store: false)",
                        "previous_response_id");
    }
    std::string& all = *conversation;
    all.pop_back(); // "]"
    if (!items.empty()) {
      all += all.size() > 1 ? "," : "";
      all += items;
    }
    all.push_back(']');
    m_conversation = std::move(all);
    if (m_conversation_parser.parse(m_conversation).get(m_input)) {
      return make_error(ErrorKind::internal, "a stored conversation did not parse");
    }
    return ok();
  }

  // Keeps a served response for previous_response_id, unless its request said store: false.
  static void keep_response(App& app, const ResponsesContext& context, std::string_view id,
                            const std::string& input_items, std::string_view output_items) {
    if (!context.store || id.empty()) {
      return;
    }
    std::string items = input_items;
    if (!items.empty() && !output_items.empty()) {
      items.push_back(',');
    }
    items += output_items;
    if (auto* shared = app.shared()) {
      shared->put("resp:" + std::string(id), context.previous_response_id + "\n" + items,
                  k_shared_response_ttl);
    }
    app.responses().put(std::string(id), context.previous_response_id, std::move(items),
                        std::chrono::steady_clock::now());
  }

  // A 429 cools the key for as long as the upstream asks.
  // With shared state, the other instances cool the same key (SPEC §12).
  void cool_down(const RouteStep& step, TargetHealth& health, size_t key,
                 const HttpHeaders& headers) {
    const auto wait =
        retry_after(std::string(headers.get("retry-after")),
                    std::string(headers.get("retry-after-ms")), std::chrono::system_clock::now())
            .value_or(k_default_cool_down);
    health.cool_key(key, Clock::now() + wait);
    m_app.share_cooldown(step, key, Clock::now() + wait);
  }

  // A whole answer from upstream in the client's protocol; usage receives its tokens, and a
  // Responses answer's output items are kept for the conversation store.
  Result<std::string> translate_answer(Protocol upstream, std::string_view body,
                                       TokenUsage& usage) {
    if (m_protocol == Protocol::openai) {
      return anthropic_response_to_openai(body, unix_seconds(), &usage);
    }
    if (m_protocol == Protocol::anthropic) {
      return openai_response_to_anthropic(body, &usage);
    }
    if (upstream == Protocol::anthropic) {
      return anthropic_answer_to_responses(body, m_responses, &usage, &m_output_items);
    }
    return chat_answer_to_responses(body, m_responses, &usage, &m_output_items);
  }

  // Tries the steps until one serves (true: the answer is in m_res, or a stream is committed)
  // or none can. The attempt engine decides what happens next; this carries its actions out:
  // a contender that may be raced runs on a task of its own and reports to the engine, any
  // other runs inline. Every contender's task has ended when this returns.
  Task<bool> try_chain(const std::vector<const RouteStep*>& steps) {
    std::vector<AttemptStep> plan;
    plan.reserve(steps.size());
    for (const auto* step : steps) {
      AttemptStep a;
      a.label = step->label;
      a.keys = std::max<size_t>(1, step->target->endpoint.api_keys.size());
      a.hedgeable = step->target->endpoint.type != TargetType::mock;
      a.first_byte_timeout = step->target->timeout;
      a.idle_timeout = step->target->idle_timeout;
      plan.push_back(std::move(a));
    }
    AttemptEngine::Options options;
    options.deadline = m_deadline;
    options.hedge_after = m_snapshot.config->routing.hedge_after;
    options.stream = m_body->stream;
    auto& engine = m_engine.emplace(std::move(plan), options);
    // Not co_await inside the braces: GCC 12 destroys a braced initializer's temporaries twice
    // there.
    const auto executor = co_await asio::this_coro::executor;
    Chain chain{steps, {}, Signal(executor)};
    engine.start(Clock::now());
    for (;;) {
      const auto seen = chain.signal.version();
      while (auto action = engine.next_action()) {
        co_await carry_out(*action, chain);
      }
      if (engine.over() || engine.committed() || chain.racing == 0) {
        break; // with nothing racing, only the engine's own actions could move it on
      }
      if (m_worker.draining()) {
        engine.drain();
      }
      co_await chain.signal.wait(seen, engine.next_timer().value_or(Clock::time_point::max()));
      engine.tick(Clock::now());
    }
    for (auto& c : chain.contenders) {
      if (c->running) {
        c->cancel();
      }
    }
    while (chain.racing > 0) {
      co_await chain.signal.wait(chain.signal.version(), Clock::time_point::max());
    }
    co_return engine.served();
  }

  // One contender of the attempt engine: an exchange with one target on one key, from its
  // slot to its first byte, and when it wins, to its answer or its stream's commit.
  struct Contender {
    size_t id = 0;
    const RouteStep* step = nullptr;
    Protocol upstream = Protocol::openai;
    size_t key = 0;
    Clock::time_point started;
    std::unique_ptr<UpstreamExchange> exchange;
    std::unique_ptr<RelayState> relay; // streams: the relay, and its output so far
    SlotLease lease;                   // its target's slot, while it holds one
    UpstreamReply reply;               // a whole answer: status, headers and body
    bool whole = false;                // reply's body is read to its end
    bool running = false;              // on a task of its own
    bool cancelled = false;

    void cancel() {
      cancelled = true;
      if (exchange) {
        exchange->cancel(); // the upstream stops generating, and nothing more is billed
      }
      lease.release();
    }
  };

  // A chain being tried: its steps, its contenders by the engine's ids, the wake-up its racing
  // tasks give the driver, and how many race now.
  struct Chain {
    const std::vector<const RouteStep*>& steps;
    std::vector<std::unique_ptr<Contender>> contenders;
    Signal signal;
    size_t racing = 0;
  };

  Task<void> carry_out(const AttemptEngine::Action& a, Chain& chain) {
    using Kind = AttemptEngine::Action::Kind;
    switch (a.kind) {
    case Kind::open: {
      auto& c = *chain.contenders.emplace_back(std::make_unique<Contender>());
      c.id = a.id;
      c.step = chain.steps[a.step];
      c.started = Clock::now();
      if (!a.raced) {
        co_await run_contender(c, false, false);
        break;
      }
      if (a.hedge) {
        std::string slow;
        for (const auto& other : chain.contenders) {
          if (other->running) {
            slow = other->step->label;
          }
        }
        m_app.log().info(
            "hedged",
            {{"request_id", m_record.request_id}, {"slow", slow}, {"racing", c.step->label}});
      }
      c.running = true;
      ++chain.racing;
      asio::co_spawn(
          m_worker.io,
          [this, &c, &chain, hedge = a.hedge]() -> Task<void> {
            co_await run_contender(c, true, hedge);
            c.running = false;
            --chain.racing;
            chain.signal.notify();
          },
          asio::detached);
      break;
    }
    case Kind::cancel:
      chain.contenders[a.id]->cancel();
      break;
    case Kind::record: {
      const Contender& c = *chain.contenders[a.id];
      if (a.counted) {
        m_attempt_started = c.started;
        record(*c.step, a.outcome, a.detail);
      } else {
        m_attempts.push_back(Attempt{c.step->label, a.outcome, a.detail});
      }
      break;
    }
    case Kind::serve:
      co_await serve_answer(*chain.contenders[a.id]);
      break;
    case Kind::deliver:
      deliver(*chain.contenders[a.id]);
      break;
    case Kind::commit:
      commit(*chain.contenders[a.id]);
      break;
    case Kind::fail:
      break;
    }
  }

  // A contender from its target's slot to its head, and for a stream to its first relayed
  // output (or its failure), each reported to the engine. Run inline (not raced), a whole answer
  // is read in one go.
  Task<void> run_contender(Contender& c, bool raced, bool hedge) {
    auto& engine = *m_engine;
    const RouteStep& step = *c.step;
    if (!co_await take_slot(step, c.lease, hedge)) {
      co_return engine.not_sent(c.id, AttemptEngine::NotSent::busy, Clock::now());
    }
    if (step.target->endpoint.type == TargetType::mock) {
      m_attempt_started = Clock::now();
      const bool served = co_await attempt_mock(step);
      co_return engine.concluded(c.id, served, Clock::now());
    }
    auto prepared = prepare(step);
    if (!prepared) {
      co_return engine.not_sent(c.id, AttemptEngine::NotSent::untranslatable, Clock::now());
    }
    TargetHealth& health = health_of(step);
    const auto key = health.key_for(Clock::now());
    if (!key) {
      co_return engine.not_sent(c.id, AttemptEngine::NotSent::keys_cooling, Clock::now());
    }
    c.key = *key;
    c.upstream = prepared->upstream;
    const auto request =
        build_upstream_request(*step.target, prepared->route, step.upstream_model,
                               std::move(prepared->body), m_body->stream, prepared->client, *key);
    c.started = Clock::now();
    const auto deadline = engine.sent(c.id, c.started);
    const auto& origin = m_snapshot.origins[step.target->index];
    if (!raced && !m_body->stream) {
      // The head within the time to first byte; the body that follows it within the longest
      // silence a stream may keep (and the request's own deadline).
      c.reply = co_await send_buffered(
          m_worker.pools, origin, request, deadline,
          std::min(m_deadline, std::max(deadline, Clock::now() + step.target->idle_timeout)),
          static_cast<size_t>(m_snapshot.config->server.max_answer_size));
      if (c.reply.status == 0) {
        co_return engine.failed(c.id, c.reply.outcome, c.reply.detail, Clock::now());
      }
      c.whole = true;
      if (c.reply.outcome == Outcome::http_429) {
        cool_down(step, health, c.key, c.reply.headers);
      }
      co_return engine.head(c.id, c.reply.status, Clock::now());
    }
    c.exchange = std::make_unique<UpstreamExchange>(m_worker.pools);
    if (m_body->stream) {
      StreamOptions options;
      options.client_wants_usage = m_body->include_usage;
      options.created = unix_seconds();
      options.estimated_input_tokens = m_body->estimated_prompt_tokens;
      c.relay = std::make_unique<RelayState>();
      c.relay->relay = m_protocol == Protocol::responses
                           ? make_responses_relay(c.upstream, options, m_responses)
                           : make_stream_relay(c.upstream, m_protocol, options);
    }
    if (!co_await c.exchange->start(origin, request, deadline)) {
      co_return engine.failed(c.id, c.exchange->failure(), c.exchange->failure_detail(),
                              Clock::now());
    }
    c.reply.status = c.exchange->status();
    const Outcome head = outcome_from(c.reply.status);
    if (head == Outcome::http_429) {
      cool_down(step, health, c.key, c.exchange->headers());
    }
    engine.head(c.id, c.reply.status, Clock::now());
    if (!c.relay || head != Outcome::ok || c.cancelled) {
      co_return;
    }
    // A stream is won by output the client can receive: until then every failure is only a
    // failed attempt, and the chain falls back.
    RelayState& r = *c.relay;
    std::string_view slice;
    while (r.out.empty() && !c.cancelled) {
      const auto read = co_await c.exchange->read(slice, deadline);
      if (read == UpstreamExchange::Read::data) {
        r.relay->feed(slice, r.out);
      } else if (read == UpstreamExchange::Read::end) {
        r.relay->finish(r.out);
        if (r.relay->state() == StreamRelay::State::open || r.out.empty()) {
          co_return engine.failed(c.id, AttemptEngine::stream_outcome(false, std::nullopt),
                                  "the stream ended before its answer was complete", Clock::now());
        }
      } else if (read == UpstreamExchange::Read::timed_out) {
        co_return engine.failed(c.id, Outcome::timeout, "no first byte in time", Clock::now());
      } else {
        co_return engine.failed(c.id, c.exchange->failure(), c.exchange->failure_detail(),
                                Clock::now());
      }
      const auto state = r.relay->state();
      if (state == StreamRelay::State::malformed || state == StreamRelay::State::upstream_error) {
        co_return engine.failed(
            c.id, state == StreamRelay::State::malformed ? Outcome::malformed : Outcome::http_5xx,
            r.relay->problem(), Clock::now());
      }
    }
    engine.first_output(c.id, Clock::now());
  }

  // The winner's answer (or the client's error), read to its end and put in the client's
  // protocol for deliver(); how that went goes to the engine.
  Task<void> serve_answer(Contender& c) {
    auto& engine = *m_engine;
    const RouteStep& step = *c.step;
    if (!c.whole) {
      // A stream refused with a client error has a short body; a whole answer may be long.
      const bool refused_stream = c.relay != nullptr;
      c.reply.headers = c.exchange->headers();
      const auto read = co_await c.exchange->read_all(
          c.reply.body,
          refused_stream ? 65536 : static_cast<size_t>(m_snapshot.config->server.max_answer_size),
          refused_stream ? engine.first_byte_deadline(c.id) : m_deadline);
      if (read != UpstreamExchange::Read::end && !refused_stream) {
        c.exchange->cancel();
        co_return engine.answered(c.id,
                                  read == UpstreamExchange::Read::timed_out ? Outcome::timeout
                                                                            : c.exchange->failure(),
                                  "the answer broke off", Clock::now());
      }
      if (refused_stream) {
        // Its error body is served with what came in time; the connection is not kept. A
        // whole answer read to its end leaves its connection to the worker's pool.
        c.exchange->cancel();
      }
      c.reply.outcome = outcome_from(c.reply.status);
      c.reply.detail = "HTTP " + std::to_string(c.reply.status);
      c.whole = true;
    }
    UpstreamReply& reply = c.reply;
    const bool translate = c.upstream != m_protocol;
    if (c.relay == nullptr && reply.outcome == Outcome::ok) {
      if (translate) {
        TokenUsage usage;
        auto answer = translate_answer(c.upstream, reply.body, usage);
        if (usage.reported) {
          m_answer_usage = usage;
        }
        if (!answer) {
          co_return engine.answered(c.id, Outcome::malformed, answer.error().message, Clock::now());
        }
        reply.body = std::move(answer.value());
      } else if (m_protocol == Protocol::responses) {
        // A target that speaks Responses: its answer goes as is, read for usage and the store.
        auto answer = read_responses_answer(reply.body);
        if (!answer) {
          co_return engine.answered(c.id, Outcome::malformed, answer.error().message, Clock::now());
        }
        if (answer->usage.reported) {
          m_answer_usage = answer->usage;
        }
        m_output_items = std::move(answer->output_items);
        m_stored_id = std::move(answer->id);
      }
    } else if (reply.outcome == Outcome::http_4xx) {
      redact_credentials(reply.body, step.target->endpoint);
      if (translate) {
        reply.body = translate_error_body(reply.body, reply.status, m_protocol);
      }
    }
    engine.answered(c.id, reply.outcome, reply.detail, Clock::now());
  }

  // The answer serve_answer() read goes to the client. A 4xx other than 429 is the client's
  // own error: returned as it is (in the client's protocol), no fallback.
  void deliver(Contender& c) {
    UpstreamReply& reply = c.reply;
    const bool translate = c.upstream != m_protocol;
    m_res.status = reply.status;
    m_res.set_content(std::move(reply.body),
                      translate ? "application/json" : content_type_of(reply.headers, false));
    served_by(*c.step, translate && c.relay == nullptr);
    finish(reply.status);
    if (m_protocol == Protocol::responses && reply.status == 200 && c.relay == nullptr) {
      keep_response(m_app, m_responses, translate ? std::string_view(m_responses.id) : m_stored_id,
                    m_input_items, m_output_items);
    }
  }

  // A stream whose first output is ready: what its relay and its usage record need, kept for
  // run() to relay once the attempt loop has ended. Its outcome is known when it ends, not now:
  // it is on the attempt list for the headers, and settles in the metrics, health and usage log
  // at the end.
  void commit(Contender& c) {
    const RouteStep& step = *c.step;
    m_upstream_wait += Clock::now() - c.started;
    RelayState& r = *c.relay;
    r.relay->forward_comments();
    r.health = m_snapshot.health[step.target->index]->member_for(step.upstream_model).health;
    r.metrics = &m_app.metrics();
    r.target = step.label;
    r.first_byte_latency =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - c.started);
    m_res.status = c.reply.status;
    m_res.content_type = "text/event-stream";
    m_res.headers.set("Cache-Control", "no-cache");
    served_by(step, c.upstream != m_protocol);
    m_record.status = c.reply.status;
    m_record.attempts = m_attempts.size();
    observe_overhead();
    m_streamed = true;
    // The relay runs from run(), once decide() and the attempt loop have returned: a stream
    // that lasts minutes holds their coroutine frames (the route, the parsed request) no longer.
    m_committed = std::make_unique<Committed>();
    m_committed->exchange = std::move(c.exchange);
    m_committed->relay = std::move(c.relay);
    m_committed->lease = std::move(c.lease);
    m_committed->usage = usage_draft();
    m_committed->estimated = estimate(0);
  }

  Task<bool> attempt_mock(const RouteStep& step) {
    const auto& mock = step.target->endpoint.mock;
    if (mock.latency.count() > 0) {
      asio::steady_timer timer(m_worker.io, mock.latency);
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    const bool fail = mock.fail_rate > 0.0 && std::uniform_real_distribution<double>(0.0, 1.0)(
                                                  thread_rng()) < mock.fail_rate;
    if (m_protocol == Protocol::responses) {
      // The mock answers in chat completions, translated like a chat target's answer; the
      // request is checked as it would be for one.
      m_responses.tools = ResponsesTools{};
      auto checked = responses_request_to_chat(m_body->root, m_input, step.upstream_model, {},
                                               Protocol::openai, m_responses.tools);
      if (!checked) {
        m_refusal = checked.error();
        co_return false;
      }
    }
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
      co_return false;
    }
    m_res.status = 200;
    const bool responses = m_protocol == Protocol::responses;
    served_by(step, responses);
    if (reply.events.empty()) {
      if (responses) {
        TokenUsage tokens;
        auto answer = chat_answer_to_responses(reply.body, m_responses, &tokens, &m_output_items);
        reply.body = answer ? std::move(answer.value()) : std::string();
        m_answer_usage = tokens;
      }
      m_res.set_content(std::move(reply.body), reply.content_type);
      finish(200);
      if (responses) {
        keep_response(m_app, m_responses, m_responses.id, m_input_items, m_output_items);
      }
      co_return true;
    }
    m_res.headers.set("Cache-Control", "no-cache");
    m_res.content_type = reply.content_type;
    m_record.status = 200;
    m_record.attempts = m_attempts.size();
    // The mock's events carry its usage, read the way an upstream's would be. A Responses
    // client gets them translated from chat completions, as one write.
    auto reader = responses ? make_responses_relay(Protocol::openai, StreamOptions{}, m_responses)
                            : make_stream_relay(m_protocol, m_protocol, StreamOptions{});
    std::string translated;
    for (const auto& e : reply.events) {
      reader->feed(e, translated);
    }
    reader->finish(translated);
    if (responses) {
      keep_response(m_app, m_responses, m_responses.id, m_input_items, reader->output_items());
      reply.events = {std::move(translated)};
    }
    auto usage = usage_draft();
    complete_usage(usage, reader->usage(), m_served_price, m_snapshot.reference_price,
                   elapsed_ms(m_record.started), elapsed_ms(m_record.started));
    observe_overhead();
    m_streamed = true;
    release_parser();
    // Kept before the client has the end, so a client that repeats the request the moment its
    // stream ends finds it.
    for (const auto& e : reply.events) {
      capture_for_cache(e);
    }
    store_stream_in_cache(reader->usage(), usage.cost_micros);
    bool client_ok = co_await m_reply.begin_stream(m_res);
    for (size_t i = 0; client_ok && i < reply.events.size(); ++i) {
      client_ok = co_await m_reply.write(reply.events[i]);
    }
    if (client_ok) {
      co_await m_reply.end_stream();
    }
    log_request(m_app.log(), m_record);
    usage.latency_ms = elapsed_ms(m_record.started);
    m_app.record_usage(std::move(usage));
    co_return true;
  }

  // A committed stream, relayed to its end, then settled and recorded.
  Task<void> finish_stream() {
    Committed& c = *m_committed;
    RelayState& r = *c.relay;
    auto& usage = c.usage;
    co_await relay_stream(c);
    if (r.outcome != Outcome::ok) {
      usage.outcome = std::string(to_string(r.outcome));
      m_app.log().warn("attempt_failed", {{"request_id", m_record.request_id},
                                          {"target", r.target},
                                          {"outcome", to_string(r.outcome)},
                                          {"detail", "after the first byte"}});
    }
    if (m_protocol == Protocol::responses && m_responses.store &&
        r.relay->state() == StreamRelay::State::complete) {
      keep_response(m_app, m_responses, r.relay->response_id(), m_input_items,
                    r.relay->output_items());
    }
    log_request(m_app.log(), m_record);
    const auto& reported = r.relay->usage();
    auto guess = c.estimated;
    guess.output_tokens = static_cast<int64_t>((r.relay->output_bytes() + 3) / 4);
    complete_usage(usage, reported.reported ? reported : guess, m_served_price,
                   m_snapshot.reference_price, elapsed_ms(m_record.started),
                   static_cast<double>(r.first_byte_latency.count()));
    m_app.record_usage(std::move(usage));
  }

  // A stream whose upstream answer is whole and clean, kept in the cache before its last bytes
  // go to the client: one that repeats the request the moment its stream ends finds it. Never
  // one that failed, was cut or carried an error (its relay is not complete).
  void store_committed_stream(Committed& c) {
    RelayState& r = *c.relay;
    if (m_cache_key.empty() || r.relay->state() != StreamRelay::State::complete) {
      return;
    }
    auto tokens = r.relay->usage();
    if (!tokens.reported) {
      tokens = c.estimated;
      tokens.output_tokens = static_cast<int64_t>((r.relay->output_bytes() + 3) / 4);
    }
    store_stream_in_cache(tokens, m_served_price ? cost_micros(*m_served_price, tokens) : 0);
  }

  void store_stream_in_cache(const TokenUsage& tokens, int64_t cost) {
    if (m_cache_key.empty()) {
      return;
    }
    if (auto whole = answer_of_stream(m_protocol, m_cache_capture)) {
      store_in_cache(whole.value(), tokens, cost);
    }
  }

  // Relays a committed stream to the client: each slice read from the upstream only once the
  // client took the one before (a slow reader slows the upstream read; nothing piles up). A
  // stream that breaks, sends a malformed event or ends short ends with an error event, never
  // a clean end.
  Task<void> relay_stream(Committed& c) {
    RelayState& r = *c.relay;
    auto& engine = *m_engine;
    bool client_ok = co_await m_reply.begin_stream(m_res);
    std::string_view slice;
    bool done = false;
    while (client_ok) {
      if (!r.out.empty()) {
        capture_for_cache(r.out);
        store_committed_stream(c); // once the upstream's answer is whole
        client_ok = co_await m_reply.write(r.out);
        r.out.clear();
        continue;
      }
      if (done || r.relay->state() != StreamRelay::State::open) {
        break;
      }
      const auto read = co_await c.exchange->read(slice, engine.stream_read_deadline());
      switch (read) {
      case UpstreamExchange::Read::data:
        engine.stream_bytes(Clock::now());
        r.relay->feed(slice, r.out);
        break;
      case UpstreamExchange::Read::end:
        r.relay->finish(r.out);
        if (r.relay->state() == StreamRelay::State::open) {
          r.broke_off("the upstream stream ended before the answer was complete");
        }
        done = true;
        break;
      case UpstreamExchange::Read::failed:
      case UpstreamExchange::Read::timed_out:
        r.settle(read == UpstreamExchange::Read::timed_out
                     ? engine.stream_timed_out(Clock::now()).value_or(Outcome::idle)
                     : c.exchange->failure());
        c.exchange->cancel();
        r.broke_off("the upstream stream broke off before the answer was complete");
        done = true;
        break;
      }
    }
    store_committed_stream(c); // whole with nothing left to write, if not stored above
    if (!client_ok) {
      c.exchange->cancel(); // a client that left closes the upstream too
      r.client_left();
      co_return;
    }
    switch (r.relay->state()) {
    case StreamRelay::State::complete:
      r.settle(Outcome::ok);
      break;
    case StreamRelay::State::malformed:
      r.settle(Outcome::malformed);
      r.broke_off("the upstream sent a malformed event: " + r.relay->problem());
      client_ok = co_await m_reply.write(r.out);
      r.out.clear();
      break;
    case StreamRelay::State::upstream_error:
      r.settle(Outcome::http_5xx);
      break;
    case StreamRelay::State::open:
      r.settle(Outcome::truncated);
      break;
    }
    if (client_ok) {
      co_await m_reply.end_stream();
    }
  }

  Worker& m_worker;
  App& m_app;
  std::shared_ptr<const Snapshot> m_snapshot_owner;
  const Snapshot& m_snapshot;
  ApiRoute m_route;
  Protocol m_protocol;
  const HttpRequest& m_req;
  ClientReply& m_reply;
  std::unique_ptr<BodyParser> m_parser;
  HttpResponse m_res;
  bool m_streamed = false; // the answer goes out as a stream
  std::unique_ptr<Committed> m_committed;
  // The attempt engine of the chain being tried, or of the stream committed to.
  std::optional<AttemptEngine> m_engine;
  const RequestBody* m_body = nullptr;
  std::vector<Attempt> m_attempts;
  // Why the request could not be translated for a target it had to be translated for.
  std::optional<Error> m_refusal;
  // Busy targets skipped on the way (SPEC §10).
  struct Skip {
    std::string label;
    std::string reason;
    bool busy = false; // no slot (a spill), rather than a capability it lacks
  };
  std::vector<Skip> m_skips;
  // The response cache: the key this request is stored under once answered ("" when it is not
  // cached), and a stream's bytes as the client got them, to store as a whole answer.
  std::string m_cache_key;
  std::string m_cache_capture;
  std::optional<Price> m_served_price;
  std::optional<TokenUsage> m_answer_usage;
  // A Responses request: the response being made, the input it is answered from (its own, or
  // the conversation it continues), and what the conversation store keeps of it.
  ResponsesContext m_responses;
  simdjson::dom::element m_input;
  std::string m_input_items;
  std::string m_output_items;
  std::string m_stored_id; // the id a target that speaks Responses gave its answer
  std::string m_conversation;
  simdjson::dom::parser m_conversation_parser;
  Clock::duration m_upstream_wait{0};
  RequestRecord m_record;
  Clock::time_point m_attempt_started;
  Clock::time_point m_deadline;
};

} // namespace

Task<void> serve_proxied(Worker& worker, App& app, std::shared_ptr<const Snapshot> snapshot,
                         ApiRoute route, const HttpRequest& request, ClientReply& reply) {
  ProxyRequest proxied(worker, app, std::move(snapshot), route, request, reply);
  co_await proxied.run();
}

} // namespace modelmux::net
