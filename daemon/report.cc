// The cost and savings report.
#include "modelmux/report.h"

#include "modelmux/json.h"

#include <cstdio>

namespace modelmux {

namespace {

// Savings as a percentage of the reference cost, one decimal; 0 without a reference cost.
double savings_percent(const ReportRow& r) {
  if (r.reference_cost_micros <= 0) {
    return 0.0;
  }
  const double p = 100.0 * static_cast<double>(r.reference_cost_micros - r.cost_micros) /
                   static_cast<double>(r.reference_cost_micros);
  return static_cast<double>(static_cast<int64_t>(p * 10.0 + (p >= 0 ? 0.5 : -0.5))) / 10.0;
}

void write_row(JsonWriter& w, const ReportRow& r) {
  w.field("requests", r.requests)
      .field("failures", r.failures)
      .field("fallbacks", r.fallbacks)
      .field("input_tokens", r.input_tokens)
      .field("output_tokens", r.output_tokens);
  w.key("cost_usd").raw(usd_from_micros(r.cost_micros));
  w.key("reference_cost_usd").raw(usd_from_micros(r.reference_cost_micros));
  w.key("savings_usd").raw(usd_from_micros(r.reference_cost_micros - r.cost_micros));
  w.field("savings_percent", savings_percent(r));
  w.field("cache_hits", r.cache_hits);
  w.key("cache_savings_usd").raw(usd_from_micros(r.cache_savings_micros));
}

} // namespace

void Report::add(const UsageRecord& r) {
  if (rfc3339_utc(r.ts_ms).compare(0, m_month.size(), m_month) != 0) {
    return;
  }
  for (const auto& failed : r.failed_targets) {
    ++m_rows[failed].failures;
  }
  for (const auto& [from, to] : fallback_moves(r)) {
    ++m_rows[std::string(from)].fallbacks;
  }
  if (r.target.empty()) {
    ++m_unserved;
    return;
  }
  auto& row = m_rows[r.target];
  ++row.requests;
  if (r.outcome != "ok") {
    ++row.failures; // a stream that broke after its first byte: served, and failed
  }
  row.input_tokens += r.input_tokens;
  row.output_tokens += r.output_tokens;
  row.cost_micros += r.cost_micros;
  row.reference_cost_micros += r.reference_cost_micros;
  row.cache_hits += r.cache_hit ? 1 : 0;
  row.cache_savings_micros += r.cache_savings_micros;
}

ReportRow& ReportRow::operator+=(const ReportRow& o) {
  requests += o.requests;
  failures += o.failures;
  fallbacks += o.fallbacks;
  input_tokens += o.input_tokens;
  output_tokens += o.output_tokens;
  cost_micros += o.cost_micros;
  reference_cost_micros += o.reference_cost_micros;
  cache_hits += o.cache_hits;
  cache_savings_micros += o.cache_savings_micros;
  return *this;
}

ReportRow Report::total() const {
  ReportRow t;
  for (const auto& [target, r] : m_rows) {
    t += r;
  }
  t.requests += m_unserved; // every request counts, those no target could serve included
  return t;
}

std::string Report::json() const {
  std::string out;
  JsonWriter w(out);
  w.begin_object().field("month", std::string_view(m_month)).key("targets").begin_array();
  for (const auto& [target, r] : m_rows) {
    w.begin_object().field("target", std::string_view(target));
    write_row(w, r);
    w.end_object();
  }
  w.end_array().key("total").begin_object();
  write_row(w, total());
  w.end_object().end_object();
  out.push_back('\n');
  return out;
}

std::string Report::table() const {
  std::string out = "modelmux report for " + m_month + "\n\n";
  char line[320];
  std::snprintf(line, sizeof line, "%-32s %9s %8s %9s %12s %12s %12s %12s %12s %8s\n", "TARGET",
                "REQUESTS", "FAILURES", "FALLBACKS", "INPUT_TOK", "OUTPUT_TOK", "COST_USD",
                "REF_USD", "SAVED_USD", "SAVED%");
  out += line;
  auto row = [&](const std::string& name, const ReportRow& r) {
    std::snprintf(
        line, sizeof line, "%-32s %9lld %8lld %9lld %12lld %12lld %12s %12s %12s %7.1f%%\n",
        name.c_str(), static_cast<long long>(r.requests), static_cast<long long>(r.failures),
        static_cast<long long>(r.fallbacks), static_cast<long long>(r.input_tokens),
        static_cast<long long>(r.output_tokens), usd_from_micros(r.cost_micros).c_str(),
        usd_from_micros(r.reference_cost_micros).c_str(),
        usd_from_micros(r.reference_cost_micros - r.cost_micros).c_str(), savings_percent(r));
    out += line;
  };
  for (const auto& [target, r] : m_rows) {
    row(target, r);
  }
  if (m_unserved > 0) {
    ReportRow unserved;
    unserved.requests = m_unserved;
    row("(no target could serve)", unserved);
  }
  const auto sum = total();
  row("TOTAL", sum);
  if (sum.cache_hits > 0) {
    std::snprintf(line, sizeof line,
                  "\nresponse cache: %lld %s, saving $%s (answered at no cost)\n",
                  static_cast<long long>(sum.cache_hits), sum.cache_hits == 1 ? "hit" : "hits",
                  usd_from_micros(sum.cache_savings_micros).c_str());
    out += line;
  }
  return out;
}

} // namespace modelmux
