// Health through the daemon over loopback: a failing target is ejected and no request reaches
// it, /health reports it, a chain of ejected targets is still tried, and a 429 moves to the
// next key and cools the first for its Retry-After.
#include "fake_upstream.h"
#include "modelmux/probe.h"
#include "modelmux/report.h"
#include "modelmux/status.h"
#include "modelmux/usage_log.h"

#include <atomic>
#include <filesystem>

using namespace modelmux;
using namespace modelmux::testing;

namespace {

simdjson::dom::element health_target(simdjson::dom::parser& parser, const std::string& body,
                                     std::string_view name) {
  simdjson::dom::element doc;
  REQUIRE_FALSE(parser.parse(body).get(doc));
  const simdjson::dom::array targets = doc["targets"].get_array().value();
  for (const auto t : targets) {
    if (std::string_view(t["target"].get_string().value()) == name) {
      return t;
    }
  }
  FAIL("no target " << name << " in " << body);
  return doc;
}

} // namespace

TEST_CASE("a target failing repeatedly is ejected: no request reaches it, /health says why") {
  FakeUpstream broken([](const httplib::Request&, httplib::Response& res) {
    res.status = 500;
    res.set_content(R"({"error":{"message":"boom"}})", "application/json");
  });
  FakeUpstream backup([](const httplib::Request&, httplib::Response& res) {
    res.set_content(k_chat_completion, "application/json");
  });
  TestDaemon d(fill(R"(
providers:
  broken: {type: openai, base_url: "{broken}"}
  backup: {type: openai, base_url: "{backup}"}
routing:
  auto: [broken:m, backup:m]
health:
  outlier: {consecutive_failures: 3, base_ejection_time: 5m}
)",
                    {{"broken", broken.base_url()}, {"backup", backup.base_url()}}));
  auto c = d.client();
  for (int i = 0; i < 3; ++i) {
    const auto r = c.Post("/v1/chat/completions", chat_body("auto"), "application/json");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(header(r, "x-modelmux-attempts") == "2");
  }
  const auto r = c.Post("/v1/chat/completions", chat_body("auto"), "application/json");
  REQUIRE(r);
  CHECK(header(r, "x-modelmux-target") == "backup:m");
  CHECK(header(r, "x-modelmux-attempts") == "1");
  CHECK(broken.request_count() == 3);

  const auto h = c.Get("/health");
  REQUIRE(h);
  CHECK(h->status == 200);
  CHECK(h->body.find(R"("status":"degraded")") != std::string::npos);
  simdjson::dom::parser parser;
  const auto t = health_target(parser, h->body, "broken:m");
  CHECK(std::string_view(t["state"].get_string().value()) == "ejected");
  CHECK(std::string_view(t["reason"].get_string().value()) ==
        "3 consecutive failures (last: http_5xx), ejected for 300s");
  CHECK(t["ejected_until"].is_string());
  CHECK(double(t["success_rate"].get_double().value()) == 0.0);
  const auto b = health_target(parser, h->body, "backup:m");
  CHECK(std::string_view(b["state"].get_string().value()) == "healthy");
}

