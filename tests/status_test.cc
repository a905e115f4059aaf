// The status page's figures: the traffic history (pure, records with chosen times), the JSON
// the page reads, the terminal summary of `modelmux status`, and the page and API over loopback
// with client keys.
#include "fake_upstream.h"
#include "modelmux/cli.h"
#include "modelmux/status.h"

#include <simdjson.h>
#include <sstream>

using namespace modelmux;
using namespace modelmux::testing;

namespace {

const char* k_config = R"(
providers:
  openai:
    type: openai
    base_url: https://api.example.test/v1
    api_keys: [sk-provider-secret-1, sk-provider-secret-2]
    models: {gpt-4o: {cost: {input: 2.50, output: 10.00}}}
custom_models:
  - id: local
    type: openai
    endpoint: http://127.0.0.1:9/v1
    model: llama
    api_key: sk-custom-secret
    fallback: ["openai:gpt-4o"]
aliases:
  coder: custom:local
routing:
  auto: [custom:local, openai:gpt-4o]
  reference_model: openai:gpt-4o
budget: {monthly_usd: 100, daily_usd: 10}
)";

constexpr int64_t k_now = 1'795'000'005'000; // 2026-11-18T11:06:45Z, mid-bucket

UsageRecord record(int64_t ts_ms, std::string target, int64_t status = 200,
                   std::vector<std::string> failed = {}) {
  UsageRecord r;
  r.ts_ms = ts_ms;
  r.model = "custom:local";
  r.target = std::move(target);
  r.status = status;
  r.failed_targets = std::move(failed);
  r.latency_ms = 100;
  return r;
}

simdjson::dom::element parse(simdjson::dom::parser& parser, const std::string& json) {
  simdjson::dom::element doc;
  REQUIRE_MESSAGE(!parser.parse(json).get(doc), json);
  return doc;
}

} // namespace

