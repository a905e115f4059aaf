// Scripted upstream faults over loopback and what the client sees: before the first byte, the
// next target answers and only x-modelmux-attempts tells; alone, the client gets a 502/504
// naming the outcome; after the first byte, the stream ends with an error event, never [DONE].
#include "fake_upstream.h"
#include "modelmux/usage_log.h"

#include <arpa/inet.h>
#include <filesystem>
#include <netinet/in.h>
#include <unistd.h>

using namespace modelmux;
using namespace modelmux::testing;

namespace {

std::string chain(const FakeUpstream& faulty, const FakeUpstream& good) {
  return fill(R"(
custom_models:
  - {id: faulty, endpoint: "{faulty}", model: m, timeout: 300ms, idle_timeout: 300ms,
     fallback: [custom:good]}
  - {id: alone, endpoint: "{faulty}", model: m, timeout: 300ms, idle_timeout: 300ms}
  - {id: good, endpoint: "{good}", model: m, probe: none}
health:
  active: {interval: 1h}
)",
              {{"faulty", faulty.base_url()}, {"good", good.base_url()}});
}

void expect_fallback_and_alone(TestDaemon& d, int alone_status, const std::string& outcome) {
  for (const bool stream : {false, true}) {
    CAPTURE(stream);
    const auto s =
        stream_post(d.port(), "/v1/chat/completions", chat_body("custom:faulty", stream));
    CHECK(s.status == 200);
    CHECK(s.body == (stream ? k_stream : k_chat_completion));
    CHECK(s.headers.find("x-modelmux-attempts")->second == "2");
    const auto a = stream_post(d.port(), "/v1/chat/completions", chat_body("custom:alone", stream));
    CHECK(a.status == alone_status);
    CHECK_MESSAGE(error_message(a.body).find("custom:alone " + outcome) != std::string::npos,
                  a.body);
  }
}

// A server that reads each request and resets the connection (SO_LINGER 0), as a crashing
// model server or a dropping proxy does.
RawUpstream resetting_server() {
  return RawUpstream([](int c) {
    char buf[4096];
    (void)::recv(c, buf, sizeof buf, 0);
    linger hard{1, 0};
    ::setsockopt(c, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  });
}

} // namespace

TEST_CASE("an upstream that resets the connection before answering is invisible but for attempts") {
  RawUpstream resetting = resetting_server();
  FakeUpstream good(good_handler());
  TestDaemon d(fill(R"(
custom_models:
  - {id: faulty, endpoint: "{reset}", model: m, probe: none, fallback: [custom:good]}
  - {id: alone, endpoint: "{reset}", model: m, probe: none}
  - {id: good, endpoint: "{good}", model: m, probe: none}
)",
                    {{"reset", resetting.base_url()}, {"good", good.base_url()}}));
  expect_fallback_and_alone(d, 502, "reset");
}

TEST_CASE("an upstream that hangs before answering is timed out and the next target serves") {
  Latch release;
  FakeUpstream hanging([&](const httplib::Request&, httplib::Response& res) {
    release.wait(std::chrono::seconds(10));
    res.set_content(k_chat_completion, "application/json");
  });
  FakeUpstream good(good_handler());
  {
    TestDaemon d(chain(hanging, good));
    expect_fallback_and_alone(d, 504, "timeout");
  }
  release.open();
}

TEST_CASE("an upstream 529 (overloaded) falls back like any 5xx") {
  FakeUpstream overloaded([](const httplib::Request&, httplib::Response& res) {
    res.status = 529;
    res.set_content(R"({"type":"error","error":{"type":"overloaded_error"}})", "application/json");
  });
  FakeUpstream good(good_handler());
  TestDaemon d(chain(overloaded, good));
  expect_fallback_and_alone(d, 502, "http_5xx");
}

TEST_CASE("a malformed first event falls back, a malformed later event ends with an error") {
  Latch client_has_first;
  FakeUpstream malformed([&](const httplib::Request& req, httplib::Response& res) {
    if (req.body.find("later") == std::string::npos) {
      res.set_content("data: {oops\n\n", "text/event-stream");
      return;
    }
    res.set_chunked_content_provider("text/event-stream", [&](size_t offset, httplib::DataSink& s) {
      if (offset == 0) {
        const std::string e =
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n";
        return s.write(e.data(), e.size());
      }
      client_has_first.wait(); // the broken event comes once the answer has begun
      const std::string e = "data: {oops\n\n";
      s.write(e.data(), e.size());
      s.done();
      return true;
    });
  });
  FakeUpstream good(good_handler());
  TestDaemon d(chain(malformed, good));
  auto s = stream_post(d.port(), "/v1/chat/completions", chat_body("custom:faulty", true));
  CHECK(s.body == k_stream);
  CHECK(s.headers.find("x-modelmux-attempts")->second == "2");
  std::string body = chat_body("custom:faulty", true);
  body.insert(1, R"("user":"later",)");
  s = stream_post(d.port(), "/v1/chat/completions", body,
                  [&](const std::string&) { client_has_first.open(); });
  CHECK(s.body.rfind("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n", 0) ==
        0);
  CHECK(s.body.find("data: {\"error\":{\"message\":\"the upstream sent a malformed event") !=
        std::string::npos);
  CHECK(s.body.find("[DONE]") == std::string::npos);
}