TEST_CASE("when every target of a chain is out, they are tried in order anyway") {
  std::atomic<bool> healthy{false};
  FakeUpstream flaky([&](const httplib::Request&, httplib::Response& res) {
    if (!healthy) {
      res.status = 503;
      return;
    }
    res.set_content(k_chat_completion, "application/json");
  });
  TestDaemon d(fill("providers:\n  flaky: {type: openai, base_url: \"{url}\"}\n"
                    "health:\n  outlier: {consecutive_failures: 2, base_ejection_time: 5m}\n",
                    {{"url", flaky.base_url()}}));
  auto c = d.client();
  for (int i = 0; i < 2; ++i) {
    const auto r = c.Post("/v1/chat/completions", chat_body("flaky:m"), "application/json");
    REQUIRE(r);
    CHECK(r->status == 502);
  }
  CHECK(c.Get("/health")->body.find(R"("status":"down")") != std::string::npos);
  healthy = true;
  const auto r = c.Post("/v1/chat/completions", chat_body("flaky:m"), "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(flaky.request_count() == 3);
}

TEST_CASE("a 429 moves to the next key, and Retry-After keeps the first key cooling") {
  FakeUpstream limited([](const httplib::Request& req, httplib::Response& res) {
    if (req.get_header_value("Authorization") == "Bearer sk-first") {
      res.status = 429;
      res.set_header("Retry-After", "120");
      res.set_content(R"({"error":{"message":"slow down"}})", "application/json");
      return;
    }
    res.set_content(k_chat_completion, "application/json");
  });
  TestDaemon d(fill("providers:\n  p: {type: openai, base_url: \"{url}\", "
                    "api_keys: [sk-first, sk-second]}\n",
                    {{"url", limited.base_url()}}));
  auto c = d.client();
  auto r = c.Post("/v1/chat/completions", chat_body("p:m"), "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(header(r, "x-modelmux-attempts") == "1");
  auto seen = limited.seen();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].headers.find("Authorization")->second == "Bearer sk-first");
  CHECK(seen[1].headers.find("Authorization")->second == "Bearer sk-second");
  SUBCASE("the cooling key is not used again") {
    r = c.Post("/v1/chat/completions", chat_body("p:m"), "application/json");
    REQUIRE(r);
    seen = limited.seen();
    REQUIRE(seen.size() == 3);
    CHECK(seen[2].headers.find("Authorization")->second == "Bearer sk-second");
    const auto s = stream_post(d.port(), "/v1/chat/completions", chat_body("p:m", true));
    CHECK(limited.seen().back().headers.find("Authorization")->second == "Bearer sk-second");
  }
  SUBCASE("a 429 on the last key is a 429 for the client, and the target cools, not ejected") {
    FakeUpstream all_limited([](const httplib::Request&, httplib::Response& res) {
      res.status = 429;
      res.set_header("Retry-After", "60");
    });
    TestDaemon d2(fill("providers:\n  q: {type: openai, base_url: \"{url}\", "
                       "api_keys: [k1, k2]}\n",
                       {{"url", all_limited.base_url()}}));
    auto c2 = d2.client();
    r = c2.Post("/v1/chat/completions", chat_body("q:m"), "application/json");
    REQUIRE(r);
    CHECK(r->status == 429);
    CHECK(all_limited.request_count() == 2);
    CHECK(error_message(r->body).find("HTTP 429 on every key, cooling down") != std::string::npos);
    simdjson::dom::parser parser;
    const auto t = health_target(parser, c2.Get("/health")->body, "q:m");
    CHECK(std::string_view(t["state"].get_string().value()) == "degraded");
    CHECK(std::string_view(t["reason"].get_string().value()).substr(0, 30) ==
          "rate limited (429) for another");
  }
}

TEST_CASE("streams cut short count against the target until it is ejected") {
  FakeUpstream cut([](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("text/event-stream", [](size_t offset, httplib::DataSink& s) {
      if (offset == 0) {
        const std::string e =
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n";
        return s.write(e.data(), e.size());
      }
      s.done(); // ends without a finish_reason or [DONE]
      return true;
    });
  });
  TestDaemon d(fill("providers:\n  cut: {type: openai, base_url: \"{url}\"}\n"
                    "health:\n  outlier: {consecutive_failures: 2, base_ejection_time: 5m}\n",
                    {{"url", cut.base_url()}}));
  for (int i = 0; i < 2; ++i) {
    const auto s = stream_post(d.port(), "/v1/chat/completions", chat_body("cut:m", true));
    CHECK(s.body.find("data: {\"error\":") != std::string::npos);
  }
  simdjson::dom::parser parser;
  const auto t = health_target(parser, d.client().Get("/health")->body, "cut:m");
  CHECK(std::string_view(t["state"].get_string().value()) == "ejected");
  CHECK(std::string_view(t["reason"].get_string().value()) ==
        "2 consecutive failures (last: truncated), ejected for 300s");
}

TEST_CASE("probes ask each kind of server its free endpoint, with the target's credentials") {
  FakeUpstream server([](const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/v1/models" || req.path == "/api/tags") {
      res.set_content(R"({"data":[]})", "application/json");
    } else if (req.path == "/health") {
      res.set_content("OK", "text/plain");
    } else {
      res.status = 404;
    }
  });
  const auto snapshot = load_test_snapshot(fill(R"(
providers:
  openai: {type: openai, base_url: "{url}", api_keys: [sk-probe]}
  claude: {type: anthropic, base_url: "{url}", api_keys: [sk-ant-probe]}
custom_models:
  - {id: ollama, type: openai, endpoint: "{url}", probe: ollama, model: llama3}
  - {id: vllm, type: openai, endpoint: "{url}", probe: vllm, model: qwen}
  - {id: quiet, type: openai, endpoint: "{url}", probe: none, model: x}
  - {id: demo, type: mock}
)",
                                                {{"url", server.base_url()}}));
  std::vector<std::string> details;
  for (const auto& t : snapshot->registry->targets()) {
    const auto r = probe_target(t, *snapshot->pools[t.index], std::chrono::seconds(5));
    CHECK_MESSAGE(r.passed, t.name);
    details.push_back(t.name + ": " + r.detail);
  }
  CHECK(details == std::vector<std::string>{"openai: HTTP 200", "claude: HTTP 200",
                                            "custom:ollama: HTTP 200", "custom:vllm: HTTP 200",
                                            "custom:quiet: probe: none",
                                            "custom:demo: mock target"});
  const auto seen = server.seen();
  REQUIRE(seen.size() == 6);
  CHECK(seen[0].path == "/v1/models");
  CHECK(seen[0].headers.find("Authorization")->second == "Bearer sk-probe");
  CHECK(seen[1].path == "/v1/models");
  CHECK(seen[1].headers.find("x-api-key")->second == "sk-ant-probe");
  CHECK(seen[2].path == "/api/tags");
  CHECK(seen[3].path == "/api/show"); // Ollama, asked what its model can do
  CHECK(seen[3].body == R"({"model":"llama3"})");
  CHECK(seen[4].path == "/health");
  CHECK(seen[5].path == "/v1/models"); // vLLM, asked for its context windows
  for (const auto& s : seen) {
    CHECK((s.body.empty() || s.path == "/api/show")); // nothing billable
  }
}

