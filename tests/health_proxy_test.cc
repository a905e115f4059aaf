// Health through the daemon over loopback: a failing target is ejected and no request reaches
// it, /health reports it, a chain of ejected targets is still tried, and a 429 moves to the
// next key and cools the first for its Retry-After.
#include "fake_upstream.h"

#include <atomic>

using namespace modelmux;
using namespace modelmux::testing;

namespace {

const char* k_answer =
    R"({"id":"c","object":"chat.completion","created":1,"model":"m","choices":[)"
    R"({"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]})";

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
    res.set_content(k_answer, "application/json");
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
  const auto t = health_target(parser, h->body, "broken");
  CHECK(std::string_view(t["state"].get_string().value()) == "ejected");
  CHECK(std::string_view(t["reason"].get_string().value()) ==
        "3 consecutive failures (last: http_5xx), ejected for 300s");
  CHECK(t["ejected_until"].is_string());
  CHECK(double(t["success_rate"].get_double().value()) == 0.0);
  const auto b = health_target(parser, h->body, "backup");
  CHECK(std::string_view(b["state"].get_string().value()) == "healthy");
}

TEST_CASE("when every target of a chain is out, they are tried in order anyway") {
  std::atomic<bool> healthy{false};
  FakeUpstream flaky([&](const httplib::Request&, httplib::Response& res) {
    if (!healthy) {
      res.status = 503;
      return;
    }
    res.set_content(k_answer, "application/json");
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
    res.set_content(k_answer, "application/json");
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
    const auto t = health_target(parser, c2.Get("/health")->body, "q");
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
  const auto t = health_target(parser, d.client().Get("/health")->body, "cut");
  CHECK(std::string_view(t["state"].get_string().value()) == "ejected");
  CHECK(std::string_view(t["reason"].get_string().value()) ==
        "2 consecutive failures (last: truncated), ejected for 300s");
}
