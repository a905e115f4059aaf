// The Prometheus text exposition, read back by a small parser that checks what Prometheus
// checks: one HELP and TYPE per family before its samples, valid names, escaped labels, and
// histograms with cumulative buckets ending in +Inf that agree with _count.
#include "modelmux/gateway_metrics.h"
#include "modelmux/metrics.h"

#include <cmath>
#include <doctest/doctest.h>
#include <map>
#include <regex>
#include <sstream>

using namespace modelmux;

namespace {

struct ParsedSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Parsed {
  std::map<std::string, std::string> types;
  std::vector<ParsedSample> samples;
  std::vector<std::string> errors;
};

// Label values with \\, \" and \n escapes.
bool parse_labels(const std::string& text, std::map<std::string, std::string>& out) {
  size_t i = 0;
  while (i < text.size()) {
    const size_t eq = text.find('=', i);
    if (eq == std::string::npos || eq + 1 >= text.size() || text[eq + 1] != '"') {
      return false;
    }
    const std::string key = text.substr(i, eq - i);
    std::string value;
    size_t j = eq + 2;
    for (; j < text.size() && text[j] != '"'; ++j) {
      if (text[j] == '\\' && j + 1 < text.size()) {
        const char e = text[++j];
        value += e == 'n' ? '\n' : e;
      } else {
        value += text[j];
      }
    }
    if (j >= text.size()) {
      return false;
    }
    out[key] = value;
    i = j + 1;
    if (i < text.size() && text[i] == ',') {
      ++i;
    }
  }
  return true;
}

Parsed parse_exposition(const std::string& text) {
  Parsed p;
  const std::regex name_re("[a-zA-Z_:][a-zA-Z0-9_:]*");
  std::istringstream in(text);
  std::string line;
  std::string current;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      current = line.substr(7, line.find(' ', 7) - 7);
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream t(line.substr(7));
      std::string name;
      std::string type;
      t >> name >> type;
      if (name != current || p.types.count(name)) {
        p.errors.push_back("TYPE out of place: " + line);
      }
      p.types[name] = type;
      continue;
    }
    ParsedSample s;
    const size_t brace = line.find('{');
    const size_t space = line.rfind(' ');
    s.name = line.substr(0, std::min(brace, space));
    if (!std::regex_match(s.name, name_re)) {
      p.errors.push_back("bad name: " + line);
    }
    if (brace != std::string::npos &&
        !parse_labels(line.substr(brace + 1, line.rfind('}') - brace - 1), s.labels)) {
      p.errors.push_back("bad labels: " + line);
    }
    const std::string value = line.substr(space + 1);
    s.value = value == "+Inf" ? INFINITY : std::stod(value);
    if (s.name.rfind(current, 0) != 0) {
      p.errors.push_back("sample outside its family: " + line);
    }
    p.samples.push_back(std::move(s));
  }
  return p;
}

// Every histogram series: buckets non-decreasing, the last is +Inf, and it equals _count.
void check_histograms(const Parsed& p) {
  std::map<std::string, std::vector<std::pair<std::string, double>>> buckets;
  std::map<std::string, double> counts;
  auto series_key = [](const ParsedSample& s, const std::string& base) {
    std::string key = base;
    for (const auto& [k, v] : s.labels) {
      if (k != "le") {
        key += "|" + k + "=" + v;
      }
    }
    return key;
  };
  for (const auto& s : p.samples) {
    for (const auto& [name, type] : p.types) {
      if (type != "histogram") {
        continue;
      }
      if (s.name == name + "_bucket") {
        buckets[series_key(s, name)].emplace_back(s.labels.at("le"), s.value);
      } else if (s.name == name + "_count") {
        counts[series_key(s, name)] = s.value;
      }
    }
  }
  CHECK_FALSE(buckets.empty());
  for (const auto& [key, series] : buckets) {
    CAPTURE(key);
    for (size_t i = 1; i < series.size(); ++i) {
      CHECK(series[i].second >= series[i - 1].second);
    }
    CHECK(series.back().first == "+Inf");
    CHECK(series.back().second == counts[key]);
  }
}

} // namespace

TEST_CASE("the exposition escapes labels and renders histograms cumulatively") {
  Histogram h({0.1, 1.0});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(7);
  std::vector<MetricFamily> families = {
      {"demo_total",
       "A counter\nwith a newline.",
       "counter",
       {Sample{{{"model", "quote\" back\\slash\nnewline"}}, 3, {}}}},
      {"demo_seconds", "A histogram.", "histogram", {Sample{{{"route", "/v1/x"}}, 0, h.view()}}},
  };
  const auto text = render_exposition(families);
  CHECK(text.find("# HELP demo_total A counter\\nwith a newline.\n# TYPE demo_total counter\n") ==
        0);
  CHECK(text.find(R"(demo_total{model="quote\" back\\slash\nnewline"} 3)") != std::string::npos);
  CHECK(text.find("demo_seconds_bucket{route=\"/v1/x\",le=\"0.1\"} 1\n"
                  "demo_seconds_bucket{route=\"/v1/x\",le=\"1\"} 2\n"
                  "demo_seconds_bucket{route=\"/v1/x\",le=\"+Inf\"} 3\n"
                  "demo_seconds_sum{route=\"/v1/x\"} 7.55\n"
                  "demo_seconds_count{route=\"/v1/x\"} 3\n") != std::string::npos);
  const auto parsed = parse_exposition(text);
  CHECK(parsed.errors.empty());
  CHECK(parsed.samples[0].labels.at("model") == "quote\" back\\slash\nnewline");
  check_histograms(parsed);
}