TEST_CASE("a probe fails on a rejected key, a broken answer or no answer") {
  FakeUpstream rejecting([](const httplib::Request&, httplib::Response& res) { res.status = 401; });
  FakeUpstream garbled([](const httplib::Request&, httplib::Response& res) {
    res.set_content("<html>", "text/html");
  });
  const auto snapshot =
      load_test_snapshot(fill("providers:\n  a: {type: openai, base_url: \"{a}\"}\n"
                              "  b: {type: openai, base_url: \"{b}\"}\n"
                              "  c: {type: openai, base_url: \"http://127.0.0.1:{dead}/v1\"}\n",
                              {{"a", rejecting.base_url()},
                               {"b", garbled.base_url()},
                               {"dead", std::to_string(dead_port())}}));
  std::vector<std::string> details;
  for (const auto& t : snapshot->registry->targets()) {
    const auto r = probe_target(t, *snapshot->pools[t.index], std::chrono::seconds(5));
    CHECK_FALSE(r.passed);
    details.push_back(r.detail);
  }
  CHECK(details == std::vector<std::string>{"key rejected (HTTP 401)",
                                            "HTTP 200 but the answer is not well-formed",
                                            "connection refused or unreachable"});
}

TEST_CASE("an ejected target comes back after a passing probe, and serves again") {
  std::atomic<bool> healthy{false};
  FakeUpstream flaky([&](const httplib::Request& req, httplib::Response& res) {
    if (!healthy) {
      res.status = 503;
      return;
    }
    res.set_content(req.method == "GET" ? R"({"data":[]})" : k_chat_completion, "application/json");
  });
  FakeUpstream backup([](const httplib::Request&, httplib::Response& res) {
    res.set_content(k_chat_completion, "application/json");
  });
  TestDaemon d(fill(R"(
providers:
  flaky: {type: openai, base_url: "{flaky}"}
  backup: {type: openai, base_url: "{backup}", probe: none}
routing:
  auto: [flaky:m, backup:m]
health:
  active: {interval: 1h}
  outlier: {consecutive_failures: 1, base_ejection_time: 1h, max_ejection_time: 2h}
)",
                    {{"flaky", flaky.base_url()}, {"backup", backup.base_url()}}));
  auto c = d.client();
  auto r = c.Post("/v1/chat/completions", chat_body("auto"), "application/json");
  REQUIRE(r);
  CHECK(header(r, "x-modelmux-attempts") == "2");
  r = c.Post("/v1/chat/completions", chat_body("auto"), "application/json");
  CHECK(header(r, "x-modelmux-target") == "backup:m"); // flaky is ejected
  healthy = true;
  Prober prober(d.app());
  prober.probe_all();
  r = c.Post("/v1/chat/completions", chat_body("auto"), "application/json");
  REQUIRE(r);
  CHECK(header(r, "x-modelmux-target") == "flaky:m");
  CHECK(header(r, "x-modelmux-attempts") == "1");
}

