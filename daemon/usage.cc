// Usage records: cost, JSON lines, sums.
#include "modelmux/usage.h"

#include "modelmux/json.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <ctime>
#include <simdjson.h>

namespace modelmux {

int64_t cost_micros(const Price& price, const TokenUsage& usage) {
  // Integers throughout: tokens x micro-USD per 1M tokens, in micro-micro-dollars. A billion
  // tokens at a thousand dollars per million still fits in 64 bits.
  const int64_t total = usage.input_tokens * price.input + usage.output_tokens * price.output +
                        usage.cache_read_tokens * price.cached_input.value_or(price.input) +
                        usage.cache_write_tokens * price.cache_write.value_or(price.input);
  return (total + 500000) / 1000000;
}

TokenUsage tokens_of(const UsageRecord& r) {
  TokenUsage u;
  u.cache_read_tokens = r.cached_tokens;
  u.cache_write_tokens = r.cache_write_tokens;
  u.input_tokens = std::max<int64_t>(0, r.input_tokens - r.cached_tokens - r.cache_write_tokens);
  u.output_tokens = r.output_tokens;
  u.reported = !r.estimated;
  return u;
}

void set_tokens(UsageRecord& r, const TokenUsage& usage) {
  r.input_tokens = usage.prompt_tokens();
  r.output_tokens = usage.output_tokens;
  r.cached_tokens = usage.cache_read_tokens;
  r.cache_write_tokens = usage.cache_write_tokens;
  r.estimated = !usage.reported;
}

std::string usd_from_micros(int64_t micros) {
  char buf[48];
  const bool negative = micros < 0;
  const uint64_t m =
      negative ? static_cast<uint64_t>(-(micros + 1)) + 1 : static_cast<uint64_t>(micros);
  std::snprintf(buf, sizeof buf, "%s%" PRIu64 ".%06" PRIu64, negative ? "-" : "", m / 1000000,
                m % 1000000);
  return buf;
}

std::string_view format_rfc3339_utc(int64_t ts_ms, char (&out)[k_rfc3339_size]) {
  using namespace std::chrono;
  const sys_time<milliseconds> t{milliseconds(ts_ms)};
  const auto day = floor<days>(t);
  const year_month_day date{day};
  const hh_mm_ss<milliseconds> time{t - day};
  auto put = [&out](size_t at, int64_t value, int width) {
    for (int i = width - 1; i >= 0; --i) {
      out[at + static_cast<size_t>(i)] = static_cast<char>('0' + value % 10);
      value /= 10;
    }
  };
  put(0, static_cast<int>(date.year()), 4);
  out[4] = '-';
  put(5, static_cast<unsigned>(date.month()), 2);
  out[7] = '-';
  put(8, static_cast<unsigned>(date.day()), 2);
  out[10] = 'T';
  put(11, time.hours().count(), 2);
  out[13] = ':';
  put(14, time.minutes().count(), 2);
  out[16] = ':';
  put(17, time.seconds().count(), 2);
  out[19] = '.';
  put(20, time.subseconds().count(), 3);
  out[23] = 'Z';
  return std::string_view(out, k_rfc3339_size);
}

std::string rfc3339_utc(int64_t ts_ms) {
  char buf[k_rfc3339_size];
  return std::string(format_rfc3339_utc(ts_ms, buf));
}

std::string to_json_line(const UsageRecord& r) {
  char ts[k_rfc3339_size];
  std::string out;
  out.reserve(384);
  JsonWriter w(out);
  w.begin_object()
      .field("ts", format_rfc3339_utc(r.ts_ms, ts))
      .field("request_id", std::string_view(r.request_id))
      .field("route", std::string_view(r.route))
      .field("model", std::string_view(r.model))
      .field("target", std::string_view(r.target))
      .field("attempts", r.attempts)
      .field("status", r.status)
      .field("stream", r.stream)
      .field("input_tokens", r.input_tokens)
      .field("output_tokens", r.output_tokens)
      .field("cached_tokens", r.cached_tokens)
      .field("cache_write_tokens", r.cache_write_tokens)
      .field("estimated", r.estimated)
      .key("cost_usd")
      .raw(usd_from_micros(r.cost_micros))
      .key("reference_cost_usd")
      .raw(usd_from_micros(r.reference_cost_micros));
  char ms[32];
  std::snprintf(ms, sizeof ms, "%.2f", r.latency_ms);
  w.key("latency_ms").raw(ms);
  std::snprintf(ms, sizeof ms, "%.2f", r.ttft_ms);
  w.key("ttft_ms").raw(ms);
  w.key("failed_targets").begin_array();
  for (const auto& t : r.failed_targets) {
    w.value(std::string_view(t));
  }
  w.end_array().field("outcome", std::string_view(r.outcome));
  if (r.cache_hit) {
    w.field("cache_hit", true)
        .key("cache_savings_usd")
        .raw(usd_from_micros(r.cache_savings_micros));
  }
  w.field("ts_ms", r.ts_ms).end_object();
  out.push_back('\n');
  return out;
}

namespace {

// Money as written by usd_from_micros, read back exactly (no floating point).
std::optional<int64_t> micros_from_json_number(std::string_view raw) {
  while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\n')) {
    raw.remove_suffix(1);
  }
  bool negative = false;
  if (!raw.empty() && raw.front() == '-') {
    negative = true;
    raw.remove_prefix(1);
  }
  const size_t dot = raw.find('.');
  const std::string_view whole = raw.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? std::string_view() : raw.substr(dot + 1);
  if (whole.empty() || frac.size() > 6) {
    return std::nullopt;
  }
  int64_t m = 0;
  for (char c : whole) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    m = m * 10 + (c - '0');
  }
  int64_t f = 0;
  for (size_t i = 0; i < 6; ++i) {
    const char c = i < frac.size() ? frac[i] : '0';
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    f = f * 10 + (c - '0');
  }
  const int64_t v = m * 1000000 + f;
  return negative ? -v : v;
}

} // namespace

