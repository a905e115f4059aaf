// The response cache over loopback (SPEC §11): hits and misses on chat, messages and responses,
// a stored answer replayed as a stream and a stored stream served whole, bypass and opt-in, a
// failed stream never stored, a burst of identical requests, and the savings counted.
#include "fake_upstream.h"

#include <atomic>

using namespace modelmux;
using namespace modelmux::testing;

namespace {

const char* k_priced_cache = R"(
custom_models:
  - {id: local, endpoint: "{url}", model: m, probe: none, cost: {input: 1.0, output: 2.0}}
cache:
  enabled: true
  when: {when}
)";

std::string deterministic_chat(bool stream, std::string_view extra = "") {
  return std::string(R"({"model":"custom:local","temperature":0,"stream":)") +
         (stream ? "true" : "false") + std::string(extra) +
         R"(,"messages":[{"role":"user","content":"summarise the file"}]})";
}

struct Got {
  int status = 0;
  std::string body;
  std::string cache;
  std::string target;
};

Got post(TestDaemon& d, const std::string& path, const std::string& body,
         const httplib::Headers& headers = {}) {
  auto c = d.client();
  const auto r = c.Post(path, headers, body, "application/json");
  REQUIRE(r);
  return {r->status, r->body, r->get_header_value("x-modelmux-cache"),
          r->get_header_value("x-modelmux-target")};
}

bool has_metric(TestDaemon& d, const std::string& line) {
  return d.app().metrics_text().find(line) != std::string::npos;
}

} // namespace

TEST_CASE("a repeated deterministic request is answered from the cache on chat, messages and "
          "responses") {
  FakeUpstream upstream(good_handler());
  TestDaemon d(fill(k_priced_cache, {{"url", upstream.base_url()}, {"when", "deterministic"}}));
  const std::vector<std::pair<std::string, std::string>> requests = {
      {"/v1/chat/completions", deterministic_chat(false)},
      {"/v1/messages", R"({"model":"custom:local","temperature":0,"max_tokens":64,)"
                       R"("messages":[{"role":"user","content":"summarise"}]})"},
      {"/v1/responses", R"({"model":"custom:local","temperature":0,"input":"summarise"})"}};
  size_t calls = 0;
  for (const auto& [path, body] : requests) {
    CAPTURE(path);
    const auto first = post(d, path, body);
    CHECK(first.status == 200);
    CHECK(first.cache == "miss");
    CHECK(upstream.request_count() == ++calls);
    const auto second = post(d, path, body);
    CHECK(second.status == 200);
    CHECK(second.cache == "hit");
    CHECK(second.target == "custom:local");
    CHECK(second.body == first.body);
    CHECK(upstream.request_count() == calls); // no upstream call for the hit
  }
  // The same words on another route are another request.
  CHECK(has_metric(d, R"(modelmux_cache_requests_total{result="hit"} 3)"));
  CHECK(has_metric(d, R"(modelmux_cache_requests_total{result="miss"} 3)"));
  CHECK(has_metric(d, "modelmux_cache_entries 3"));
}

TEST_CASE("a stored whole answer replays as a complete stream, and a stored stream serves a "
          "whole request") {
  FakeUpstream upstream(good_handler());
  TestDaemon d(fill(k_priced_cache, {{"url", upstream.base_url()}, {"when", "deterministic"}}));
  SUBCASE("whole, then stream") {
    REQUIRE(post(d, "/v1/chat/completions", deterministic_chat(false)).cache == "miss");
    const auto s = stream_post(d.port(), "/v1/chat/completions", deterministic_chat(true));
    CHECK(s.status == 200);
    CHECK(s.headers.find("x-modelmux-cache")->second == "hit");
    CHECK(s.body.find(R"("delta":{"content":"ok"})") != std::string::npos);
    CHECK(s.body.find(R"("finish_reason":"stop")") != std::string::npos);
    CHECK(s.body.ends_with("data: [DONE]\n\n"));
  }
  SUBCASE("stream, then whole") {
    const auto s = stream_post(d.port(), "/v1/chat/completions", deterministic_chat(true));
    REQUIRE(s.status == 200);
    const auto whole = post(d, "/v1/chat/completions", deterministic_chat(false));
    CHECK(whole.cache == "hit");
    CHECK(whole.body.find(R"("object":"chat.completion")") != std::string::npos);
    CHECK(whole.body.find(R"("content":"ok")") != std::string::npos);
  }
  CHECK(upstream.request_count() == 1);
}

