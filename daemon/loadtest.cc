// `modelmux loadtest`: the figures (pure) and the run (blocking cpp-httplib clients, one thread
// per concurrent request, as the other CLI commands talk to the daemon).
#include "modelmux/loadtest.h"

#include "modelmux/json.h"
#include "modelmux/stream_relay.h"
#include "modelmux/translation/responses.h"
#include "modelmux/translation/vocabulary.h"
#include "modelmux/usage.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <httplib.h>
#include <mutex>
#include <ostream>
#include <simdjson.h>
#include <thread>
#include <unistd.h>

namespace modelmux {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int k_max_requests = 100'000;
constexpr int k_max_concurrency = 256;
// Longest wait for one answer; a stream that runs longer is cut and counted as failed.
constexpr auto k_request_timeout = std::chrono::minutes(5);
// A whole answer bigger than this is not read further (its tokens are not counted).
constexpr size_t k_max_answer_bytes = 16 * 1024 * 1024;

std::optional<Protocol> protocol_of_route(std::string_view route) {
  if (route == "chat") {
    return Protocol::openai;
  }
  if (route == "messages") {
    return Protocol::anthropic;
  }
  if (route == "responses") {
    return Protocol::responses;
  }
  return std::nullopt;
}

std::array<double, 3> percentiles(std::vector<float> values) {
  std::sort(values.begin(), values.end());
  return {nearest_rank(values, 50), nearest_rank(values, 95), nearest_rank(values, 99)};
}

std::string format(const char* pattern, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, pattern, v);
  return buf;
}

std::string ms(double v) {
  return v >= 1000 ? format("%.2fs", v / 1000) : format(v < 10 ? "%.1fms" : "%.0fms", v);
}

// Milliseconds to a tenth: finer is noise.
double tenths(double v) {
  return std::round(v * 10) / 10;
}

void write_trio(JsonWriter& w, std::string_view key, const std::array<double, 3>& p) {
  w.key(key).begin_object().field("p50", tenths(p[0])).field("p95", tenths(p[1]));
  w.field("p99", tenths(p[2])).end_object();
}

// The host of an http:// URL: "127.0.0.1", "localhost", "[::1]".
std::string host_of(std::string_view url) {
  constexpr std::string_view scheme = "http://";
  if (!url.starts_with(scheme)) {
    return {};
  }
  url.remove_prefix(scheme.size());
  url = url.substr(0, url.find('/'));
  if (url.starts_with("[")) {
    return std::string(url.substr(0, url.find(']') + 1));
  }
  return std::string(url.substr(0, url.find(':')));
}

bool loopback(std::string_view host) {
  return host == "localhost" || host == "[::1]" || host.starts_with("127.");
}

// The daemon's own spend this month and the requests it counted, from GET /api/status.
struct Spend {
  double usd = 0;
  int64_t requests = 0;
};

std::optional<Spend> read_spend(httplib::Client& client, const httplib::Headers& headers) {
  const auto res = client.Get("/api/status", headers);
  if (!res || res->status != 200) {
    return std::nullopt;
  }
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  Spend s;
  if (parser.parse(simdjson::padded_string(res->body)).get(doc) ||
      doc.at_pointer("/spend/month_usd").get(s.usd) ||
      doc.at_pointer("/traffic/requests").get(s.requests)) {
    return std::nullopt;
  }
  return s;
}