std::optional<UsageRecord> parse_usage_line(std::string_view line) {
  thread_local simdjson::ondemand::parser parser;
  const simdjson::padded_string padded(line);
  simdjson::ondemand::document doc;
  if (parser.iterate(padded).get(doc)) {
    return std::nullopt;
  }
  UsageRecord r;
  simdjson::ondemand::object obj;
  if (doc.get_object().get(obj)) {
    return std::nullopt;
  }
  bool has_ts = false;
  for (auto field_result : obj) {
    simdjson::ondemand::field field;
    std::string_view key;
    if (std::move(field_result).get(field) || field.unescaped_key().get(key)) {
      return std::nullopt;
    }
    auto value = field.value();
    auto str = [&](std::string& into) {
      return !value.get_string().get(key) && (into = key, true);
    };
    auto num = [&](int64_t& into) { return !value.get_int64().get(into); };
    bool ok = true;
    if (key == "ts_ms") {
      ok = num(r.ts_ms);
      has_ts = ok;
    } else if (key == "request_id") {
      ok = str(r.request_id);
    } else if (key == "route") {
      ok = str(r.route);
    } else if (key == "model") {
      ok = str(r.model);
    } else if (key == "target") {
      ok = str(r.target);
    } else if (key == "attempts") {
      ok = num(r.attempts);
    } else if (key == "status") {
      ok = num(r.status);
    } else if (key == "stream") {
      ok = !value.get_bool().get(r.stream);
    } else if (key == "input_tokens") {
      ok = num(r.input_tokens);
    } else if (key == "output_tokens") {
      ok = num(r.output_tokens);
    } else if (key == "cached_tokens") {
      ok = num(r.cached_tokens);
    } else if (key == "cache_write_tokens") {
      ok = num(r.cache_write_tokens);
    } else if (key == "estimated") {
      ok = !value.get_bool().get(r.estimated);
    } else if (key == "cost_usd" || key == "reference_cost_usd" || key == "cache_savings_usd") {
      const auto micros = micros_from_json_number(value.raw_json_token());
      ok = micros.has_value();
      (key == "cost_usd"             ? r.cost_micros
       : key == "reference_cost_usd" ? r.reference_cost_micros
                                     : r.cache_savings_micros) = micros.value_or(0);
    } else if (key == "cache_hit") {
      ok = !value.get_bool().get(r.cache_hit);
    } else if (key == "latency_ms") {
      ok = !value.get_double().get(r.latency_ms);
    } else if (key == "ttft_ms") {
      ok = !value.get_double().get(r.ttft_ms);
    } else if (key == "outcome") {
      std::string_view s;
      ok = !value.get_string().get(s);
      r.outcome = std::string(s);
    } else if (key == "failed_targets") {
      simdjson::ondemand::array targets;
      ok = !value.get_array().get(targets);
      for (auto t : targets) {
        std::string_view s;
        if (!ok || t.get_string().get(s)) {
          ok = false;
          break;
        }
        r.failed_targets.emplace_back(s);
      }
    }
    if (!ok) {
      return std::nullopt;
    }
  }
  if (!has_ts) {
    return std::nullopt;
  }
  return r;
}

