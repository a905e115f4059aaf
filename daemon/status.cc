// The status page's figures and their two renderings: JSON for the page, text for a terminal.
#include "modelmux/status.h"

#include "modelmux/json.h"

#include <algorithm>
#include <cstdio>
#include <simdjson.h>
#include <span>
#include <sstream>

namespace modelmux {

const Target* target_of_record(const Registry& registry, std::string_view record_target) {
  if (record_target.empty()) {
    return nullptr;
  }
  if (record_target.starts_with("custom:")) {
    return registry.custom(record_target.substr(7));
  }
  return registry.provider(record_target.substr(0, record_target.find(':')));
}

namespace {

// The slot of ring for time index, emptied first when it still holds an older time.
TrafficBucket* slot(std::span<TrafficBucket> ring, int64_t index) {
  auto& b = ring[static_cast<size_t>(index) % ring.size()];
  if (b.index > index) {
    return nullptr; // older than what the ring holds
  }
  if (b.index < index) {
    b = TrafficBucket{index};
  }
  return &b;
}

} // namespace

void TrafficHistory::add(const UsageRecord& record, const Registry& registry) {
  const int64_t index = record.ts_ms / k_bucket_ms;
  const bool ok = served_whole(record);
  if (auto* b = slot(m_buckets, index)) {
    ++b->requests;
    b->failed += ok ? 0 : 1;
    b->cost_micros += record.cost_micros;
  }
  auto attempt = [&](std::string_view record_target, bool succeeded) -> TargetTraffic* {
    if (target_of_record(registry, record_target) == nullptr) {
      return nullptr; // a name no target of this config carries
    }
    auto& traffic = m_targets[std::string(record_target)];
    ++(succeeded ? traffic.succeeded : traffic.failed);
    if (auto* b = slot(traffic.last_minute, index)) {
      ++b->requests;
      b->failed += succeeded ? 0 : 1;
    }
    return &traffic;
  };
  for (const auto& failed : record.failed_targets) {
    attempt(failed, false);
  }
  if (auto* served = attempt(record.target, ok); served != nullptr && ok) {
    served->latency_ms.add(record.latency_ms);
    if (record.stream) {
      served->ttft_ms.add(record.ttft_ms);
    }
  }
  if (ok) {
    m_latency_ms.add(record.latency_ms);
    if (record.stream) {
      m_ttft_ms.add(record.ttft_ms);
    }
  }
}

std::vector<TrafficBucket> TrafficHistory::series(int64_t now_ms) const {
  const int64_t last = now_ms / k_bucket_ms;
  std::vector<TrafficBucket> out;
  out.reserve(k_buckets);
  for (int64_t i = last - static_cast<int64_t>(k_buckets) + 1; i <= last; ++i) {
    const auto& b = m_buckets[static_cast<size_t>(i) % k_buckets];
    out.push_back(b.index == i ? b : TrafficBucket{i});
  }
  return out;
}

int64_t TrafficHistory::attempts_in_last_minute(const TargetTraffic& t, int64_t now_ms) {
  const int64_t last = now_ms / k_bucket_ms;
  int64_t n = 0;
  for (const auto& b : t.last_minute) {
    if (b.index > last - static_cast<int64_t>(t.last_minute.size()) && b.index <= last) {
      n += b.requests;
    }
  }
  return n;
}

std::string displayable_url(std::string_view url) {
  std::string_view rest = url;
  std::string scheme;
  if (const auto p = rest.find("://"); p != std::string_view::npos) {
    scheme = std::string(rest.substr(0, p + 3));
    rest.remove_prefix(p + 3);
  }
  rest = rest.substr(0, rest.find_first_of("?#"));
  const auto authority_end = std::min(rest.find('/'), rest.size());
  if (const auto at = rest.substr(0, authority_end).rfind('@'); at != std::string_view::npos) {
    rest.remove_prefix(at + 1);
  }
  return scheme + std::string(rest);
}

namespace {

void write_percentiles(JsonWriter& w, std::string_view key, const std::array<double, 3>& p) {
  w.key(key).begin_object();
  w.field("p50", p[0]).field("p95", p[1]).field("p99", p[2]);
  w.end_object();
}

void write_usd(JsonWriter& w, std::string_view key, int64_t micros) {
  w.key(key).raw(usd_from_micros(micros));
}

double percent(int64_t part, int64_t whole) {
  return whole > 0 ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : 0.0;
}

std::string_view kind_of(const Target& t) {
  return t.is_custom ? "custom" : "provider";
}

std::string where_of(const Target& t) {
  return t.endpoint.type == TargetType::mock ? std::string("(answers locally)")
                                             : displayable_url(t.endpoint.base_url);
}

void write_registry(JsonWriter& w, const Registry& registry) {
  w.key("registry").begin_object();
  w.key("custom_models").begin_array();
  for (const auto& t : registry.targets()) {
    if (!t.is_custom) {
      continue;
    }
    w.begin_object().field("id", std::string_view(t.name));
    w.field("upstream_model", std::string_view(t.upstream_model));
    w.field("type", to_string(t.endpoint.type));
    w.field("where", std::string_view(where_of(t)));
    w.field("keys", static_cast<int64_t>(t.endpoint.api_keys.size()));
    w.key("fallback").begin_array();
    for (const auto& f : t.fallback) {
      w.value(std::string_view(f.text));
    }
    w.end_array().end_object();
  }
  w.end_array();
  w.key("providers").begin_array();
  for (const auto& t : registry.targets()) {
    if (t.is_custom) {
      continue;
    }
    w.begin_object().field("name", std::string_view(t.name));
    w.field("type", to_string(t.endpoint.type));
    w.field("where", std::string_view(where_of(t)));
    w.field("keys", static_cast<int64_t>(t.endpoint.api_keys.size()));
    w.field("catalog", static_cast<int64_t>(t.catalog.size()));
    w.end_object();
  }
  w.end_array();
  w.key("aliases").begin_array();
  for (const auto& a : registry.aliases()) {
    w.begin_object().field("name", std::string_view(a.name));
    w.field("target", std::string_view(a.target.text)).end_object();
  }
  w.end_array();
  w.key("auto").begin_array();
  for (const auto& ref : registry.routing().auto_chain) {
    w.value(std::string_view(ref.text));
  }
  w.end_array().end_object();
}

} // namespace

std::string status_json(const StatusInputs& in, const TrafficHistory& history) {
  std::string out;
  JsonWriter w(out);
  w.begin_object();
  w.field("version", in.version).field("now", std::string_view(rfc3339_utc(in.now_ms)));
  w.field("uptime_seconds", in.uptime_seconds);
  w.key("health").raw(in.health_json);

  w.key("targets").begin_array();
  auto targets = in.targets;
  if (targets.empty()) {
    for (const auto& t : in.registry->targets()) {
      targets.emplace_back(t.name, &t);
    }
  }
  for (const auto& [name, entry] : targets) {
    const Target& t = *entry;
    static const TargetTraffic k_none;
    const auto found = history.targets().find(name);
    const TargetTraffic& traffic = found == history.targets().end() ? k_none : found->second;
    const int64_t attempts = traffic.succeeded + traffic.failed;
    w.begin_object().field("target", std::string_view(name)).field("kind", kind_of(t));
    w.field("type", to_string(t.endpoint.type));
    w.field("where", std::string_view(where_of(t)));
    w.field("requests", attempts).field("succeeded", traffic.succeeded);
    w.field("failed", traffic.failed);
    if (attempts > 0) {
      w.field("success_rate", percent(traffic.succeeded, attempts));
    } else {
      w.key("success_rate").null();
    }
    w.field("requests_per_minute", TrafficHistory::attempts_in_last_minute(traffic, in.now_ms));
    write_percentiles(w, "latency_ms", traffic.latency_ms.p50_p95_p99());
    write_percentiles(w, "ttft_ms", traffic.ttft_ms.p50_p95_p99());
    const auto spills = in.spills.find(name);
    w.field("spills", spills == in.spills.end() ? int64_t{0} : spills->second);
    if (const auto slots = in.slots.find(&t); slots != in.slots.end()) {
      w.key("slots").begin_object();
      w.field("max", int64_t{slots->second.limits.max_concurrency});
      w.field("in_use", int64_t{slots->second.in_use});
      w.field("queued", int64_t{slots->second.queued});
      w.end_object();
    }
    w.end_object();
  }
  w.end_array();

  w.key("traffic").begin_object();
  w.field("requests", in.all.requests).field("succeeded", in.all.succeeded);
  w.field("failed", in.all.failed).field("fallbacks", in.all.fallbacks);
  write_percentiles(w, "latency_ms", history.latency_percentiles());
  write_percentiles(w, "ttft_ms", history.ttft_percentiles());
  w.end_object();

  const auto buckets = history.series(in.now_ms);
  w.key("series").begin_object();
  w.field("bucket_seconds", TrafficHistory::k_bucket_ms / 1000);
  w.field("start",
          std::string_view(rfc3339_utc(buckets.front().index * TrafficHistory::k_bucket_ms)));
  w.key("requests").begin_array();
  for (const auto& b : buckets) {
    w.value(b.requests);
  }
  w.end_array().key("failed").begin_array();
  for (const auto& b : buckets) {
    w.value(b.failed);
  }
  w.end_array().key("cost_usd").begin_array();
  for (const auto& b : buckets) {
    w.raw(usd_from_micros(b.cost_micros));
  }
  w.end_array().end_object();

  w.key("spend").begin_object();
  w.field("month", std::string_view(rfc3339_utc(in.now_ms).substr(0, 7)));
  write_usd(w, "month_usd", in.month.cost_micros);
  write_usd(w, "reference_usd", in.month.reference_cost_micros);
  write_usd(w, "savings_usd", in.month.savings_micros());
  w.field("savings_percent", percent(in.month.savings_micros(), in.month.reference_cost_micros));
  write_usd(w, "today_usd", in.today.cost_micros);
  w.field("tokens", in.month.input_tokens + in.month.output_tokens);
  w.field("requests", in.month.requests);
  w.field("cache_hits", in.month.cache_hits);
  write_usd(w, "cache_savings_usd", in.month.cache_savings_micros);
  if (const auto& ref = in.registry->routing().reference_model) {
    w.field("reference_model", std::string_view(ref->text));
  } else {
    w.key("reference_model").null();
  }
  const auto state = judge_budget(*in.budget, in.month.cost_micros, in.today.cost_micros);
  w.key("budget").begin_object();
  for (const auto& [key, limit] : {std::pair{"monthly_usd", in.budget->monthly_micros},
                                   std::pair{"daily_usd", in.budget->daily_micros}}) {
    if (limit) {
      write_usd(w, key, *limit);
    } else {
      w.key(key).null();
    }
  }
  w.field("exhausted", state.exhausted).field("why", std::string_view(state.why));
  w.end_object().end_object();

  if (in.cache) {
    w.key("cache").begin_object();
    w.field("entries", static_cast<int64_t>(in.cache->entries));
    w.field("bytes", static_cast<int64_t>(in.cache->bytes));
    w.field("max_bytes", in.cache_max_bytes);
    w.end_object();
  } else {
    w.key("cache").null();
  }

  write_registry(w, *in.registry);
  w.end_object();
  return out;
}

namespace {

using simdjson::dom::element;

std::string text_or(element e, std::string_view fallback = "-") {
  std::string_view s;
  return e.get_string().get(s) ? std::string(fallback) : std::string(s);
}

double number_or(element e, double fallback = 0) {
  double d = 0;
  if (!e.get_double().get(d)) {
    return d;
  }
  int64_t i = 0;
  return e.get_int64().get(i) ? fallback : static_cast<double>(i);
}

std::string format(const char* pattern, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, pattern, v);
  return buf;
}

std::string ms(double v) {
  return v >= 1000 ? format("%.2fs", v / 1000) : format(v < 10 ? "%.1fms" : "%.0fms", v);
}

// p50/p95/p99, or "-" when nothing was measured.
std::string percentiles(element p, bool measured) {
  if (!measured) {
    return "-";
  }
  return ms(number_or(p["p50"])) + " / " + ms(number_or(p["p95"])) + " / " +
         ms(number_or(p["p99"]));
}

// "3/4 q2": slots in use of the limit, and the queue; "-" for a target without a limit.
std::string slots_text(element target) {
  element slots;
  if (target["slots"].get(slots)) {
    return "-";
  }
  return format("%.0f", number_or(slots["in_use"])) + "/" +
         format("%.0f", number_or(slots["max"])) + " q" +
         format("%.0f", number_or(slots["queued"]));
}

std::string pad(std::string s, size_t width) {
  if (s.size() < width) {
    s.append(width - s.size(), ' ');
  }
  return s;
}

} // namespace