TEST_CASE("modelmux's metrics carry the SPEC names, types and labels after a request") {
  GatewayMetrics m;
  m.request_started(ApiRoute::chat_completions);
  m.attempt("custom:dead", Outcome::connect_error);
  m.attempt("custom:local", Outcome::ok);
  m.overhead(ApiRoute::chat_completions, 0.0003);
  m.request_finished(ApiRoute::chat_completions);
  UsageRecord r;
  r.route = "/v1/chat/completions";
  r.model = "code";
  r.target = "custom:local";
  r.status = 200;
  r.stream = true;
  r.input_tokens = 1000;
  r.output_tokens = 201;
  r.cost_micros = 140;
  r.reference_cost_micros = 4500;
  r.latency_ms = 2120;
  r.ttft_ms = 120;
  r.failed_targets = {"custom:dead"};
  m.observe(r, "openai", true);
  auto unknown = r;
  unknown.status = 404;
  unknown.model = "some text a client typed";
  unknown.target.clear();
  unknown.failed_targets.clear();
  m.observe(unknown, "none", true);
  m.config_reload(true);
  m.spill("custom:local", "openai:gpt-4o-mini");
  m.queue_wait("custom:local", 0.25);
  ScrapeGauges g;
  g.target_states = {{"custom:local", 0}, {"custom:dead", 3}};
  g.queue_depths = {{"custom:local", 3}};
  g.budget_remaining_micros = 9'999'860;
  g.cache = CacheStats{.entries = 2, .bytes = 4096};
  m.cache_request("hit");
  read_process_gauges(g);
  const auto text = render_exposition(m.collect(g));
  const auto parsed = parse_exposition(text);
  CHECK(parsed.errors.empty());
  const std::map<std::string, std::string> expected_types = {
      {"modelmux_requests_total", "counter"},
      {"modelmux_upstream_attempts_total", "counter"},
      {"modelmux_fallbacks_total", "counter"},
      {"modelmux_overhead_seconds", "histogram"},
      {"modelmux_cost_usd_total", "counter"},
      {"modelmux_savings_usd_total", "counter"},
      {"modelmux_target_state", "gauge"},
      {"modelmux_queue_depth", "gauge"},
      {"modelmux_spills_total", "counter"},
      {"modelmux_cache_requests_total", "counter"},
      {"modelmux_cache_savings_usd_total", "counter"},
      {"modelmux_cache_size_bytes", "gauge"},
      {"modelmux_cache_entries", "gauge"},
      {"modelmux_queue_wait_seconds", "histogram"},
      {"modelmux_inflight_requests", "gauge"},
      {"modelmux_config_reloads_total", "counter"},
      {"modelmux_build_info", "gauge"},
      {"modelmux_budget_remaining_usd", "gauge"},
      {"gen_ai_server_request_duration_seconds", "histogram"},
      {"gen_ai_server_time_to_first_token_seconds", "histogram"},
      {"gen_ai_server_time_per_output_token_seconds", "histogram"},
      {"gen_ai_client_token_usage", "histogram"},
      {"process_resident_memory_bytes", "gauge"},
      {"process_open_fds", "gauge"},
      {"process_start_time_seconds", "gauge"},
  };
  CHECK(parsed.types == expected_types);
  check_histograms(parsed);
  CHECK(text.find(R"(modelmux_queue_depth{target="custom:local"} 3)") != std::string::npos);
  CHECK(text.find(R"(modelmux_cache_requests_total{result="hit"} 1)") != std::string::npos);
  CHECK(text.find("modelmux_cache_size_bytes 4096") != std::string::npos);
  CHECK(text.find("modelmux_cache_entries 2") != std::string::npos);
  CHECK(text.find(R"(modelmux_spills_total{from="custom:local",to="openai:gpt-4o-mini"} 1)") !=
        std::string::npos);
  CHECK(text.find(R"(modelmux_queue_wait_seconds_count{target="custom:local"} 1)") !=
        std::string::npos);
  CHECK(text.find(R"(modelmux_requests_total{route="/v1/chat/completions",model="code",)"
                  R"(target="custom:local",code="200"} 1)") != std::string::npos);
  CHECK(text.find(R"x(model="(unknown)",target="none",code="404"} 1)x") != std::string::npos);
  CHECK(text.find("some text a client typed") == std::string::npos);
  CHECK(
      text.find(
          R"(modelmux_upstream_attempts_total{target="custom:dead",outcome="connect_error"} 1)") !=
      std::string::npos);
  CHECK(text.find(R"(modelmux_fallbacks_total{from="custom:dead",to="custom:local"} 1)") !=
        std::string::npos);
  CHECK(text.find(R"(modelmux_cost_usd_total{target="custom:local"} 0.00014)") !=
        std::string::npos);
  CHECK(text.find("modelmux_savings_usd_total 0.00436\n") != std::string::npos);
  CHECK(text.find(R"(modelmux_target_state{target="custom:dead"} 3)") != std::string::npos);
  CHECK(text.find(R"(modelmux_inflight_requests{route="/v1/chat/completions"} 0)") !=
        std::string::npos);
  CHECK(text.find("modelmux_budget_remaining_usd 9.99986\n") != std::string::npos);
  CHECK(text.find(R"(gen_ai_client_token_usage_sum{gen_ai_token_type="output",)"
                  R"(gen_ai_request_model="code",gen_ai_provider_name="openai",)"
                  R"(target="custom:local"} 201)") != std::string::npos);
  // (2120 - 120) ms over 200 tokens after the first: 10 ms a token.
  CHECK(text.find(R"(gen_ai_server_time_per_output_token_seconds_sum{gen_ai_request_model="code",)"
                  R"(gen_ai_provider_name="openai",target="custom:local"} 0.01)") !=
        std::string::npos);
}