std::vector<std::pair<std::string_view, std::string_view>> fallback_moves(const UsageRecord& r) {
  std::vector<std::pair<std::string_view, std::string_view>> moves;
  for (size_t i = 0; i < r.failed_targets.size(); ++i) {
    const bool last = i + 1 == r.failed_targets.size();
    if (last && r.target.empty()) {
      break;
    }
    moves.emplace_back(r.failed_targets[i], last ? r.target : r.failed_targets[i + 1]);
  }
  return moves;
}

UsageTotals& UsageTotals::operator+=(const UsageTotals& o) {
  requests += o.requests;
  succeeded += o.succeeded;
  failed += o.failed;
  fallbacks += o.fallbacks;
  input_tokens += o.input_tokens;
  output_tokens += o.output_tokens;
  cached_tokens += o.cached_tokens;
  cost_micros += o.cost_micros;
  reference_cost_micros += o.reference_cost_micros;
  cache_hits += o.cache_hits;
  cache_savings_micros += o.cache_savings_micros;
  return *this;
}

bool served_whole(const UsageRecord& r) {
  return r.status >= 200 && r.status < 300 && r.outcome == "ok";
}

void UsageTotals::add(const UsageRecord& r) {
  ++requests;
  if (served_whole(r)) {
    ++succeeded;
  } else {
    ++failed;
  }
  fallbacks += static_cast<int64_t>(fallback_moves(r).size());
  input_tokens += r.input_tokens;
  output_tokens += r.output_tokens;
  cached_tokens += r.cached_tokens;
  cost_micros += r.cost_micros;
  reference_cost_micros += r.reference_cost_micros;
  cache_hits += r.cache_hit ? 1 : 0;
  cache_savings_micros += r.cache_savings_micros;
}

} // namespace modelmux

namespace modelmux {

void UsageStats::add(const UsageRecord& r) {
  char ts[k_rfc3339_size];
  const auto day = format_rfc3339_utc(r.ts_ms, ts).substr(0, 10);
  auto days = m_days.find(day);
  if (days == m_days.end()) {
    days =
        m_days.emplace(std::string(day), std::map<std::string, UsageTotals, std::less<>>()).first;
  }
  auto models = days->second.find(r.model);
  if (models == days->second.end()) {
    models = days->second.emplace(r.model, UsageTotals()).first;
  }
  models->second.add(r);
  m_all.add(r);
  m_latency_sum_ms += r.latency_ms;
  m_latencies.add(r.latency_ms);
}

namespace {

std::string fixed(double v, int decimals, std::string_view suffix = {}) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return std::string(buf) + std::string(suffix);
}

std::string dollars(int64_t micros) {
  return (micros < 0 ? "-$" : "$") +
         fixed(static_cast<double>(micros < 0 ? -micros : micros) / 1e6, 2);
}

} // namespace

void RecentValues::add(double v) {
  if (m_values.size() < m_capacity) {
    m_values.push_back(static_cast<float>(v));
  } else {
    m_values[m_next] = static_cast<float>(v);
    m_next = (m_next + 1) % m_capacity;
  }
}

std::array<double, 3> RecentValues::p50_p95_p99() const {
  std::vector<float> sorted = m_values;
  std::sort(sorted.begin(), sorted.end());
  return {nearest_rank(sorted, 50), nearest_rank(sorted, 95), nearest_rank(sorted, 99)};
}

double nearest_rank(const std::vector<float>& sorted, int p) {
  if (sorted.empty()) {
    return 0.0;
  }
  const size_t rank = (sorted.size() * static_cast<size_t>(p) + 99) / 100;
  return static_cast<double>(sorted[std::max<size_t>(rank, 1) - 1]);
}