TEST_CASE("x-modelmux-cache: bypass skips the cache, with when: header only use opts in") {
  FakeUpstream upstream(good_handler());
  SUBCASE("bypass") {
    TestDaemon d(fill(k_priced_cache, {{"url", upstream.base_url()}, {"when", "always"}}));
    post(d, "/v1/chat/completions", deterministic_chat(false));
    const auto bypassed = post(d, "/v1/chat/completions", deterministic_chat(false),
                               {{"x-modelmux-cache", "bypass"}});
    CHECK(bypassed.cache.empty());
    CHECK(upstream.request_count() == 2);
    CHECK(has_metric(d, R"(modelmux_cache_requests_total{result="bypass"} 1)"));
  }
  SUBCASE("header") {
    TestDaemon d(fill(k_priced_cache, {{"url", upstream.base_url()}, {"when", "header"}}));
    post(d, "/v1/chat/completions", deterministic_chat(false));
    post(d, "/v1/chat/completions", deterministic_chat(false)); // not opted in: both upstream
    CHECK(upstream.request_count() == 2);
    post(d, "/v1/chat/completions", deterministic_chat(false), {{"x-modelmux-cache", "use"}});
    const auto hit =
        post(d, "/v1/chat/completions", deterministic_chat(false), {{"x-modelmux-cache", "use"}});
    CHECK(hit.cache == "hit");
    CHECK(upstream.request_count() == 3);
  }
}

TEST_CASE("a request that is not deterministic is not cached") {
  FakeUpstream upstream(good_handler());
  TestDaemon d(fill(k_priced_cache, {{"url", upstream.base_url()}, {"when", "deterministic"}}));
  const std::string sampled = R"({"model":"custom:local","temperature":0.7,"messages":[]})";
  post(d, "/v1/chat/completions", sampled);
  CHECK(post(d, "/v1/chat/completions", sampled).cache.empty());
  CHECK(upstream.request_count() == 2);
}

TEST_CASE("a stream that was cut is never stored") {
  std::atomic<int> calls{0};
  FakeUpstream upstream([&](const httplib::Request&, httplib::Response& res) {
    ++calls;
    // A first event, then the connection ends with no finish and no [DONE].
    res.set_content("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"par\"}}]}\n\n",
                    "text/event-stream");
  });
  TestDaemon d(fill(k_priced_cache, {{"url", upstream.base_url()}, {"when", "deterministic"}}));
  const auto first = stream_post(d.port(), "/v1/chat/completions", deterministic_chat(true));
  CHECK(first.body.find("\"error\"") != std::string::npos);
  const auto second = stream_post(d.port(), "/v1/chat/completions", deterministic_chat(true));
  CHECK(second.headers.find("x-modelmux-cache")->second == "miss");
  CHECK(calls == 2);
  CHECK(has_metric(d, "modelmux_cache_entries 0"));
}

TEST_CASE("an answer is served from the cache until its ttl, then asked again and stored anew") {
  FakeUpstream upstream(good_handler());
  TestDaemon d(fill(k_priced_cache + std::string("  ttl: 10m\n"),
                    {{"url", upstream.base_url()}, {"when", "deterministic"}}));
  post(d, "/v1/chat/completions", deterministic_chat(false));
  d.app().advance_cache_clock(std::chrono::minutes(9));
  CHECK(post(d, "/v1/chat/completions", deterministic_chat(false)).cache == "hit");
  d.app().advance_cache_clock(std::chrono::minutes(2)); // 11 minutes after it was stored
  CHECK(post(d, "/v1/chat/completions", deterministic_chat(false)).cache == "miss");
  CHECK(upstream.request_count() == 2);
  CHECK(post(d, "/v1/chat/completions", deterministic_chat(false)).cache == "hit");
  CHECK(upstream.request_count() == 2);
}