TEST_CASE("the traffic history counts requests and failures in 10-second buckets of the last "
          "15 minutes") {
  const auto snapshot = load_test_snapshot(k_config);
  TrafficHistory history;
  history.add(record(k_now - 20 * 60'000, "custom:local"), *snapshot->registry); // too old
  history.add(record(k_now - 65'000, "custom:local"), *snapshot->registry);
  history.add(record(k_now - 1'000, "custom:local"), *snapshot->registry);
  history.add(record(k_now - 500, "", 502, {"custom:local", "openai:gpt-4o"}), *snapshot->registry);

  const auto series = history.series(k_now);
  REQUIRE(series.size() == TrafficHistory::k_buckets);
  int64_t requests = 0;
  for (const auto& b : series) {
    requests += b.requests;
  }
  CHECK(requests == 3); // the one from 20 minutes ago is outside the chart
  CHECK(series.back().requests == 2);
  CHECK(series.back().failed == 1);
  CHECK(series[series.size() - 1 - 6].requests + series[series.size() - 1 - 7].requests == 1);

  // Per target: attempts, the failed attempts of the request no one served, and the rate.
  const auto& local = history.targets().at("custom:local");
  CHECK(local.succeeded == 3);
  CHECK(local.failed == 1);
  CHECK(TrafficHistory::attempts_in_last_minute(local, k_now) == 2);
  const auto& openai = history.targets().at("openai:gpt-4o"); // per model, not per provider
  CHECK(openai.failed == 1);
  CHECK(openai.succeeded == 0);
  // A minute later nothing is recent any more.
  CHECK(TrafficHistory::attempts_in_last_minute(local, k_now + 70'000) == 0);
}

TEST_CASE("a bucket reused by a later time starts from zero") {
  const auto snapshot = load_test_snapshot(k_config);
  TrafficHistory history;
  history.add(record(k_now, "custom:local"), *snapshot->registry);
  const int64_t later = k_now + TrafficHistory::k_bucket_ms * TrafficHistory::k_buckets;
  history.add(record(later, "custom:local"), *snapshot->registry);
  const auto series = history.series(later);
  CHECK(series.back().requests == 1);
  int64_t total = 0;
  for (const auto& b : series) {
    total += b.requests;
  }
  CHECK(total == 1);
}

TEST_CASE("percentiles of latency and time to first token come from served requests") {
  const auto snapshot = load_test_snapshot(k_config);
  TrafficHistory history;
  for (int i = 1; i <= 100; ++i) {
    auto r = record(k_now, "custom:local");
    r.latency_ms = i;
    r.stream = true;
    r.ttft_ms = i / 10.0;
    history.add(r, *snapshot->registry);
  }
  history.add(record(k_now, "", 502, {"custom:local"}), *snapshot->registry);
  const auto latency = history.latency_percentiles();
  CHECK(latency[0] == 50);
  CHECK(latency[1] == 95);
  CHECK(latency[2] == 99);
  CHECK(history.ttft_percentiles()[0] == doctest::Approx(5.0));
  CHECK(history.targets().at("custom:local").latency_ms.p50_p95_p99()[2] == 99);
}

TEST_CASE("a base URL is shown without credentials or query") {
  CHECK(displayable_url("https://user:pw@api.example.test/v1?key=sk") ==
        "https://api.example.test/v1");
  CHECK(displayable_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1");
  CHECK(displayable_url("https://host/path@x/v1#frag") == "https://host/path@x/v1");
}

TEST_CASE("the status JSON reports spend, budget, savings and the registry, and no secret") {
  const auto snapshot = load_test_snapshot(k_config);
  TrafficHistory history;
  StatusInputs in;
  in.version = "9.9.9";
  in.now_ms = k_now;
  in.uptime_seconds = 42;
  in.registry = snapshot->registry.get();
  in.budget = &snapshot->config->budget;
  in.health_json = R"({"status":"degraded","targets":[]})";
  in.month.requests = 10;
  in.month.cost_micros = 1'250'000;
  in.month.reference_cost_micros = 37'500'000;
  in.month.input_tokens = 1000;
  in.month.output_tokens = 500;
  in.today.cost_micros = 250'000;
  in.month.cache_hits = 3;
  in.month.cache_savings_micros = 420'000;
  in.cache = CacheStats{.entries = 7, .bytes = 3 * 1024 * 1024};
  in.cache_max_bytes = 256LL * 1024 * 1024;
  const std::string json = status_json(in, history);

  for (const char* secret : {"sk-provider-secret-1", "sk-provider-secret-2", "sk-custom-secret"}) {
    CHECK_MESSAGE(json.find(secret) == std::string::npos, secret);
  }
  simdjson::dom::parser parser;
  const auto doc = parse(parser, json);
  CHECK(doc["health"]["status"].get_string().value() == "degraded");
  const auto spend = doc["spend"];
  CHECK(spend["month_usd"].get_double().value() == doctest::Approx(1.25));
  CHECK(spend["savings_usd"].get_double().value() == doctest::Approx(36.25));
  CHECK(spend["savings_percent"].get_double().value() == doctest::Approx(96.6667).epsilon(1e-4));
  CHECK(spend["today_usd"].get_double().value() == doctest::Approx(0.25));
  CHECK(spend["tokens"].get_int64().value() == 1500);
  CHECK(spend["reference_model"].get_string().value() == "openai:gpt-4o");
  CHECK(spend["budget"]["monthly_usd"].get_double().value() == doctest::Approx(100));
  CHECK(spend["budget"]["daily_usd"].get_double().value() == doctest::Approx(10));
  CHECK(spend["budget"]["exhausted"].get_bool().value() == false);
  CHECK(spend["cache_hits"].get_int64().value() == 3);
  CHECK(spend["cache_savings_usd"].get_double().value() == doctest::Approx(0.42));
  CHECK(doc["cache"]["entries"].get_int64().value() == 7);
  CHECK(doc["cache"]["max_bytes"].get_int64().value() == 256LL * 1024 * 1024);
  const auto registry = doc["registry"];
  CHECK(registry["custom_models"].at(0)["id"].get_string().value() == "custom:local");
  CHECK(registry["custom_models"].at(0)["keys"].get_int64().value() == 1);
  CHECK(registry["providers"].at(0)["keys"].get_int64().value() == 2);
  CHECK(registry["providers"].at(0)["where"].get_string().value() == "https://api.example.test/v1");
  CHECK(registry["aliases"].at(0)["target"].get_string().value() == "custom:local");
  CHECK(registry["auto"].at(1).get_string().value() == "openai:gpt-4o");
  CHECK(doc["series"]["requests"].get_array().size() == TrafficHistory::k_buckets);
}

TEST_CASE("modelmux status summarizes targets, traffic, spend and savings for a terminal") {
  const auto snapshot = load_test_snapshot(k_config);
  TrafficHistory history;
  history.add(record(k_now, "", 502, {"custom:local", "openai:gpt-4o"}), *snapshot->registry);
  StatusInputs in;
  in.version = "9.9.9";
  in.now_ms = k_now;
  in.registry = snapshot->registry.get();
  in.budget = &snapshot->config->budget;
  in.health_json = R"({"status":"degraded","targets":[{"target":"custom:local","state":"ejected",)"
                   R"("reason":"3 consecutive failures","ejected_until":"2026-11-18T10:00:00Z"}]})";
  in.all.requests = 1;
  in.all.failed = 1;
  in.month.cost_micros = 1'250'000;
  in.month.reference_cost_micros = 37'500'000;
  const auto text = status_text(status_json(in, history));
  REQUIRE(text);
  const std::string& t = text.value();
  CHECK(t.find("modelmux 9.9.9  degraded") != std::string::npos);
  CHECK(t.find("custom:local") != std::string::npos);
  CHECK(t.find("ejected") != std::string::npos);
  CHECK(t.find("3 consecutive failures (until 2026-11-18T10:00:00Z)") != std::string::npos);
  CHECK(t.find("0.0%") != std::string::npos); // its success rate
  CHECK(t.find("spend 2026-11 $1.25") != std::string::npos);
  CHECK(t.find("of a monthly budget of $100.00, daily $10.00") != std::string::npos);
  CHECK(t.find("savings    $36.25 (96.7%) against openai:gpt-4o at $37.50") != std::string::npos);
  CHECK(t.find("cache      off") != std::string::npos);
  in.month.cache_hits = 12;
  in.month.cache_savings_micros = 3'210'000;
  in.cache = CacheStats{.entries = 5, .bytes = 1536 * 1024};
  in.cache_max_bytes = 64LL * 1024 * 1024;
  CHECK(status_text(status_json(in, history))
            .value()
            .find("cache      12 hits this month, saved $3.21; holds 5 answers, 1.5 of 64 MiB") !=
        std::string::npos);
  CHECK(!status_text("<html>not json</html>"));
}

TEST_CASE("the status page is served from the binary with a policy that forbids outside "
          "requests") {
  TestDaemon d(R"(
custom_models:
  - id: demo
    type: mock
auth:
  client_keys: [page-test-key]
)");
  auto c = d.client();
  for (const char* path : {"/", "/ui/", "/ui"}) {
    const auto res = c.Get(path);
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->get_header_value("Content-Type") == "text/html; charset=utf-8");
    const auto csp = res->get_header_value("Content-Security-Policy");
    CHECK(csp.find("default-src 'none'") != std::string::npos);
    CHECK(csp.find("connect-src 'self'") != std::string::npos);
    CHECK(res->body.find("/api/status") != std::string::npos);
    // Nothing is loaded from elsewhere: no external scripts, styles, fonts or images.
    CHECK(res->body.find("src=\"http") == std::string::npos);
    CHECK(res->body.find("<link") == std::string::npos);
    CHECK(res->body.find("@import") == std::string::npos);
  }
  // The data wants the key; the page does not hold any.
  CHECK(c.Get("/api/status")->status == 401);
  const auto res = c.Get("/api/status", {{"Authorization", "Bearer page-test-key"}});
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body.find("\"custom:demo\"") != std::string::npos);
}

TEST_CASE("modelmux status reads a running daemon and exits 1 when none answers") {
  TestDaemon d(R"(
custom_models:
  - id: demo
    type: mock
)");
  auto c = d.client();
  const auto chat = c.Post("/v1/chat/completions", chat_body("custom:demo"), "application/json");
  REQUIRE(chat);
  REQUIRE(chat->status == 200);
  REQUIRE(d.app().wait_for_usage(1, std::chrono::seconds(20)));

  CliArgs args;
  args.command = "status";
  args.config_path = "/nonexistent/modelmux.yaml"; // the URL alone says where
  args.url = "http://127.0.0.1:" + std::to_string(d.port());
  std::ostringstream out, err;
  CHECK(run_status(args, out, err) == 0);
  CHECK(out.str().find("custom:demo") != std::string::npos);
  CHECK(out.str().find("requests   1 served 1, failed 0") != std::string::npos);

  args.url = "http://127.0.0.1:" + std::to_string(dead_port());
  std::ostringstream out2, err2;
  CHECK(run_status(args, out2, err2) == 1);
  CHECK(err2.str().find("cannot reach") != std::string::npos);
}