Result<std::string> status_text(std::string_view body) {
  simdjson::dom::parser parser;
  element doc;
  if (parser.parse(simdjson::padded_string(body)).get(doc) || !doc.is_object()) {
    return make_error(ErrorKind::upstream, "the daemon's /api/status answer is not JSON");
  }
  std::ostringstream out;
  element health = doc["health"];
  out << "modelmux " << text_or(doc["version"]) << "  " << text_or(health["status"], "unknown")
      << "  up " << format("%.0fs", number_or(doc["uptime_seconds"])) << "  at "
      << text_or(doc["now"]) << "\n\n";

  // Health by target name, to put beside the traffic figures.
  std::map<std::string, element> health_of;
  simdjson::dom::array health_targets;
  if (!health["targets"].get_array().get(health_targets)) {
    for (element h : health_targets) {
      health_of[text_or(h["target"])] = h;
    }
  }
  out << pad("TARGET", 28) << pad("STATE", 10) << pad("REQ/MIN", 9) << pad("SUCCESS", 9)
      << pad("LATENCY P50/P95/P99", 24) << pad("SLOTS", 12) << pad("SPILLS", 8) << "WHY\n";
  simdjson::dom::array targets;
  if (!doc["targets"].get_array().get(targets)) {
    for (element t : targets) {
      const std::string name = text_or(t["target"]);
      const auto h = health_of.find(name);
      const std::string state = h == health_of.end() ? "-" : text_or(h->second["state"]);
      std::string why = h == health_of.end() ? "" : text_or(h->second["reason"], "");
      if (h != health_of.end()) {
        std::string_view until;
        if (!h->second["ejected_until"].get_string().get(until)) {
          why += " (until " + std::string(until) + ")";
        }
      }
      const std::string success =
          t["success_rate"].is_null() ? "-" : format("%.1f%%", number_or(t["success_rate"]));
      out << pad(name, 28) << pad(state, 10)
          << pad(format("%.0f", number_or(t["requests_per_minute"])), 9) << pad(success, 9)
          << pad(percentiles(t["latency_ms"], number_or(t["succeeded"]) > 0), 24)
          << pad(slots_text(t), 12) << pad(format("%.0f", number_or(t["spills"])), 8) << why
          << "\n";
    }
  }
  element traffic = doc["traffic"];
  const double requests = number_or(traffic["requests"]);
  out << "\nrequests   " << format("%.0f", requests) << " served "
      << format("%.0f", number_or(traffic["succeeded"])) << ", failed "
      << format("%.0f", number_or(traffic["failed"])) << ", fallbacks "
      << format("%.0f", number_or(traffic["fallbacks"])) << "\n";
  out << "latency    p50/p95/p99 "
      << percentiles(traffic["latency_ms"], number_or(traffic["succeeded"]) > 0) << "\n";
  out << "first token p50/p95/p99 "
      << percentiles(traffic["ttft_ms"], number_or(traffic["ttft_ms"]["p99"]) > 0) << "\n";

  element spend = doc["spend"];
  out << "\nspend " << text_or(spend["month"]) << " $"
      << format("%.2f", number_or(spend["month_usd"])) << " (today $"
      << format("%.2f", number_or(spend["today_usd"])) << ")";
  element budget = spend["budget"];
  if (!budget["monthly_usd"].is_null()) {
    out << " of a monthly budget of $" << format("%.2f", number_or(budget["monthly_usd"]));
  }
  if (!budget["daily_usd"].is_null()) {
    out << ", daily $" << format("%.2f", number_or(budget["daily_usd"]));
  }
  out << "\n";
  if (bool exhausted = false; !budget["exhausted"].get_bool().get(exhausted) && exhausted) {
    out << "budget     exhausted: " << text_or(budget["why"]) << "\n";
  }
  if (spend["reference_model"].is_null()) {
    out << "savings    - (no routing.reference_model set)\n";
  } else {
    out << "savings    $" << format("%.2f", number_or(spend["savings_usd"])) << " ("
        << format("%.1f%%", number_or(spend["savings_percent"])) << ") against "
        << text_or(spend["reference_model"]) << " at $"
        << format("%.2f", number_or(spend["reference_usd"])) << "\n";
  }
  element redis;
  if (!health["redis"].get(redis)) {
    const std::string state = text_or(redis["state"]);
    out << "redis      " << state << " (" << text_or(redis["url"]) << ") since "
        << text_or(redis["since"]);
    if (state != "up") {
      out << ": " << text_or(redis["why"]) << "; $"
          << format("%.2f", number_or(redis["unsent_usd"])) << " not yet shared";
    }
    out << "\n";
  }
  // A daemon older than the cache sends no "cache": it has none.
  element cache;
  if (doc["cache"].get(cache) || cache.is_null()) {
    out << "cache      off\n";
  } else {
    out << "cache      " << format("%.0f", number_or(spend["cache_hits"]))
        << " hits this month, saved $" << format("%.2f", number_or(spend["cache_savings_usd"]))
        << "; holds " << format("%.0f", number_or(cache["entries"])) << " answers, "
        << format("%.1f", number_or(cache["bytes"]) / 1048576.0) << " of "
        << format("%.0f", number_or(cache["max_bytes"]) / 1048576.0) << " MiB\n";
  }
  return out.str();
}

} // namespace modelmux
