// The status page's figures: a short history of traffic kept from usage records (requests,
// failures and cost in 10-second buckets, latency and time to first token per target), the JSON
// of GET /api/status that the page and `modelmux status` read, and the terminal summary.
// Pure: time comes from the records and the caller; no sockets, no clock.
#pragma once

#include "modelmux/config.h"
#include "modelmux/health.h"
#include "modelmux/registry.h"
#include "modelmux/response_cache.h"
#include "modelmux/result.h"
#include "modelmux/usage.h"

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmux {

// The registry target a usage record's target belongs to: "custom:x" is itself, "openai:gpt-4o"
// is the provider "openai". Null for a name no target of this registry carries.
const Target* target_of_record(const Registry& registry, std::string_view record_target);

// How many recent latencies the status page's percentiles are taken over.
inline constexpr size_t k_recent_per_target = 512;

// Counts in one 10-second slot of a ring; index says which slot of time it holds.
struct TrafficBucket {
  int64_t index = -1; // ts_ms / k_bucket_ms of what it counts
  int64_t requests = 0;
  int64_t failed = 0;
  int64_t cost_micros = 0;
};

// Per target (by its one name), since the daemon started (attempts: a failed attempt that fell back
// counts as a failure of its target, the serving one as a success).
struct TargetTraffic {
  int64_t succeeded = 0;
  int64_t failed = 0;
  RecentValues latency_ms{k_recent_per_target};
  RecentValues ttft_ms{k_recent_per_target};
  std::array<TrafficBucket, 6> last_minute; // attempts, for the rate
};

class TrafficHistory {
public:
  static constexpr int64_t k_bucket_ms = 10'000;
  static constexpr size_t k_buckets = 90; // 15 minutes of history

  // A finished request; records older than the history are counted in no bucket.
  void add(const UsageRecord& record, const Registry& registry);

  const std::map<std::string, TargetTraffic>& targets() const { return m_targets; }
  // The k_buckets buckets ending with the one holding now_ms, oldest first; empty ones zero.
  std::vector<TrafficBucket> series(int64_t now_ms) const;
  // Attempts of a target in the last minute before now_ms.
  static int64_t attempts_in_last_minute(const TargetTraffic& t, int64_t now_ms);

  std::array<double, 3> latency_percentiles() const { return m_latency_ms.p50_p95_p99(); }
  std::array<double, 3> ttft_percentiles() const { return m_ttft_ms.p50_p95_p99(); }

private:
  std::array<TrafficBucket, k_buckets> m_buckets;
  std::map<std::string, TargetTraffic> m_targets;
  RecentValues m_latency_ms{k_recent_per_target};
  RecentValues m_ttft_ms{k_recent_per_target};
};

// What GET /api/status reports, gathered by the App from its parts.
struct StatusInputs {
  std::string_view version;
  int64_t now_ms = 0;
  double uptime_seconds = 0;
  const Registry* registry = nullptr;
  // Every target by its one name, with the registry entry it belongs to (as /health lists
  // them); empty: one per registry entry, by the entry's name.
  std::vector<std::pair<std::string, const Target*>> targets;
  const BudgetConfig* budget = nullptr;
  // The slots of the registry entries with max_concurrency (SPEC §10), and the spills from each
  // target by its name.
  std::map<const Target*, TargetSlots::View> slots;
  std::map<std::string, int64_t> spills;
  // The response cache's fill, when the config enables it (SPEC §11), and its bound in bytes.
  std::optional<CacheStats> cache;
  int64_t cache_max_bytes = 0;
  // GET /health's body, embedded as it is.
  std::string_view health_json;
  UsageTotals all;   // since the usage log began
  UsageTotals month; // this UTC month
  UsageTotals today; // this UTC day
};

// {"version", "now", "uptime_seconds", "health": {GET /health}, "targets": [{"target", "kind",
// "type", "where", "requests", "succeeded", "failed", "success_rate", "requests_per_minute",
// "latency_ms": {"p50", "p95", "p99"}, "ttft_ms": {...}, "spills", and for a target with
// max_concurrency "slots": {"max", "in_use", "queued"}}], "traffic": {"requests", "succeeded",
// "failed", "fallbacks", "latency_ms", "ttft_ms"}, "series": {"bucket_seconds", "start",
// "requests": [], "failed": [], "cost_usd": []}, "spend": {"month", "month_usd",
// "reference_usd", "savings_usd", "savings_percent", "today_usd", "tokens", "requests",
// "cache_hits", "cache_savings_usd", "reference_model", "budget": {"monthly_usd", "daily_usd",
// "exhausted", "why"}}, "cache": {"entries", "bytes", "max_bytes"} or null when off, "registry":
// {"custom_models": [...], "providers": [...], "aliases": [...], "auto": [...]}}.
// Money in USD as exact six-decimal numbers. No secret: keys are reported as counts only, and a
// base URL loses any userinfo and query.
std::string status_json(const StatusInputs& inputs, const TrafficHistory& history);

// `modelmux status`: the same figures as a terminal summary, from GET /api/status's body.
Result<std::string> status_text(std::string_view status_json);

// A base URL fit to show: without user:password@ and without ?query (where a key could hide).
std::string displayable_url(std::string_view url);

} // namespace modelmux