TEST_CASE("a stream that stalls mid-answer ends with an error event after idle_timeout") {
  Latch release;
  FakeUpstream stalling([&](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("text/event-stream", [&](size_t offset, httplib::DataSink& s) {
      if (offset == 0) {
        const std::string e =
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n";
        return s.write(e.data(), e.size());
      }
      release.wait(std::chrono::seconds(10)); // silent: modelmux must not wait for ever
      return false;
    });
  });
  FakeUpstream good(good_handler());
  {
    // A first byte may take its time (a loaded sanitizer build is slow to start one); the
    // silence after it is what is under test.
    TestDaemon d(fill(R"(
custom_models:
  - {id: faulty, endpoint: "{faulty}", model: m, timeout: 10s, idle_timeout: 300ms,
     fallback: [custom:good]}
  - {id: good, endpoint: "{good}", model: m, probe: none}
health:
  active: {interval: 1h}
)",
                      {{"faulty", stalling.base_url()}, {"good", good.base_url()}}));
    const auto s = stream_post(d.port(), "/v1/chat/completions", chat_body("custom:faulty", true));
    CHECK(s.status == 200);
    CHECK(s.headers.find("x-modelmux-target")->second == "custom:faulty");
    CHECK(s.body.find("data: {\"error\":") != std::string::npos);
    CHECK(s.body.find("[DONE]") == std::string::npos);
  }
  release.open();
}

namespace {

std::string hedged_chain(const FakeUpstream& slow, const FakeUpstream& fast,
                         std::string_view hedge_after = "50ms") {
  return fill(R"(
custom_models:
  - {id: slow, endpoint: "{slow}", model: m, probe: none, fallback: [custom:fast]}
  - {id: fast, endpoint: "{fast}", model: m, probe: none}
routing:
  hedge_after: {hedge_after}
)",
              {{"slow", slow.base_url()},
               {"fast", fast.base_url()},
               {"hedge_after", std::string(hedge_after)}});
}

} // namespace

TEST_CASE("hedging races a target with no first byte, the faster wins, the slower is cancelled") {
  Latch release;
  Latch saw_close;
  FakeUpstream slow([&](const httplib::Request& req, httplib::Response& res) {
    if (req.body.find("\"stream\":true") == std::string::npos) {
      release.wait();
      res.set_content(k_chat_completion, "application/json");
      return;
    }
    res.set_chunked_content_provider("text/event-stream", [&](size_t, httplib::DataSink& s) {
      release.wait();
      const std::string e(1024, ':');
      for (int i = 0; i < 20000; ++i) { // far more than modelmux would ever buffer unread
        if (!s.write(e.data(), e.size())) {
          saw_close.open(); // modelmux closed the loser's connection
          return false;
        }
      }
      return false;
    });
  });
  FakeUpstream fast(good_handler());
  {
    TestDaemon d(hedged_chain(slow, fast));
    SUBCASE("stream") {
      const auto s = stream_post(d.port(), "/v1/chat/completions", chat_body("custom:slow", true));
      CHECK(s.status == 200);
      CHECK(s.body == k_stream);
      CHECK(s.headers.find("x-modelmux-target")->second == "custom:fast");
      CHECK(s.headers.find("x-modelmux-attempts")->second == "2");
      release.open();
      CHECK(saw_close.wait());
    }
    SUBCASE("non-stream") {
      const auto r =
          d.client().Post("/v1/chat/completions", chat_body("custom:slow"), "application/json");
      REQUIRE(r);
      CHECK(r->body == k_chat_completion);
      CHECK(header(r, "x-modelmux-target") == "custom:fast");
      CHECK(header(r, "x-modelmux-attempts") == "2");
    }
    bool logged = false;
    for (const auto& line : d.log_lines()) {
      logged = logged || line.find("event=hedged") != std::string::npos;
    }
    CHECK(logged);
  }
  release.open();
}

TEST_CASE("no hedge starts when the first target answers within hedge_after") {
  FakeUpstream quick(good_handler());
  FakeUpstream spare(good_handler());
  // Generous, so a slow machine (or a sanitizer build) still answers within it.
  TestDaemon d(hedged_chain(quick, spare, "5s"));
  for (const bool stream : {false, true}) {
    const auto s = stream_post(d.port(), "/v1/chat/completions", chat_body("custom:slow", stream));
    CHECK(s.body == (stream ? k_stream : k_chat_completion));
    CHECK(s.headers.find("x-modelmux-attempts")->second == "1");
  }
  CHECK(spare.request_count() == 0);
}