TEST_CASE("probes learn context windows from vLLM and llama.cpp, and routing skips by them") {
  FakeUpstream vllm([](const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/v1/models") {
      res.set_content(R"({"object":"list","data":[{"id":"qwen","max_model_len":100}]})",
                      "application/json");
    } else if (req.path == "/health") {
      res.set_content("", "text/plain");
    } else {
      res.set_content(k_chat_completion, "application/json");
    }
  });
  FakeUpstream llamacpp([](const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/props") {
      res.set_content(R"({"default_generation_settings":{"n_ctx":4096}})", "application/json");
    } else {
      res.set_content("{}", "application/json");
    }
  });
  FakeUpstream roomy([](const httplib::Request&, httplib::Response& res) {
    res.set_content(k_chat_completion, "application/json");
  });
  TestDaemon d(fill(
      R"(
custom_models:
  - {id: small, endpoint: "{vllm}", model: qwen, probe: vllm, fallback: [custom:roomy]}
  - {id: cpp, endpoint: "{llamacpp}", model: any, probe: llamacpp}
  - {id: roomy, endpoint: "{roomy}", model: big, probe: none}
health:
  active: {interval: 1h}
)",
      {{"vllm", vllm.base_url()}, {"llamacpp", llamacpp.base_url()}, {"roomy", roomy.base_url()}}));
  const auto snapshot = d.app().snapshot();
  const auto& targets = snapshot->registry->targets();
  const auto r = probe_target(targets[1], *snapshot->pools[1], std::chrono::seconds(5));
  REQUIRE(r.passed);
  CHECK(r.context_windows == std::vector<std::pair<std::string, int64_t>>{{"", 4096}});

  Prober prober(d.app());
  prober.probe_all();
  const std::string long_prompt(2000, 'x'); // ~500 tokens: more than the 100 vLLM reported
  const auto big = d.client().Post(
      "/v1/chat/completions",
      R"({"model":"custom:small","messages":[{"role":"user","content":")" + long_prompt + R"("}]})",
      "application/json");
  REQUIRE(big);
  CHECK(header(big, "x-modelmux-target") == "custom:roomy");
  const auto small =
      d.client().Post("/v1/chat/completions", chat_body("custom:small"), "application/json");
  CHECK(header(small, "x-modelmux-target") == "custom:small");
}

TEST_CASE("a target has one name on every surface, and one overloaded model ejects only itself") {
  FakeUpstream upstream([](const httplib::Request& req, httplib::Response& res) {
    if (req.body.find(R"("model":"overloaded")") != std::string::npos) {
      res.status = 529;
      res.set_content(R"({"type":"error","error":{"type":"overloaded_error"}})",
                      "application/json");
      return;
    }
    res.set_content(k_chat_completion, "application/json");
  });
  const auto dir =
      std::filesystem::temp_directory_path() / ("modelmux-names-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  TestDaemon d(fill(R"(
providers:
  p: {type: openai, base_url: "{url}", probe: none}
health:
  outlier: {consecutive_failures: 2}
)",
                    {{"url", upstream.base_url()}}),
               (dir / "usage.jsonl").string());
  auto c = d.client();
  const auto served = c.Post("/v1/chat/completions", chat_body("p:model-a"), "application/json");
  REQUIRE(served);
  CHECK(served->status == 200);
  CHECK(served->get_header_value("x-modelmux-target") == "p:model-a");
  for (int i = 0; i < 2; ++i) {
    const auto r = c.Post("/v1/chat/completions", chat_body("p:overloaded"), "application/json");
    REQUIRE(r);
    CHECK(r->status == 502);
  }
  REQUIRE(d.app().wait_for_usage(3, std::chrono::seconds(10)));
  d.app().flush_usage();

  const auto metrics = c.Get("/metrics")->body;
  CHECK(metrics.find(R"(target="p:model-a",code="200"} 1)") != std::string::npos);
  CHECK(metrics.find(R"(modelmux_target_state{target="p:model-a"} 0)") != std::string::npos);
  CHECK(metrics.find(
            R"(modelmux_upstream_attempts_total{target="p:overloaded",outcome="http_5xx"} 2)") !=
        std::string::npos);
  simdjson::dom::parser parser;
  const auto health = c.Get("/health")->body;
  CHECK(std::string_view(
            health_target(parser, health, "p:model-a")["state"].get_string().value()) == "healthy");
  CHECK(std::string_view(
            health_target(parser, health, "p:overloaded")["state"].get_string().value()) ==
        "ejected");
  const auto status = c.Get("/api/status")->body;
  CHECK(status.find(R"({"target":"p:model-a","kind":"provider")") != std::string::npos);
  const auto text = status_text(status);
  REQUIRE(static_cast<bool>(text));
  CHECK(text.value().find("p:model-a") != std::string::npos);
  CHECK(text.value().find("p:overloaded") != std::string::npos);
  std::vector<UsageRecord> records;
  read_usage_log((dir / "usage.jsonl").string(),
                 [&](const UsageRecord& r) { records.push_back(r); });
  REQUIRE(records.size() == 3);
  // The usage queue keeps no order across request threads: find each by its model.
  std::sort(records.begin(), records.end(),
            [](const UsageRecord& a, const UsageRecord& b) { return a.model < b.model; });
  CHECK(records[0].model == "p:model-a");
  CHECK(records[0].target == "p:model-a");
  CHECK(records[1].failed_targets == std::vector<std::string>{"p:overloaded"});
  Report report(rfc3339_utc(records[0].ts_ms).substr(0, 7));
  for (const auto& r : records) {
    report.add(r);
  }
  CHECK(report.json().find(R"({"target":"p:model-a","requests":1,)") != std::string::npos);
  CHECK(report.json().find(R"({"target":"p:overloaded","requests":0,"failures":2,)") !=
        std::string::npos);
  std::filesystem::remove_all(dir);
}