std::string UsageStats::monitoring_json(std::string_view health_status,
                                        const std::vector<std::string>& issues) const {
  const auto [p50, p95, p99] = m_latencies.p50_p95_p99();
  const double average =
      m_all.requests > 0 ? m_latency_sum_ms / static_cast<double>(m_all.requests) : 0.0;
  const double success_rate = m_all.requests > 0 ? 100.0 * static_cast<double>(m_all.succeeded) /
                                                       static_cast<double>(m_all.requests)
                                                 : 100.0;
  const int64_t savings = m_all.savings_micros();
  const double savings_percent =
      m_all.reference_cost_micros > 0
          ? 100.0 * static_cast<double>(savings) / static_cast<double>(m_all.reference_cost_micros)
          : 0.0;
  std::map<std::string, int64_t> by_model;
  for (const auto& [day, models] : m_days) {
    for (const auto& [model, t] : models) {
      by_model[model] += t.requests;
    }
  }
  std::string out;
  JsonWriter w(out);
  w.begin_object().field("success", true).key("metrics").begin_object();
  w.key("requests").begin_object();
  w.field("total", m_all.requests).field("success", m_all.succeeded);
  w.field("failures", m_all.failed).field("fallbacks", m_all.fallbacks);
  w.field("successRate", std::string_view(fixed(success_rate, 2, "%")));
  w.key("byModel").begin_object();
  for (const auto& [model, n] : by_model) {
    w.field(model, n);
  }
  w.end_object().end_object();
  w.key("performance").begin_object();
  w.field("averageLatency", std::string_view(fixed(average, 2, "ms")));
  w.field("p50Latency", std::string_view(fixed(p50, 2, "ms")));
  w.field("p95Latency", std::string_view(fixed(p95, 2, "ms")));
  w.field("p99Latency", std::string_view(fixed(p99, 2, "ms")));
  w.end_object();
  w.key("costs").begin_object();
  w.field("customModelCost", std::string_view(dollars(m_all.cost_micros)));
  w.field("providerModelCost", std::string_view(dollars(m_all.reference_cost_micros)));
  w.field("savings", std::string_view(dollars(savings)));
  w.field("savingsPercent", std::string_view(fixed(savings_percent, 1, "%")));
  w.end_object().end_object();
  w.key("health").begin_object().field("status", health_status);
  w.field("successRate", std::string_view(fixed(success_rate, 2, "%")));
  w.field("averageLatency", std::string_view(fixed(average, 2, "ms")));
  w.field("totalRequests", m_all.requests).key("issues").begin_array();
  for (const auto& issue : issues) {
    w.value(std::string_view(issue));
  }
  w.end_array().end_object().end_object();
  return out;
}

std::map<std::string, UsageTotals> UsageStats::by_model(std::string_view period,
                                                        int64_t now_ms) const {
  const std::string today = rfc3339_utc(now_ms).substr(0, 10);
  const std::string prefix = period == "day"     ? today
                             : period == "month" ? today.substr(0, 7)
                                                 : std::string();
  std::map<std::string, UsageTotals> out;
  for (const auto& [day, models] : m_days) {
    if (day.compare(0, prefix.size(), prefix) != 0) {
      continue;
    }
    for (const auto& [model, t] : models) {
      out[model] += t;
    }
  }
  return out;
}

std::optional<std::string> UsageStats::usage_json(std::string_view period, int64_t now_ms) const {
  if (period != "day" && period != "month" && period != "all") {
    return std::nullopt;
  }
  const auto models = by_model(period, now_ms);
  int64_t tokens = 0;
  int64_t cost = 0;
  int64_t requests = 0;
  for (const auto& [model, t] : models) {
    tokens += t.input_tokens + t.output_tokens;
    cost += t.cost_micros;
    requests += t.requests;
  }
  std::string out;
  JsonWriter w(out);
  w.begin_object().field("period", period).field("total_tokens", tokens);
  w.key("total_cost").raw(usd_from_micros(cost)).field("requests", requests);
  w.key("by_model").begin_object();
  for (const auto& [model, t] : models) {
    w.key(model).begin_object().field("tokens", t.input_tokens + t.output_tokens);
    w.key("cost").raw(usd_from_micros(t.cost_micros)).field("requests", t.requests);
    w.end_object();
  }
  w.end_object().end_object();
  return out;
}

} // namespace modelmux

namespace modelmux {

int64_t utc_day_index(int64_t ts_ms) {
  return ts_ms >= 0 ? ts_ms / 86400000 : (ts_ms - 86399999) / 86400000;
}

int64_t utc_month_index(int64_t ts_ms) {
  // Civil date from days since 1970-01-01 (H. Hinnant's algorithm), kept to year and month.
  const int64_t z = utc_day_index(ts_ms) + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t month = mp < 10 ? mp + 3 : mp - 9;
  const int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  return year * 12 + (month - 1);
}

BudgetState judge_budget(const BudgetConfig& budget, int64_t month_spend_micros,
                         int64_t day_spend_micros) {
  BudgetState b;
  auto check = [&](const std::optional<int64_t>& limit, int64_t spent, const char* name) {
    if (!limit) {
      return;
    }
    const int64_t remaining = *limit - spent;
    b.remaining_micros = b.remaining_micros ? std::min(*b.remaining_micros, remaining) : remaining;
    if (remaining <= 0 && !b.exhausted) {
      b.exhausted = true;
      b.why = "spent $" + usd_from_micros(spent) + " of the " + name + " budget of $" +
              usd_from_micros(*limit);
    }
  };
  check(budget.daily_micros, day_spend_micros, "daily");
  check(budget.monthly_micros, month_spend_micros, "monthly");
  return b;
}

} // namespace modelmux
