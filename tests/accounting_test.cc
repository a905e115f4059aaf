// Accounting end to end over loopback: a scripted sequence of requests (both protocols, stream
// and not, a fallback, a failure) against priced targets, and the usage log and usage API
// agreeing with the expected micro-dollars exactly.
#include "fake_upstream.h"
#include "modelmux/report.h"

#include <filesystem>
#include <fstream>

using namespace modelmux;
using namespace modelmux::testing;

namespace {

// An OpenAI-compatible fake reporting 1000 prompt / 200 completion tokens for whole answers and
// 2000 (500 of them cached) / 100 for streams, the usage chunk only when asked for.
void openai_fake(const httplib::Request& req, httplib::Response& res) {
  if (req.body.find("\"stream\":true") == std::string::npos) {
    res.set_content(R"({"id":"c","object":"chat.completion","created":1,"model":"llama","choices":)"
                    R"([{"index":0,"message":{"role":"assistant","content":"hi"},)"
                    R"("finish_reason":"stop"}],"usage":{"prompt_tokens":1000,)"
                    R"("completion_tokens":200,"total_tokens":1200}})",
                    "application/json");
    return;
  }
  std::string body = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},"
                     "\"finish_reason\":\"stop\"}]}\n\n";
  if (req.body.find(R"("include_usage":true)") != std::string::npos) {
    body += "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":2000,"
            "\"completion_tokens\":100,\"total_tokens\":2100,"
            "\"prompt_tokens_details\":{\"cached_tokens\":500}}}\n\n";
  }
  body += "data: [DONE]\n\n";
  res.set_content(body, "text/event-stream");
}

} // namespace