// One request, start to end, as a client of the daemon sees it.
LoadtestResult send_one(httplib::Client& client, const LoadtestPlan& plan, Protocol protocol,
                        const httplib::Headers& headers, int index) {
  LoadtestResult r;
  std::unique_ptr<StreamRelay> reader;
  if (plan.stream) {
    StreamOptions options;
    options.client_wants_usage = true;
    static const ResponsesContext k_context{};
    reader = protocol == Protocol::responses
                 ? make_responses_relay(Protocol::responses, options, k_context)
                 : make_stream_relay(protocol, protocol, options);
  }
  std::string body;
  std::string discard;
  std::optional<Clock::time_point> first_byte;
  httplib::Request req;
  req.method = "POST";
  req.path = loadtest_path(plan.route);
  req.headers = headers;
  req.body = loadtest_body(plan, index);
  req.set_header("Content-Type", "application/json");
  req.response_handler = [&](const httplib::Response& res) {
    r.status = res.status;
    r.target = res.get_header_value("x-modelmux-target");
    r.attempts = std::atoi(res.get_header_value("x-modelmux-attempts").c_str());
    r.spilled = res.get_header_value("x-modelmux-skipped").find("busy") != std::string::npos;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    if (!first_byte) {
      first_byte = Clock::now();
    }
    if (reader && r.status >= 200 && r.status < 300) {
      reader->feed(std::string_view(data, len), discard);
      discard.clear();
    } else if (body.size() < k_max_answer_bytes) {
      body.append(data, std::min(len, k_max_answer_bytes - body.size()));
    }
    return true;
  };
  const auto start = Clock::now();
  httplib::Response res;
  httplib::Error error = httplib::Error::Success;
  const bool answered = client.send(req, res, error);
  const auto end = Clock::now();
  r.latency_ms = std::chrono::duration<double, std::milli>(end - start).count();
  r.ttfb_ms = std::chrono::duration<double, std::milli>(first_byte.value_or(end) - start).count();
  if (!answered) {
    r.status = 0;
    r.error = "no answer: " + httplib::to_string(error);
    return r;
  }
  if (r.status < 200 || r.status >= 300) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    std::string_view message;
    if (!parser.parse(simdjson::padded_string(body)).get(doc) &&
        !doc["error"]["message"].get(message)) {
      r.error = "HTTP " + std::to_string(r.status) + ": " + std::string(message);
    } else {
      r.error = "HTTP " + std::to_string(r.status);
    }
    return r;
  }
  if (reader) {
    reader->finish(discard);
    r.complete = reader->state() == StreamRelay::State::complete;
    r.output_tokens = reader->usage().output_tokens;
    if (!r.complete) {
      r.error = reader->state() == StreamRelay::State::open
                    ? "the stream ended without its terminal event"
                    : "the stream ended in error: " + reader->problem();
    }
    return r;
  }
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  r.complete = !parser.parse(simdjson::padded_string(body)).get(doc) && doc.is_object();
  if (!r.complete) {
    r.error = "the answer is not a JSON object";
    return r;
  }
  if (const auto usage = usage_of_answer(protocol, body)) {
    r.output_tokens = usage->output_tokens;
  }
  return r;
}

} // namespace

std::string loadtest_path(std::string_view route) {
  if (route == "chat") {
    return "/v1/chat/completions";
  }
  if (route == "messages") {
    return "/v1/messages";
  }
  if (route == "responses") {
    return "/v1/responses";
  }
  return {};
}

std::string loadtest_body(const LoadtestPlan& plan, int index) {
  // Each request differs (its number is in the prompt), so no cache in between answers it.
  const std::string prompt =
      "Load test request " + std::to_string(index) + ": reply with one short sentence.";
  std::string out;
  JsonWriter w(out);
  w.begin_object().field("model", std::string_view(plan.model));
  if (plan.route == "responses") {
    w.field("input", std::string_view(prompt)).field("max_output_tokens", 64);
  } else {
    w.field("max_tokens", 64);
    w.key("messages").begin_array().begin_object().field("role", "user");
    w.field("content", std::string_view(prompt)).end_object().end_array();
  }
  if (plan.stream) {
    w.field("stream", true);
    if (plan.route == "chat") {
      w.key("stream_options").begin_object().field("include_usage", true).end_object();
    }
  }
  w.end_object();
  return out;
}

LoadtestSummary summarize(const LoadtestPlan& plan, const std::vector<LoadtestResult>& results,
                          double wall_seconds) {
  LoadtestSummary s;
  s.plan = plan;
  s.wall_seconds = wall_seconds;
  std::vector<float> latency;
  std::vector<float> ttfb;
  for (const auto& r : results) {
    ++s.statuses[r.status == 0 ? "error" : std::to_string(r.status)];
    if (r.complete) {
      ++s.succeeded;
      latency.push_back(static_cast<float>(r.latency_ms));
      ttfb.push_back(static_cast<float>(r.ttfb_ms));
      s.output_tokens += r.output_tokens;
      ++s.served_by[r.target.empty() ? "(unnamed)" : r.target];
    } else {
      ++s.failed;
      if (s.first_errors.size() < 3) {
        s.first_errors.push_back(r.error);
      }
    }
    s.fallbacks += r.attempts > 1 ? 1 : 0;
    s.spills += r.spilled ? 1 : 0;
  }
  s.latency_ms = percentiles(std::move(latency));
  s.ttfb_ms = percentiles(std::move(ttfb));
  return s;
}

