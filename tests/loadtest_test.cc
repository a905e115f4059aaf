// `modelmux loadtest` (SPEC §1): the figures from per-request results, the bodies it sends, and
// the command against a running daemon — its text and JSON outputs, the cost from the daemon's
// own accounting, exit 1 when a request failed, and its refusal to load anything but a loopback
// or the configured daemon.
#include "fake_upstream.h"
#include "modelmux/loadtest.h"
#include "modelmux/request_body.h"

#include <sstream>

using namespace modelmux;
using namespace modelmux::testing;

namespace {

LoadtestResult served(double latency, std::string target, int attempts = 1, bool spilled = false) {
  LoadtestResult r;
  r.status = 200;
  r.complete = true;
  r.latency_ms = latency;
  r.ttfb_ms = latency / 2;
  r.output_tokens = 10;
  r.target = std::move(target);
  r.attempts = attempts;
  r.spilled = spilled;
  return r;
}

simdjson::dom::element parse(simdjson::dom::parser& parser, const std::string& json) {
  simdjson::dom::element doc;
  REQUIRE_MESSAGE(!parser.parse(simdjson::padded_string(json)).get(doc), json);
  return doc;
}

CliArgs loadtest_args(int port, std::string model) {
  CliArgs args;
  args.command = "loadtest";
  args.config_path = "/nonexistent/modelmux.yaml"; // the URL alone says where
  args.url = "http://127.0.0.1:" + std::to_string(port);
  args.positional = {std::move(model)};
  args.requests = 20;
  args.concurrency = 4;
  return args;
}

} // namespace

TEST_CASE("loadtest figures: success, statuses, percentiles, who served, fallbacks and spills") {
  LoadtestPlan plan;
  plan.model = "custom:local";
  std::vector<LoadtestResult> results;
  for (int i = 1; i <= 100; ++i) {
    results.push_back(
        served(i, i <= 60 ? "custom:local" : "openai:gpt-4o-mini", i % 10 == 0 ? 2 : 1, i > 60));
  }
  LoadtestResult refused;
  refused.status = 503;
  refused.error = "HTTP 503: every target is busy";
  results.push_back(refused);
  LoadtestResult unreachable;
  unreachable.error = "no answer: Connection";
  results.push_back(unreachable);

  const auto s = summarize(plan, results, 2.0);
  CHECK(s.succeeded == 100);
  CHECK(s.failed == 2);
  CHECK(s.statuses == std::map<std::string, int>{{"200", 100}, {"503", 1}, {"error", 1}});
  CHECK(s.served_by ==
        std::map<std::string, int>{{"custom:local", 60}, {"openai:gpt-4o-mini", 40}});
  CHECK(s.latency_ms == std::array<double, 3>{50, 95, 99}); // of the requests that succeeded
  CHECK(s.ttfb_ms[0] == 25);
  CHECK(s.output_tokens == 1000);
  CHECK(s.fallbacks == 10);
  CHECK(s.spills == 40);
  CHECK(s.first_errors ==
        std::vector<std::string>{"HTTP 503: every target is busy", "no answer: Connection"});
  const auto text = loadtest_text(s);
  CHECK(text.find("success     100/102 (98.0%)") != std::string::npos);
  CHECK(text.find("500 output tokens/s") != std::string::npos);
}

TEST_CASE("loadtest bodies are valid requests for each route, streamed when asked") {
  simdjson::dom::parser parser;
  LoadtestPlan plan;
  plan.model = "m";
  plan.stream = true;
  for (const std::string route : {"chat", "messages", "responses"}) {
    CAPTURE(route);
    plan.route = route;
    const auto body = loadtest_body(plan, 7);
    const auto doc = parse(parser, body);
    CHECK(std::string_view(doc["model"]) == "m");
    CHECK(bool(doc["stream"]));
    CHECK(body.find("request 7") != std::string::npos);
    CHECK(parse_request_body(route == "chat"       ? ApiRoute::chat_completions
                             : route == "messages" ? ApiRoute::messages
                                                   : ApiRoute::responses,
                             body));
  }
  plan.route = "chat";
  CHECK(loadtest_body(plan, 0).find(R"("stream_options":{"include_usage":true})") !=
        std::string::npos);
  CHECK(loadtest_path("messages") == "/v1/messages");
  CHECK(loadtest_path("bogus").empty());
}