TEST_CASE("every request's tokens and cost reach the usage log and the usage API exactly") {
  FakeUpstream local(openai_fake);
  FakeUpstream claude([](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"id":"msg","type":"message","role":"assistant","model":"claude-x",)"
                    R"("content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn",)"
                    R"("usage":{"input_tokens":300,"output_tokens":50,)"
                    R"("cache_read_input_tokens":100,"cache_creation_input_tokens":0}})",
                    "application/json");
  });
  FakeUpstream broken([](const httplib::Request&, httplib::Response& res) { res.status = 500; });
  const auto dir = std::filesystem::temp_directory_path() /
                   ("modelmux-accounting-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const auto path = (dir / "usage.jsonl").string();
  TestDaemon d(fill(R"(
providers:
  cloud:
    type: openai
    base_url: "{local}"
    probe: none
    models: {gpt-x: {cost: {input: 2.50, output: 10.00, cached_input: 1.25}}}
  claude:
    type: anthropic
    base_url: "{claude}"
    models: {claude-x: {cost: {input: 3.00, output: 15.00}}}
custom_models:
  - {id: local, endpoint: "{local}", model: llama, cost: {input: 0.10, output: 0.20}}
  - {id: dead, endpoint: "http://127.0.0.1:{dead}/v1", model: m, cost: {input: 1, output: 1},
     fallback: [custom:local]}
  - {id: broken, endpoint: "{broken}", model: m}
routing:
  reference_model: cloud:gpt-x
)",
                    {{"local", local.base_url()},
                     {"claude", claude.base_url()},
                     {"broken", broken.base_url()},
                     {"dead", std::to_string(dead_port())}}),
               path);

  auto c = d.client();
  // 1. 1000 in, 200 out at $0.10/$0.20: 140 micro-dollars; at the reference: 4500.
  REQUIRE(c.Post("/v1/chat/completions", chat_body("custom:local"), "application/json"));
  // 2. a stream: 1500 + 500 cached in, 100 out: 150 + 50 + 20 = 220; reference 3750 + 625 +
  //    1000 = 5375.
  CHECK(stream_post(d.port(), "/v1/chat/completions", chat_body("custom:local", true)).status ==
        200);
  // 3. Anthropic: 300 + 100 cached in, 50 out at $3/$15: 900 + 300 + 750 = 1950; reference
  //    750 + 125 + 500 = 1375.
  REQUIRE(c.Post("/v1/messages",
                 R"({"model":"claude:claude-x","max_tokens":5,"messages":[{"role":"user",)"
                 R"("content":"hi"}]})",
                 "application/json"));
  // 4. a fallback from a dead target to custom:local: 140, reference 4500.
  REQUIRE(c.Post("/v1/chat/completions", chat_body("custom:dead"), "application/json"));
  // 5. a failure: nothing spent.
  const auto failed =
      c.Post("/v1/chat/completions", chat_body("custom:broken"), "application/json");
  REQUIRE(failed);
  CHECK(failed->status == 502);

  REQUIRE(d.app().wait_for_usage(5, std::chrono::seconds(20)));
  d.app().flush_usage();

  std::vector<UsageRecord> records;
  const auto read = read_usage_log(path, [&](const UsageRecord& r) { records.push_back(r); });
  CHECK(read.skipped == 0);
  REQUIRE(records.size() == 5);
  int64_t cost = 0;
  int64_t reference = 0;
  for (const auto& r : records) {
    cost += r.cost_micros;
    reference += r.reference_cost_micros;
    CHECK_FALSE(r.estimated);
  }
  CHECK(cost == 140 + 220 + 1950 + 140);
  CHECK(reference == 4500 + 5375 + 1375 + 4500);
  std::map<std::string, const UsageRecord*> by_model;
  for (const auto& r : records) {
    by_model[r.model] = &r;
  }
  CHECK(by_model["custom:dead"]->target == "custom:local");
  CHECK(by_model["custom:dead"]->failed_targets == std::vector<std::string>{"custom:dead"});
  CHECK(by_model["custom:broken"]->status == 502);
  CHECK(by_model["claude:claude-x"]->input_tokens == 400);
  CHECK(by_model["claude:claude-x"]->cached_tokens == 100);

  const auto usage = c.Get("/api/usage?period=all");
  REQUIRE(usage);
  CHECK(usage->status == 200);
  CHECK(usage->body.find(R"("total_tokens":)" + std::to_string(1200 + 2100 + 450 + 1200)) !=
        std::string::npos);
  CHECK(usage->body.find(R"("total_cost":0.002450)") != std::string::npos);
  CHECK(usage->body.find(R"("custom:local":{"tokens":3300,"cost":0.000360,"requests":2})") !=
        std::string::npos);
  CHECK(c.Get("/api/usage?period=week")->status == 400);

  const auto monitoring = c.Get("/api/models/custom/monitoring");
  REQUIRE(monitoring);
  CHECK(monitoring->body.find(R"("requests":{"total":5,"success":4,"failures":1,"fallbacks":1,)"
                              R"("successRate":"80.00%","byModel":{"claude:claude-x":1,)"
                              R"("custom:broken":1,"custom:dead":1,"custom:local":2}})") !=
        std::string::npos);
  CHECK(monitoring->body.find(R"("costs":{"customModelCost":"$0.00","providerModelCost":"$0.02",)"
                              R"("savings":"$0.01","savingsPercent":"84.4%"})") !=
        std::string::npos);
  CHECK(monitoring->body.find(R"("p99Latency":")") != std::string::npos);
  CHECK(monitoring->body.find(R"("health":{"status":)") != std::string::npos);

  const auto metrics = c.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0) == 0);
  CHECK(metrics->body.find(R"(modelmux_cost_usd_total{target="custom:local"} 0.0005)"
                           "\n") != std::string::npos);
  CHECK(metrics->body.find(R"(modelmux_cost_usd_total{target="claude:claude-x"} 0.00195)"
                           "\n") != std::string::npos);
  CHECK(metrics->body.find("modelmux_savings_usd_total 0.0133\n") != std::string::npos);
  CHECK(metrics->body.find(R"(modelmux_fallbacks_total{from="custom:dead",to="custom:local"} 1)") !=
        std::string::npos);
  CHECK(metrics->body.find(R"(modelmux_requests_total{route="/v1/chat/completions",)"
                           R"(model="custom:broken",target="none",code="502"} 1)") !=
        std::string::npos);
  CHECK(metrics->body.find(R"(gen_ai_client_token_usage_sum{gen_ai_token_type="input",)"
                           R"(gen_ai_request_model="claude:claude-x",gen_ai_provider_name=)"
                           R"("anthropic",target="claude:claude-x"} 400)") != std::string::npos);

  Report report(rfc3339_utc(records.front().ts_ms).substr(0, 7));
  read_usage_log(path, [&](const UsageRecord& r) { report.add(r); });
  const auto json = report.json();
  CHECK(json.find(R"({"target":"custom:local","requests":3,"failures":0,"fallbacks":0,)"
                  R"("input_tokens":4000,"output_tokens":500,"cost_usd":0.000500,)"
                  R"("reference_cost_usd":0.014375,"savings_usd":0.013875,"savings_percent":96.5,)"
                  R"("cache_hits":0,"cache_savings_usd":0.000000})") != std::string::npos);
  CHECK(json.find(R"({"target":"custom:dead","requests":0,"failures":1,"fallbacks":1,)") !=
        std::string::npos);
  CHECK(json.find(R"({"target":"custom:broken","requests":0,"failures":1,"fallbacks":0,)") !=
        std::string::npos);
  // Five requests were made: the 502 counts in the total too.
  CHECK(json.find(R"("total":{"requests":5,"failures":2,"fallbacks":1,"input_tokens":4400,)"
                  R"("output_tokens":550,"cost_usd":0.002450,"reference_cost_usd":0.015750,)"
                  R"("savings_usd":0.013300,"savings_percent":84.4,"cache_hits":0,)"
                  R"("cache_savings_usd":0.000000})") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("over budget, priced targets are skipped, free ones serve, and nothing left is a 429") {
  FakeUpstream local(openai_fake);
  TestDaemon d(fill(R"(
custom_models:
  - {id: priced, endpoint: "{local}", model: llama, probe: none, cost: {input: 0.10, output: 0.20},
     fallback: [custom:free]}
  - {id: only-priced, endpoint: "{local}", model: llama, probe: none, cost: {input: 0.10, output: 0.20}}
  - {id: free, type: mock}
budget: {monthly_usd: 0.0003}
)",
                    {{"local", local.base_url()}}));
  auto c = d.client();
  // 140 micro-dollars a request: 0, 140 and 280 are under the 300 budget.
  for (int i = 0; i < 3; ++i) {
    const auto r = c.Post("/v1/chat/completions", chat_body("custom:priced"), "application/json");
    REQUIRE(r);
    CHECK(header(r, "x-modelmux-target") == "custom:priced");
  }
  REQUIRE(d.app().wait_for_usage(3, std::chrono::seconds(20)));
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const auto& limits = d.app().snapshot()->config->budget;
  CHECK(d.app().budget(limits, now).exhausted);
  CHECK(d.app().budget(limits, now).remaining_micros == 300 - 420);
  auto r = c.Post("/v1/chat/completions", chat_body("custom:priced"), "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(header(r, "x-modelmux-target") == "custom:free");
  r = c.Post("/v1/messages",
             R"({"model":"custom:only-priced","max_tokens":5,"messages":[{"role":"user",)"
             R"("content":"hi"}]})",
             "application/json");
  REQUIRE(r);
  CHECK(r->status == 429);
  CHECK(r->body.find(R"("type":"rate_limit_error")") != std::string::npos);
  CHECK(error_message(r->body) ==
        "budget exhausted: spent $0.000420 of the monthly budget of $0.000300; model "
        "\"custom:only-priced\" has no free target");
  CHECK(local.request_count() == 3);
}

TEST_CASE("calendar periods are computed in UTC") {
  CHECK(utc_month_index(0) == 1970 * 12);
  CHECK(utc_month_index(1764547199000) == 2025 * 12 + 10); // 2025-11-30T23:59:59Z
  CHECK(utc_month_index(1764547200000) == 2025 * 12 + 11); // 2025-12-01T00:00:00Z
  CHECK(utc_day_index(1764547200000) - utc_day_index(1764547199000) == 1);
  CHECK(utc_month_index(951782400000) == 2000 * 12 + 1); // 2000-02-29
}

TEST_CASE("after a restart the usage log restores the sums and the budget's spend") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("modelmux-restore-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto path = (dir / "usage.jsonl").string();
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  {
    std::ofstream log(path);
    for (int i = 0; i < 3; ++i) {
      UsageRecord r;
      r.ts_ms = now - 1000;
      r.request_id = "before-" + std::to_string(i);
      r.route = "/v1/chat/completions";
      r.model = "custom:priced";
      r.target = "custom:priced";
      r.status = 200;
      r.input_tokens = 1000;
      r.output_tokens = 200;
      r.cost_micros = 140;
      log << to_json_line(r);
    }
  }
  FakeUpstream local(openai_fake);
  TestDaemon d(fill(R"(
custom_models:
  - {id: priced, endpoint: "{local}", model: llama, probe: none, cost: {input: 0.10, output: 0.20},
     fallback: [custom:free]}
  - {id: free, type: mock}
budget: {monthly_usd: 0.0003}
)",
                    {{"local", local.base_url()}}),
               path);
  auto c = d.client();
  const auto usage = c.Get("/api/usage?period=month");
  REQUIRE(usage);
  CHECK(usage->body.find(R"("total_cost":0.000420,"requests":3)") != std::string::npos);
  // 420 of 300 already spent this month: the priced target is skipped from the first request.
  const auto r = c.Post("/v1/chat/completions", chat_body("custom:priced"), "application/json");
  REQUIRE(r);
  CHECK(header(r, "x-modelmux-target") == "custom:free");
  CHECK(local.request_count() == 0);
  std::filesystem::remove_all(dir);
}
