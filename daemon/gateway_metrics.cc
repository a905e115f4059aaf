// What modelmux measures, and the scrape.
#include "modelmux/gateway_metrics.h"

#include <charconv>
#include <dirent.h>
#include <fstream>
#include <unistd.h>

namespace modelmux {

namespace {

constexpr std::array<ApiRoute, 6> k_routes = {ApiRoute::chat_completions, ApiRoute::completions,
                                              ApiRoute::embeddings,       ApiRoute::messages,
                                              ApiRoute::responses,        ApiRoute::count_tokens};

template <typename Series, typename F>
MetricFamily family_of(const Family<Series>& f, const std::string& type, F&& value) {
  MetricFamily out{f.name(), f.help(), type, {}};
  f.each([&](const std::vector<std::string>& values, const Series& series) {
    Sample s;
    for (size_t i = 0; i < values.size(); ++i) {
      s.labels.emplace_back(f.label_names()[i], values[i]);
    }
    value(s, series);
    out.samples.push_back(std::move(s));
  });
  return out;
}

} // namespace

std::string_view otel_provider_name(TargetType type) {
  switch (type) {
  case TargetType::openai:
    return "openai";
  case TargetType::anthropic:
    return "anthropic";
  case TargetType::azure_openai:
    return "azure.ai.openai";
  case TargetType::mock:
    return "mock";
  }
  return "openai";
}

GatewayMetrics::GatewayMetrics()
    : m_requests("modelmux_requests_total",
                 "Requests answered, by route, model as requested, "
                 "the target that served and HTTP status.",
                 {"route", "model", "target", "code"}),
      m_attempts("modelmux_upstream_attempts_total", "Upstream attempts by target and outcome.",
                 {"target", "outcome"}),
      m_fallbacks("modelmux_fallbacks_total",
                  "Moves from a failed target to the next in the chain.", {"from", "to"}),
      m_cost_micros("modelmux_cost_usd_total", "Spend in USD, by serving target.", {"target"}),
      m_reloads("modelmux_config_reloads_total", "Config reloads by result.", {"result"}),
      m_spills("modelmux_spills_total",
               "Requests that moved on from a busy target (no slot in time) to the one that "
               "served them.",
               {"from", "to"}),
      m_cache_requests("modelmux_cache_requests_total",
                       "Requests the response cache looked at, by result.", {"result"}),
      m_queue_wait("modelmux_queue_wait_seconds", "Time waited in a target's queue for a slot.",
                   {"target"}, latency_buckets()),
      m_duration("gen_ai_server_request_duration_seconds",
                 "Time from request to the end of the answer.",
                 {"gen_ai_request_model", "gen_ai_provider_name", "target"}, latency_buckets()),
      m_ttft("gen_ai_server_time_to_first_token_seconds", "Time to the first byte of a stream.",
             {"gen_ai_request_model", "gen_ai_provider_name", "target"}, latency_buckets()),
      m_tpot("gen_ai_server_time_per_output_token_seconds",
             "Time per output token after the first, in streams.",
             {"gen_ai_request_model", "gen_ai_provider_name", "target"}, overhead_buckets()),
      m_tokens("gen_ai_client_token_usage", "Tokens per request, input and output.",
               {"gen_ai_token_type", "gen_ai_request_model", "gen_ai_provider_name", "target"},
               token_buckets()) {
  for (auto& h : m_overhead) {
    h = std::make_unique<Histogram>(overhead_buckets());
  }
}

void GatewayMetrics::attempt(const std::string& target, Outcome outcome) {
  m_attempts.at({target, to_string(outcome)}).fetch_add(1, std::memory_order_relaxed);
}

void GatewayMetrics::request_started(ApiRoute route) {
  m_inflight[index(route)].fetch_add(1, std::memory_order_relaxed);
}

void GatewayMetrics::request_finished(ApiRoute route) {
  m_inflight[index(route)].fetch_sub(1, std::memory_order_relaxed);
}

int64_t GatewayMetrics::inflight() const {
  int64_t n = 0;
  for (const auto& route : m_inflight) {
    n += route.load(std::memory_order_relaxed);
  }
  return n;
}

void GatewayMetrics::overhead(ApiRoute route, double seconds) {
  m_overhead[index(route)]->observe(std::max(0.0, seconds));
}

void GatewayMetrics::queue_wait(const std::string& target, double seconds) {
  m_queue_wait.at({target}).observe(std::max(0.0, seconds));
}

void GatewayMetrics::cache_request(std::string_view result) {
  m_cache_requests.at({result}).fetch_add(1, std::memory_order_relaxed);
}

void GatewayMetrics::spill(const std::string& from, const std::string& to) {
  m_spills.at({from, to}).fetch_add(1, std::memory_order_relaxed);
}

void GatewayMetrics::observe(const UsageRecord& r, std::string_view provider, bool with_reference) {
  // A model that resolved to nothing is the client's text: it stays out of the labels.
  const std::string_view model = r.status == 404 ? "(unknown)" : std::string_view(r.model);
  const std::string_view target = r.target.empty() ? "none" : std::string_view(r.target);
  char status[16];
  const auto status_end = std::to_chars(status, status + sizeof status, r.status).ptr;
  m_requests.at({r.route, model, target, std::string_view(status, status_end - status)})
      .fetch_add(1);
  for (const auto& [from, to] : fallback_moves(r)) {
    m_fallbacks.at({from, to}).fetch_add(1);
  }
  if (r.target.empty()) {
    return;
  }
  m_cost_micros.at({r.target}).fetch_add(r.cost_micros);
  m_cache_savings_micros.fetch_add(r.cache_savings_micros);
  if (with_reference) {
    m_savings_micros.fetch_add(r.reference_cost_micros - r.cost_micros);
  }
  m_duration.at({model, provider, r.target}).observe(r.latency_ms / 1000.0);
  if (r.stream) {
    m_ttft.at({model, provider, r.target}).observe(r.ttft_ms / 1000.0);
    if (r.output_tokens > 1) {
      m_tpot.at({model, provider, r.target})
          .observe((r.latency_ms - r.ttft_ms) / 1000.0 / static_cast<double>(r.output_tokens - 1));
    }
  }
  m_tokens.at({"input", model, provider, r.target}).observe(static_cast<double>(r.input_tokens));
  m_tokens.at({"output", model, provider, r.target}).observe(static_cast<double>(r.output_tokens));
}

std::map<std::string, int64_t> GatewayMetrics::spills_by_target() const {
  std::map<std::string, int64_t> out;
  m_spills.each([&](const std::vector<std::string>& labels, const AtomicCount& count) {
    out[labels[0]] += count.load();
  });
  return out;
}

void GatewayMetrics::config_reload(bool ok) {
  m_reloads.at({ok ? "ok" : "error"}).fetch_add(1);
}

std::vector<MetricFamily> GatewayMetrics::collect(const ScrapeGauges& gauges) const {
  std::vector<MetricFamily> out;
  auto counter = [](Sample& s, const AtomicCount& c) { s.value = static_cast<double>(c.load()); };
  auto usd = [](Sample& s, const AtomicCount& c) { s.value = static_cast<double>(c.load()) / 1e6; };
  auto histogram = [](Sample& s, const Histogram& h) { s.histogram = h.view(); };
  out.push_back(family_of(m_requests, "counter", counter));
  out.push_back(family_of(m_attempts, "counter", counter));
  out.push_back(family_of(m_fallbacks, "counter", counter));

  MetricFamily overhead{"modelmux_overhead_seconds",
                        "Time modelmux itself adds: the request's time minus the time spent "
                        "waiting on upstreams.",
                        "histogram",
                        {}};
  for (const auto route : k_routes) {
    Sample s;
    s.labels = {{"route", std::string(path_of(route))}};
    s.histogram = m_overhead[index(route)]->view();
    overhead.samples.push_back(std::move(s));
  }
  out.push_back(std::move(overhead));

  out.push_back(family_of(m_cost_micros, "counter", usd));
  out.push_back(MetricFamily{"modelmux_savings_usd_total",
                             "What routing.reference_model would have cost for the same tokens, "
                             "minus the actual cost, in USD.",
                             "counter",
                             {Sample{{}, static_cast<double>(m_savings_micros.load()) / 1e6, {}}}});

  MetricFamily states{"modelmux_target_state",
                      "Target health: 0 healthy, 1 degraded, 2 unhealthy, 3 ejected.",
                      "gauge",
                      {}};
  for (const auto& [target, state] : gauges.target_states) {
    states.samples.push_back(Sample{{{"target", target}}, static_cast<double>(state), {}});
  }
  out.push_back(std::move(states));

  MetricFamily depths{"modelmux_queue_depth",
                      "Requests waiting for a slot at a target with max_concurrency.",
                      "gauge",
                      {}};
  for (const auto& [target, depth] : gauges.queue_depths) {
    depths.samples.push_back(Sample{{{"target", target}}, static_cast<double>(depth), {}});
  }
  out.push_back(std::move(depths));
  out.push_back(family_of(m_spills, "counter", counter));
  out.push_back(family_of(m_cache_requests, "counter", counter));
  out.push_back(
      MetricFamily{"modelmux_cache_savings_usd_total",
                   "What the answers served from the response cache cost when they were "
                   "first served, in USD.",
                   "counter",
                   {Sample{{}, static_cast<double>(m_cache_savings_micros.load()) / 1e6, {}}}});
  if (gauges.cache) {
    out.push_back(MetricFamily{"modelmux_cache_size_bytes",
                               "Bytes held by the response cache.",
                               "gauge",
                               {Sample{{}, static_cast<double>(gauges.cache->bytes), {}}}});
    out.push_back(MetricFamily{"modelmux_cache_entries",
                               "Answers held by the response cache.",
                               "gauge",
                               {Sample{{}, static_cast<double>(gauges.cache->entries), {}}}});
  }
  out.push_back(family_of(m_queue_wait, "histogram", histogram));

  MetricFamily inflight{"modelmux_inflight_requests", "Requests in flight, by route.", "gauge", {}};
  for (const auto route : k_routes) {
    inflight.samples.push_back(Sample{{{"route", std::string(path_of(route))}},
                                      static_cast<double>(m_inflight[index(route)].load()),
                                      {}});
  }
  out.push_back(std::move(inflight));
  out.push_back(family_of(m_reloads, "counter", counter));
  out.push_back(MetricFamily{"modelmux_build_info",
                             "The running version.",
                             "gauge",
                             {Sample{{{"version", MODELMUX_VERSION}}, 1, {}}}});
  if (gauges.budget_remaining_micros) {
    out.push_back(
        MetricFamily{"modelmux_budget_remaining_usd",
                     "What is left of the daily or monthly budget, whichever is less, in USD.",
                     "gauge",
                     {Sample{{}, static_cast<double>(*gauges.budget_remaining_micros) / 1e6, {}}}});
  }
  out.push_back(family_of(m_duration, "histogram", histogram));
  out.push_back(family_of(m_ttft, "histogram", histogram));
  out.push_back(family_of(m_tpot, "histogram", histogram));
  out.push_back(family_of(m_tokens, "histogram", histogram));
  out.push_back(MetricFamily{"process_resident_memory_bytes",
                             "Resident memory size in bytes.",
                             "gauge",
                             {Sample{{}, gauges.resident_memory_bytes, {}}}});
  out.push_back(MetricFamily{"process_open_fds",
                             "Number of open file descriptors.",
                             "gauge",
                             {Sample{{}, gauges.open_fds, {}}}});
  out.push_back(MetricFamily{"process_start_time_seconds",
                             "Start time of the process since the Unix epoch in seconds.",
                             "gauge",
                             {Sample{{}, gauges.start_time_seconds, {}}}});
  return out;
}

void read_process_gauges(ScrapeGauges& gauges) {
  std::ifstream statm("/proc/self/statm");
  long pages = 0;
  long resident = 0;
  if (statm >> pages >> resident) {
    gauges.resident_memory_bytes =
        static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
  }
  if (DIR* dir = opendir("/proc/self/fd")) {
    int n = 0;
    while (const dirent* e = readdir(dir)) {
      n += e->d_name[0] != '.';
    }
    closedir(dir);
    gauges.open_fds = n - 1; // not the directory's own descriptor
  }
}

} // namespace modelmux