TEST_CASE("an error answer, or a stream that carried an error, is never stored") {
  std::atomic<int> calls{0};
  SUBCASE("a 500, then a 200 stream with an error event in it") {
    FakeUpstream upstream([&](const httplib::Request& req, httplib::Response& res) {
      ++calls;
      if (req.body.find("\"stream\":true") == std::string::npos) {
        res.status = 500;
        res.set_content(R"({"error":{"message":"overloaded","type":"server_error"}})",
                        "application/json");
        return;
      }
      res.set_content("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"par\"}}]}\n\n"
                      "data: {\"error\":{\"message\":\"model crashed\",\"type\":\"server_error\"}}"
                      "\n\ndata: [DONE]\n\n",
                      "text/event-stream");
    });
    TestDaemon d(fill(k_priced_cache, {{"url", upstream.base_url()}, {"when", "deterministic"}}));
    CHECK(post(d, "/v1/chat/completions", deterministic_chat(false)).status == 502);
    CHECK(post(d, "/v1/chat/completions", deterministic_chat(false)).status == 502);
    stream_post(d.port(), "/v1/chat/completions", deterministic_chat(true));
    const auto again = stream_post(d.port(), "/v1/chat/completions", deterministic_chat(true));
    CHECK(again.headers.find("x-modelmux-cache")->second == "miss");
    CHECK(calls == 4);
    CHECK(has_metric(d, "modelmux_cache_entries 0"));
  }
}

TEST_CASE("a burst of identical requests each goes upstream until one answer is stored") {
  Latch release;
  std::atomic<int> held{0};
  FakeUpstream upstream([&](const httplib::Request&, httplib::Response& res) {
    ++held;
    release.wait();
    res.set_content(k_chat_completion, "application/json");
  });
  TestDaemon d(fill(k_priced_cache, {{"url", upstream.base_url()}, {"when", "deterministic"}}));
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&] { post(d, "/v1/chat/completions", deterministic_chat(false)); });
  }
  while (held < 4) {
    std::this_thread::yield(); // every one of them is upstream: none waited on another
  }
  release.open();
  for (auto& t : clients) {
    t.join();
  }
  CHECK(upstream.request_count() == 4);
  CHECK(post(d, "/v1/chat/completions", deterministic_chat(false)).cache == "hit");
  CHECK(upstream.request_count() == 4);
}

TEST_CASE("a hit costs nothing, reports the original usage, and counts what it saved") {
  FakeUpstream upstream([](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"id":"c","object":"chat.completion","created":1,"model":"m","choices":[)"
                    R"({"index":0,"message":{"role":"assistant","content":"ok"},)"
                    R"("finish_reason":"stop"}],"usage":{"prompt_tokens":1000000,)"
                    R"("completion_tokens":500000,"total_tokens":1500000}})",
                    "application/json");
  });
  TestDaemon d(fill(k_priced_cache, {{"url", upstream.base_url()}, {"when", "deterministic"}}));
  post(d, "/v1/chat/completions", deterministic_chat(false));
  const auto hit = post(d, "/v1/chat/completions", deterministic_chat(false));
  CHECK(hit.body.find(R"("prompt_tokens":1000000)") != std::string::npos);
  REQUIRE(d.app().wait_for_usage(2, std::chrono::seconds(20)));
  // $1 for 1M input and $2 for 1M output at the target's price: $2 the first time, $0 the second.
  CHECK(has_metric(d, R"(modelmux_cost_usd_total{target="custom:local"} 2)"));
  CHECK(has_metric(d, "modelmux_cache_savings_usd_total 2"));
  // The status page and `modelmux status` read the month's hits and savings from /api/status.
  const auto status = d.client().Get("/api/status");
  REQUIRE(status);
  CHECK(status->body.find(R"("cache_hits":1,"cache_savings_usd":2.000000)") != std::string::npos);
  CHECK(status->body.find(R"("month_usd":2.000000)") != std::string::npos);
  CHECK(status->body.find(R"("cache":{"entries":1,)") != std::string::npos);
}