TEST_CASE("a hedged target that fails leaves the race to the other") {
  Latch hedge_failed;
  FakeUpstream slow_then_ok([&](const httplib::Request&, httplib::Response& res) {
    hedge_failed.wait(); // answers only once the hedge has failed
    res.set_content(k_chat_completion, "application/json");
  });
  FakeUpstream failing([&](const httplib::Request&, httplib::Response& res) {
    res.status = 500;
    hedge_failed.open();
  });
  TestDaemon d(hedged_chain(slow_then_ok, failing));
  const auto r =
      d.client().Post("/v1/chat/completions", chat_body("custom:slow"), "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(header(r, "x-modelmux-target") == "custom:slow");
  CHECK(header(r, "x-modelmux-attempts") == "2");
}

namespace {

// A raw upstream that sends a stream's head and first event, waits until the client has it
// (so the request is committed), then breaks off as `how` says.
RawUpstream breaking_stream(const std::string& how, Latch& client_has_first) {
  return RawUpstream([how, &client_has_first](int c) {
    char buf[8192];
    (void)::recv(c, buf, sizeof buf, 0);
    auto chunk = [](const std::string& s) {
      char size[16];
      std::snprintf(size, sizeof size, "%zx\r\n", s.size());
      return size + s + "\r\n";
    };
    const std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        "Transfer-Encoding: chunked\r\n\r\n" +
        chunk("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n");
    (void)::send(c, head.data(), head.size(), MSG_NOSIGNAL);
    client_has_first.wait();
    std::string rest;
    if (how == "malformed") {
      rest += chunk("data: {not json\n\n");
    }
    if (how == "truncated" || how == "malformed") {
      rest += "0\r\n\r\n"; // a clean end, without [DONE] or a finish_reason
    }
    (void)::send(c, rest.data(), rest.size(), MSG_NOSIGNAL);
    if (how == "reset") {
      linger hard{1, 0};
      ::setsockopt(c, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
      return;
    }
    // Silent until modelmux gives up and closes (the rest of the request may still arrive).
    while (::recv(c, buf, sizeof buf, 0) > 0) {
    }
  });
}

} // namespace

TEST_CASE("a stream that breaks after its first byte is a failed attempt in metrics, health and "
          "the usage log") {
  for (const std::string how : {"idle", "truncated", "malformed", "reset"}) {
    CAPTURE(how);
    Latch client_has_first;
    RawUpstream upstream = breaking_stream(how, client_has_first);
    const auto dir = std::filesystem::temp_directory_path() /
                     ("modelmux-midstream-" + std::to_string(::getpid()) + "-" + how);
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    TestDaemon d(fill(R"(
custom_models:
  - {id: alone, endpoint: "{url}", model: m, timeout: 2s, idle_timeout: 300ms, probe: none}
health:
  min_requests: 1
)",
                      {{"url", upstream.base_url()}}),
                 (dir / "usage.jsonl").string());
    const auto s = stream_post(d.port(), "/v1/chat/completions", chat_body("custom:alone", true),
                               [&](const std::string&) { client_has_first.open(); });
    CHECK(s.status == 200);
    CHECK(s.body.find("\"content\":\"a\"") != std::string::npos);
    CHECK(s.body.find("data: {\"error\":") != std::string::npos);
    CHECK(s.body.find("[DONE]") == std::string::npos);
    // The record is made when the stream's end has been sent, which the client may see first.
    REQUIRE(d.app().wait_for_usage(1, std::chrono::seconds(10)));
    d.app().flush_usage();

    auto c = d.client();
    const auto metrics = c.Get("/metrics");
    REQUIRE(metrics);
    CHECK(metrics->body.find("modelmux_upstream_attempts_total{target=\"custom:alone\",outcome=\"" +
                             how + "\"} 1") != std::string::npos);
    CHECK(metrics->body.find(
              "modelmux_upstream_attempts_total{target=\"custom:alone\",outcome=\"ok\"}") ==
          std::string::npos);
    const auto health = c.Get("/health");
    REQUIRE(health);
    CHECK(health->body.find(R"("target":"custom:alone")") != std::string::npos);
    CHECK(health->body.find(R"("success_rate":0,)") != std::string::npos);
    std::vector<UsageRecord> records;
    read_usage_log((dir / "usage.jsonl").string(),
                   [&](const UsageRecord& r) { records.push_back(r); });
    REQUIRE(records.size() == 1);
    CHECK(records[0].status == 200);
    CHECK(records[0].outcome == how);
    std::filesystem::remove_all(dir);
  }
}