TEST_CASE("modelmux loadtest runs against a daemon and reports its figures and cost") {
  TestDaemon d(R"(
custom_models:
  - id: priced
    type: mock
    cost: {input: 1.0, output: 2.0}
)");
  auto args = loadtest_args(d.port(), "custom:priced");
  SUBCASE("text") {
    std::ostringstream out, err;
    CHECK(run_loadtest(args, out, err) == 0);
    CHECK(out.str().find("success     20/20 (100.0%)") != std::string::npos);
    CHECK(out.str().find("status      200 ×20") != std::string::npos);
    CHECK(out.str().find("served by   custom:priced ×20") != std::string::npos);
    CHECK(out.str().find("cost        $0.") != std::string::npos);
    CHECK(err.str().find("20/20 done, 0 failed") != std::string::npos); // progress, plain lines
  }
  for (const std::string route : {"chat", "messages", "responses"}) {
    SUBCASE(("json, streamed, " + route).c_str()) {
      args.json = true;
      args.stream = true;
      args.route = route;
      std::ostringstream out, err;
      CHECK(run_loadtest(args, out, err) == 0);
      simdjson::dom::parser parser;
      const auto doc = parse(parser, out.str());
      CHECK(int64_t(doc["succeeded"]) == 20);
      CHECK(int64_t(doc["failed"]) == 0);
      CHECK(int64_t(doc["status"]["200"]) == 20);
      CHECK(int64_t(doc["output_tokens"]) > 0);
      CHECK(double(doc["latency_ms"]["p99"]) >= double(doc["latency_ms"]["p50"]));
      // The daemon's own accounting: what its usage records say these 20 requests cost.
      const double cost = doc["cost_usd"];
      CHECK(cost > 0);
      const auto status = d.client().Get("/api/status");
      REQUIRE(status);
      simdjson::dom::parser p2;
      const double month = parse(p2, status->body)["spend"]["month_usd"];
      CHECK(cost == doctest::Approx(month).epsilon(0.001));
    }
  }
}

TEST_CASE("modelmux loadtest exits 1 when any request failed, and says why") {
  TestDaemon d(R"(
custom_models:
  - id: broken
    type: mock
    mock: {fail_rate: 1.0}
)");
  auto args = loadtest_args(d.port(), "custom:broken");
  args.json = true;
  std::ostringstream out, err;
  CHECK(run_loadtest(args, out, err) == 1);
  simdjson::dom::parser parser;
  const auto doc = parse(parser, out.str());
  CHECK(int64_t(doc["failed"]) == 20);
  CHECK(int64_t(doc["status"]["502"]) == 20);
  CHECK(std::string_view(doc["errors"].at(0)).starts_with("HTTP 502: "));

  args = loadtest_args(dead_port(), "custom:broken");
  std::ostringstream out2, err2;
  CHECK(run_loadtest(args, out2, err2) == 1);
  CHECK(out2.str().find("status      error ×20") != std::string::npos);
}

TEST_CASE("modelmux loadtest loads only a loopback address or the configured daemon") {
  FakeUpstream never(good_handler());
  auto args = loadtest_args(never.port(), "m");
  args.url = "http://10.255.255.1:8080";
  std::ostringstream out, err;
  CHECK(run_loadtest(args, out, err) == 1);
  CHECK(err.str().find("neither a loopback address nor the configured daemon") !=
        std::string::npos);
  args = loadtest_args(never.port(), "m");
  args.route = "embeddings";
  CHECK(run_loadtest(args, out, err) == 1);
  args = loadtest_args(never.port(), "m");
  args.requests = 1'000'000;
  CHECK(run_loadtest(args, out, err) == 1);
  CHECK(never.request_count() == 0);
}

TEST_CASE("the loadtest command line takes a model, counts, stream, route and json") {
  const auto args = parse_cli({"modelmux", "loadtest", "custom:local", "--requests", "400",
                               "--concurrency", "32", "--stream", "--route", "messages", "--json"});
  REQUIRE(args);
  CHECK(args->command == "loadtest");
  CHECK(args->positional == std::vector<std::string>{"custom:local"});
  CHECK(args->requests == 400);
  CHECK(args->concurrency == 32);
  CHECK(args->stream);
  CHECK(args->route == "messages");
  CHECK(args->json);
  CHECK_FALSE(parse_cli({"modelmux", "loadtest"}));
  CHECK_FALSE(parse_cli({"modelmux", "loadtest", "m", "--requests", "0"}));
  CHECK_FALSE(parse_cli({"modelmux", "loadtest", "m", "--concurrency", "x"}));
}
