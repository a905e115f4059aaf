// The metrics modelmux keeps (SPEC §7) and how each is fed: per attempt and per request in
// flight on the request path (atomics only), and per finished request from its usage record on
// the usage writer thread. collect() turns them, with the gauges read at scrape time, into
// families for render_exposition.
#pragma once

#include "modelmux/metrics.h"
#include "modelmux/outcome.h"
#include "modelmux/protocol.h"
#include "modelmux/response_cache.h"
#include "modelmux/usage.h"

#include <array>
#include <map>

namespace modelmux {

// Read when /metrics is scraped.
struct ScrapeGauges {
  std::vector<std::pair<std::string, int>> target_states; // 0 healthy .. 3 ejected
  std::vector<std::pair<std::string, int>> queue_depths;  // targets with a concurrency limit
  std::optional<int64_t> budget_remaining_micros;
  std::optional<CacheStats> cache; // when the response cache is enabled
  double start_time_seconds = 0;
  double resident_memory_bytes = 0;
  double open_fds = 0;
};

// The process's own figures from /proc/self.
void read_process_gauges(ScrapeGauges& gauges);

class GatewayMetrics {
public:
  GatewayMetrics();

  // Request path.
  void attempt(const std::string& target, Outcome outcome);
  void request_started(ApiRoute route);
  void request_finished(ApiRoute route);
  // Requests in flight on every route: what a drain waits for.
  int64_t inflight() const;
  void overhead(ApiRoute route, double seconds);
  // A wait in a target's queue for a slot, granted or not.
  void queue_wait(const std::string& target, double seconds);
  // A request that moved on from a busy target (queue full, waited too long, or spilled by
  // routing.spill_after) and was served by `to` ("none" when no target served it).
  void spill(const std::string& from, const std::string& to);
  // A request the response cache looked at: "hit", "miss" or "bypass".
  void cache_request(std::string_view result);
  int64_t cache_savings_micros() const { return m_cache_savings_micros.load(); }

  // A finished request. provider is the serving target's protocol in OpenTelemetry's words;
  // with_reference: routing.reference_model is set, so savings are counted.
  void observe(const UsageRecord& r, std::string_view provider, bool with_reference);
  void config_reload(bool ok);
  // Spills so far, summed by the target they moved on from.
  std::map<std::string, int64_t> spills_by_target() const;

  std::vector<MetricFamily> collect(const ScrapeGauges& gauges) const;

private:
  static size_t index(ApiRoute route) { return static_cast<size_t>(route); }

  CounterFamily m_requests;
  CounterFamily m_attempts;
  CounterFamily m_fallbacks;
  CounterFamily m_cost_micros;
  AtomicCount m_savings_micros{0};
  CounterFamily m_reloads;
  CounterFamily m_spills;
  CounterFamily m_cache_requests;
  AtomicCount m_cache_savings_micros{0};
  HistogramFamily m_queue_wait;
  HistogramFamily m_duration;
  HistogramFamily m_ttft;
  HistogramFamily m_tpot;
  HistogramFamily m_tokens;
  std::array<std::unique_ptr<Histogram>, 6> m_overhead;
  std::array<std::atomic<int64_t>, 6> m_inflight{};
};

// OpenTelemetry's gen_ai.provider.name for a target type.
std::string_view otel_provider_name(TargetType type);

} // namespace modelmux