std::string loadtest_text(const LoadtestSummary& s) {
  const auto& p = s.plan;
  const int total = s.succeeded + s.failed;
  std::string out = "modelmux loadtest: " + std::to_string(total) + " requests for " + p.model +
                    " at concurrency " + std::to_string(p.concurrency) + " (" + p.route +
                    (p.stream ? ", streamed" : "") + ") through " + p.url + "\n";
  out += "  success     " + std::to_string(s.succeeded) + "/" + std::to_string(total) + " (" +
         format("%.1f%%", total > 0 ? 100.0 * s.succeeded / total : 0.0) + ")\n";
  out += "  status     ";
  for (const auto& [status, n] : s.statuses) {
    out += " " + status + " ×" + std::to_string(n);
  }
  out += "\n";
  out += "  latency     p50 " + ms(s.latency_ms[0]) + "  p95 " + ms(s.latency_ms[1]) + "  p99 " +
         ms(s.latency_ms[2]) + "\n";
  out += "  first byte  p50 " + ms(s.ttfb_ms[0]) + "  p95 " + ms(s.ttfb_ms[1]) + "  p99 " +
         ms(s.ttfb_ms[2]) + "\n";
  const double wall = std::max(s.wall_seconds, 1e-9);
  out += "  throughput  " + format("%.1f", s.succeeded / wall) + " req/s, " +
         format("%.0f", static_cast<double>(s.output_tokens) / wall) + " output tokens/s (" +
         std::to_string(s.output_tokens) + " tokens in " + format("%.1f s", s.wall_seconds) + ")\n";
  out += "  served by  ";
  for (const auto& [target, n] : s.served_by) {
    out += " " + target + " ×" + std::to_string(n);
  }
  out += s.served_by.empty() ? " -\n" : "\n";
  out += "  fallbacks   " + std::to_string(s.fallbacks) +
         " (requests that needed more than one attempt)\n";
  out += "  spills      " + std::to_string(s.spills) + " (requests that skipped a busy target)\n";
  out += "  cost        " +
         (s.cost_usd ? "$" + format("%.6f", *s.cost_usd) + " (the daemon's accounting)"
                     : std::string("- (the daemon's /api/status could not be read)")) +
         "\n";
  for (const auto& e : s.first_errors) {
    out += "  failed:     " + e + "\n";
  }
  return out;
}

std::string loadtest_json(const LoadtestSummary& s) {
  std::string out;
  JsonWriter w(out);
  const double wall = std::max(s.wall_seconds, 1e-9);
  const int total = s.succeeded + s.failed;
  w.begin_object();
  w.field("url", std::string_view(s.plan.url)).field("model", std::string_view(s.plan.model));
  w.field("route", std::string_view(s.plan.route)).field("stream", s.plan.stream);
  w.field("requests", total).field("concurrency", s.plan.concurrency);
  w.field("succeeded", s.succeeded).field("failed", s.failed);
  w.field("success_rate", total > 0 ? static_cast<double>(s.succeeded) / total : 0.0);
  w.key("status").begin_object();
  for (const auto& [status, n] : s.statuses) {
    w.field(status, n);
  }
  w.end_object();
  write_trio(w, "latency_ms", s.latency_ms);
  write_trio(w, "ttfb_ms", s.ttfb_ms);
  w.field("output_tokens", s.output_tokens);
  w.field("output_tokens_per_second", static_cast<double>(s.output_tokens) / wall);
  w.field("requests_per_second", s.succeeded / wall);
  w.key("served_by").begin_object();
  for (const auto& [target, n] : s.served_by) {
    w.field(target, n);
  }
  w.end_object();
  w.field("fallbacks", s.fallbacks).field("spills", s.spills);
  if (s.cost_usd) {
    w.field("cost_usd", *s.cost_usd);
  } else {
    w.key("cost_usd").null();
  }
  w.field("wall_seconds", s.wall_seconds);
  w.key("errors").begin_array();
  for (const auto& e : s.first_errors) {
    w.value(std::string_view(e));
  }
  w.end_array().end_object();
  out += "\n";
  return out;
}

