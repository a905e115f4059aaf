// What one finished request used and cost: the usage record (one line of state_dir/usage.jsonl,
// SPEC §8), its cost and the reference model's cost in integer micro-dollars, and the sums every
// accounting surface is built from. Pure: no clock, no files.
#pragma once

#include "modelmux/config.h"
#include "modelmux/token_usage.h"

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmux {

struct UsageRecord {
  int64_t ts_ms = 0; // Unix time in milliseconds, UTC
  std::string request_id;
  std::string route;  // "/v1/chat/completions"
  std::string model;  // as the client named it
  std::string target; // the target that served, empty when none did
  int64_t attempts = 0;
  int64_t status = 0;
  bool stream = false;
  // Input tokens in total (cached included, as OpenAI counts prompt_tokens), of which
  // cached_tokens were read from a cache and cache_write_tokens written to one.
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  int64_t cached_tokens = 0;
  int64_t cache_write_tokens = 0;
  bool estimated = false; // no usage came back; the tokens are modelmux's estimate
  int64_t cost_micros = 0;
  int64_t reference_cost_micros = 0;
  double latency_ms = 0;
  double ttft_ms = 0;
  // The targets that failed this request before it was served (or not): each is a fallback
  // moved on from.
  std::vector<std::string> failed_targets;
  // How the serving attempt ended: "ok", or for a stream that broke after its first byte its
  // failure (idle, truncated, malformed, reset, http_5xx). The status stays the 200 sent.
  std::string outcome = "ok";
  // Answered from the response cache (SPEC §11): cost 0, and what the stored answer cost when it
  // was served is what this request saved.
  bool cache_hit = false;
  int64_t cache_savings_micros = 0;
};

// A request answered whole: a 2xx status and, for a stream, an end the protocol calls complete.
bool served_whole(const UsageRecord& r);

// The fallbacks a request took, as (from, to) targets: each failed target to the next one
// tried. The last failed target of a request no target served moved on to nothing, so it is a
// failure but not a fallback. The one definition every accounting surface counts by.
std::vector<std::pair<std::string_view, std::string_view>> fallback_moves(const UsageRecord& r);

// Cost of tokens at price (micro-USD per 1M tokens), rounded to the micro-dollar once per
// request. Cache reads and writes are priced as the catalog says, else as plain input.
int64_t cost_micros(const Price& price, const TokenUsage& usage);

// The record's tokens as the cost functions take them.
TokenUsage tokens_of(const UsageRecord& r);
void set_tokens(UsageRecord& r, const TokenUsage& usage);

// One JSON line (with the trailing newline). Money is written in USD with six decimals, so a
// sum of the lines is exact to the micro-dollar.
std::string to_json_line(const UsageRecord& r);
// A line as to_json_line wrote it; nullopt for a torn or foreign line.
std::optional<UsageRecord> parse_usage_line(std::string_view line);

// "2026-11-21T15:04:05.123Z"
std::string rfc3339_utc(int64_t ts_ms);
// The same, written to out ("2026-12-04T08:15:47.123Z", k_rfc3339_size bytes), with no
// allocation and no lock (gmtime_r takes glibc's time zone lock): the usage path formats one or
// two per request.
inline constexpr size_t k_rfc3339_size = 24;
std::string_view format_rfc3339_utc(int64_t ts_ms, char (&out)[k_rfc3339_size]);

// Sums of records, for one key (a target, a model, everything).
struct UsageTotals {
  int64_t requests = 0;  // finished requests
  int64_t succeeded = 0; // answered 2xx
  int64_t failed = 0;    // answered with an error
  int64_t fallbacks = 0; // times a request moved on from a failed target to another
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  int64_t cached_tokens = 0;
  int64_t cost_micros = 0;
  int64_t reference_cost_micros = 0;
  int64_t cache_hits = 0;           // requests answered from the response cache
  int64_t cache_savings_micros = 0; // what those answers cost when first served

  void add(const UsageRecord& r);
  UsageTotals& operator+=(const UsageTotals& o);
  int64_t savings_micros() const { return reference_cost_micros - cost_micros; }
};

// The last values of a series, oldest overwritten first, for percentiles.
class RecentValues {
public:
  explicit RecentValues(size_t capacity) : m_capacity(capacity) {}
  void add(double v);
  size_t size() const { return m_values.size(); }
  // Nearest-rank percentiles of what is kept; 0 when empty.
  std::array<double, 3> p50_p95_p99() const;

private:
  size_t m_capacity;
  std::vector<float> m_values;
  size_t m_next = 0;
};

// Sums kept in memory for the usage API: per UTC day and model as requested. Not thread-safe;
// the App guards it.
class UsageStats {
public:
  void add(const UsageRecord& r);

  // GET /api/usage?period=day|month|all, as of now_ms: {"period", "total_tokens", "total_cost",
  // "requests", "by_model": {model: {"tokens", "cost", "requests"}}}; money in USD.
  // nullopt for an unknown period.
  std::optional<std::string> usage_json(std::string_view period, int64_t now_ms) const;

  // Sums over a period, by model.
  std::map<std::string, UsageTotals> by_model(std::string_view period, int64_t now_ms) const;

  // GET /api/models/custom/monitoring over every request (latency percentiles over the most
  // recent k_latency_window): the seed's JSON shape (SPEC §4). health_status is /health's;
  // issues name the targets that are not healthy.
  std::string monitoring_json(std::string_view health_status,
                              const std::vector<std::string>& issues) const;

  // Every request summed.
  const UsageTotals& totals() const { return m_all; }

  static constexpr size_t k_latency_window = 100000;

private:
  // "YYYY-MM-DD" -> model; found by views, so a day or model seen before makes no string
  std::map<std::string, std::map<std::string, UsageTotals, std::less<>>, std::less<>> m_days;
  UsageTotals m_all;
  RecentValues m_latencies{k_latency_window}; // ms
  double m_latency_sum_ms = 0;
};

// Calendar periods of a UTC time, as numbers: days since the epoch, and year * 12 + month.
int64_t utc_day_index(int64_t ts_ms);
int64_t utc_month_index(int64_t ts_ms);

// Spend against budget.monthly_usd and budget.daily_usd.
struct BudgetState {
  bool exhausted = false;
  std::string why;                         // "spent $10.02 of the daily budget of $10.00"
  std::optional<int64_t> remaining_micros; // the smaller of the two; none without a budget
};
BudgetState judge_budget(const BudgetConfig& budget, int64_t month_spend_micros,
                         int64_t day_spend_micros);

// The p-th percentile (nearest rank) of values sorted ascending; 0 when there are none.
double nearest_rank(const std::vector<float>& sorted, int p);

// USD with exactly six decimals from micro-dollars: 1250000 -> "1.250000".
std::string usd_from_micros(int64_t micros);

} // namespace modelmux