int run_loadtest(const CliArgs& args, std::ostream& out, std::ostream& err) {
  const auto daemon = daemon_address(args);
  LoadtestPlan plan;
  plan.url = daemon.url;
  plan.model = args.positional.front();
  plan.route = args.route;
  plan.stream = args.stream;
  plan.requests = args.requests;
  plan.concurrency = std::min(args.concurrency, args.requests);
  const auto protocol = protocol_of_route(plan.route);
  if (!protocol) {
    err << "modelmux loadtest: --route is chat, messages or responses, not \"" << plan.route
        << "\"\n";
    return 1;
  }
  if (plan.requests > k_max_requests || plan.concurrency > k_max_concurrency) {
    err << "modelmux loadtest: at most " << k_max_requests << " requests at concurrency "
        << k_max_concurrency << "\n";
    return 1;
  }
  // A load test is for one's own daemon: never a generator aimed at someone else's server.
  if (!loopback(host_of(plan.url)) && plan.url != daemon.configured) {
    err << "modelmux loadtest: " << plan.url
        << " is neither a loopback address nor the configured daemon\n";
    return 1;
  }
  httplib::Headers headers;
  if (!daemon.key.empty()) {
    headers.emplace("Authorization", "Bearer " + daemon.key);
  }
  if (*protocol == Protocol::anthropic) {
    headers.emplace("anthropic-version", "2023-06-01");
  }
  httplib::Client status_client(plan.url);
  status_client.set_connection_timeout(std::chrono::seconds(3));
  status_client.set_read_timeout(std::chrono::seconds(10));
  const auto before = read_spend(status_client, headers);

  std::vector<LoadtestResult> results(static_cast<size_t>(plan.requests));
  std::atomic<int> next{0};
  std::atomic<int> done{0};
  std::atomic<int> failed{0};
  const auto start = Clock::now();
  std::vector<std::thread> workers;
  for (int i = 0; i < plan.concurrency; ++i) {
    workers.emplace_back([&] {
      httplib::Client client(plan.url);
      client.set_connection_timeout(std::chrono::seconds(3));
      client.set_read_timeout(k_request_timeout);
      client.set_keep_alive(true);
      for (int n = next++; n < plan.requests; n = next++) {
        results[static_cast<size_t>(n)] = send_one(client, plan, *protocol, headers, n);
        failed += results[static_cast<size_t>(n)].complete ? 0 : 1;
        ++done;
      }
    });
  }
  // Progress: one line redrawn in place on a terminal, a plain line per tenth otherwise.
  const bool tty = &err == &std::cerr && ::isatty(STDERR_FILENO) == 1;
  int reported_tenths = 0;
  while (done < plan.requests) {
    std::this_thread::sleep_for(std::chrono::milliseconds(tty ? 200 : 50));
    const int d = done;
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    const std::string line = std::to_string(d) + "/" + std::to_string(plan.requests) + " done, " +
                             std::to_string(failed.load()) + " failed, " +
                             format("%.1f", d / std::max(seconds, 1e-9)) + " req/s";
    if (tty) {
      err << "\r  " << line << "   " << std::flush;
    } else if (d * 10 / plan.requests > reported_tenths) {
      reported_tenths = d * 10 / plan.requests;
      err << "  " << line << "\n";
    }
  }
  for (auto& t : workers) {
    t.join();
  }
  if (tty) {
    err << "\n";
  }
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  auto summary = summarize(plan, results, wall);
  // The daemon records usage off the request path: wait (briefly) until it has counted every
  // request that reached it, then take the difference in its spend.
  if (before) {
    const auto reached = std::count_if(results.begin(), results.end(),
                                       [](const LoadtestResult& r) { return r.status != 0; });
    for (int tries = 0; tries < 60; ++tries) {
      const auto after = read_spend(status_client, headers);
      if (after && after->requests - before->requests >= reached) {
        summary.cost_usd = std::max(0.0, after->usd - before->usd);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  out << (args.json ? loadtest_json(summary) : loadtest_text(summary));
  return summary.failed > 0 ? 1 : 0;
}

} // namespace modelmux
