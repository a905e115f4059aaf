// A stop is prompt (SPEC §9): with nothing in flight, a drain lets serve() return at once,
// whatever the daemon did before — closed and idle connections, upstream first-byte and idle
// timeouts, a hedged request, a stream the client walked away from, a Redis outage. Each case
// plays one history over loopback, drains, and measures the time until serve() returns. With a
// request in flight, serve() returns as soon as it ends.
#include "fake_upstream.h"
#include "raw_client.h"

#include <chrono>

using namespace modelmux;
using namespace modelmux::testing;
using namespace std::chrono_literals;

namespace {

// SIGTERM with nothing in flight exits within this (issue: "a prompt stop").
constexpr auto k_prompt = 100ms;

// Drains the daemon and checks that serve() returns within k_prompt (cap: 10 s, a hung drain).
void expect_prompt_stop(TestDaemon& d) {
  const auto started = std::chrono::steady_clock::now();
  d.server().drain();
  REQUIRE(d.wait_served(10s));
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  MESSAGE("stopped in " << took.count() << " ms");
  CHECK(took < k_prompt);
}

std::string post(const std::string& path, const std::string& body, bool close = false) {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
         (close ? "Connection: close\r\n" : "") + "Content-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

// Sends one request and reads its whole answer; the connection stays as the request left it.
Received ask(int fd, const std::string& request) {
  send_all(fd, request);
  return read_from(fd, 10s, [](const std::string& b) {
    const size_t head = b.find("\r\n\r\n");
    if (head == std::string::npos) {
      return false;
    }
    const size_t cl = b.find("Content-Length: ");
    if (cl != std::string::npos && cl < head) {
      return b.size() >= head + 4 + std::stoul(b.substr(cl + 16));
    }
    return b.find("\r\n0\r\n\r\n", head) != std::string::npos;
  });
}

const char* k_mock = "custom_models:\n  - {id: demo, type: mock}\n";

} // namespace

TEST_CASE("a drain with nothing ever served stops at once") {
  TestDaemon d(k_mock);
  expect_prompt_stop(d);
}

TEST_CASE("a drain after a request on a connection the client closed stops at once") {
  TestDaemon d(k_mock);
  for (const bool stream : {false, true}) {
    const int fd = connect_to(d.port());
    REQUIRE(fd >= 0);
    const auto r = ask(fd, post("/v1/chat/completions", chat_body("custom:demo", stream), true));
    CHECK(status_of(r.bytes) == 200);
    ::close(fd);
  }
  expect_prompt_stop(d);
}

TEST_CASE("a drain closes an idle keep-alive connection and stops at once") {
  TestDaemon d(k_mock);
  const int fd = connect_to(d.port());
  REQUIRE(fd >= 0);
  CHECK(status_of(ask(fd, post("/v1/chat/completions", chat_body("custom:demo"))).bytes) == 200);
  expect_prompt_stop(d);
  CHECK(read_from(fd, 1s).closed);
  ::close(fd);
}

TEST_CASE("a drain after an upstream first-byte timeout stops at once") {
  Latch release;
  FakeUpstream hanging([&](const httplib::Request&, httplib::Response& res) {
    release.wait();
    res.set_content(k_chat_completion, "application/json");
  });
  {
    TestDaemon d(fill("custom_models:\n  - {id: hang, endpoint: \"{url}\", model: m, probe: none, "
                      "timeout: 100ms}\nserver: {request_timeout: 5s}\n",
                      {{"url", hanging.base_url()}}));
    const int fd = connect_to(d.port());
    REQUIRE(fd >= 0);
    const auto r = ask(fd, post("/v1/chat/completions", chat_body("custom:hang"), true));
    CHECK(status_of(r.bytes) == 504);
    ::close(fd);
    expect_prompt_stop(d);
  }
  release.open();
}

TEST_CASE("a drain after a stream's idle timeout stops at once") {
  Latch release;
  FakeUpstream stalling([&](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("text/event-stream", [&](size_t, httplib::DataSink& s) {
      const std::string first =
          "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n";
      s.write(first.data(), first.size());
      release.wait();
      return false;
    });
  });
  {
    TestDaemon d(fill("custom_models:\n  - {id: stall, endpoint: \"{url}\", model: m, probe: none, "
                      "idle_timeout: 100ms}\n",
                      {{"url", stalling.base_url()}}));
    const auto s = stream_post(d.port(), "/v1/chat/completions", chat_body("custom:stall", true));
    CHECK(s.status == 200);
    CHECK(s.body.find("data: {\"error\":") != std::string::npos);
    expect_prompt_stop(d);
  }
  release.open();
}

TEST_CASE("a drain after a hedged request stops at once") {
  Latch release;
  FakeUpstream slow([&](const httplib::Request&, httplib::Response& res) {
    release.wait();
    res.set_content(k_chat_completion, "application/json");
  });
  FakeUpstream fast(good_handler());
  {
    TestDaemon d(fill(R"(
custom_models:
  - {id: slow, endpoint: "{slow}", model: m, probe: none, fallback: [custom:fast]}
  - {id: fast, endpoint: "{fast}", model: m, probe: none}
routing:
  hedge_after: 30ms
)",
                      {{"slow", slow.base_url()}, {"fast", fast.base_url()}}));
    for (const bool stream : {false, true}) {
      const auto s =
          stream_post(d.port(), "/v1/chat/completions", chat_body("custom:slow", stream));
      CHECK(s.status == 200);
      CHECK(s.headers.find("x-modelmux-target")->second == "custom:fast");
    }
    expect_prompt_stop(d);
  }
  release.open();
}

TEST_CASE("a drain after a client walked away from a stream stops at once") {
  Latch release;
  Latch upstream_saw_close;
  FakeUpstream endless([&](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("text/event-stream", [&](size_t, httplib::DataSink& s) {
      const std::string e = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n";
      for (int i = 0; i < 2000; ++i) {
        if (!s.write(e.data(), e.size())) {
          upstream_saw_close.open();
          return false;
        }
        if (release.wait(5ms)) {
          break;
        }
      }
      upstream_saw_close.open();
      return false;
    });
  });
  {
    TestDaemon d(fill("custom_models:\n  - {id: endless, endpoint: \"{url}\", model: m, "
                      "probe: none}\n",
                      {{"url", endless.base_url()}}));
    const int fd = connect_to(d.port());
    REQUIRE(fd >= 0);
    send_all(fd, post("/v1/chat/completions", chat_body("custom:endless", true)));
    const auto first = read_from(
        fd, 10s, [](const std::string& b) { return b.find("data: ") != std::string::npos; });
    CHECK(status_of(first.bytes) == 200);
    ::close(fd); // the client walks away mid-stream
    CHECK(upstream_saw_close.wait());
    REQUIRE(d.app().wait_for_usage(1, 10s));
    expect_prompt_stop(d);
  }
  release.open();
}

TEST_CASE("a drain during a Redis outage stops at once") {
  TestDaemon d(fill("redis: {url: \"redis://127.0.0.1:{port}\"}\n" + std::string(k_mock),
                    {{"port", std::to_string(dead_port())}}));
  const int fd = connect_to(d.port());
  REQUIRE(fd >= 0);
  CHECK(status_of(ask(fd, post("/v1/chat/completions", chat_body("custom:demo"), true)).bytes) ==
        200);
  ::close(fd);
  expect_prompt_stop(d);
}

TEST_CASE("a drain waits for a request in flight and stops as soon as it ends") {
  TestDaemon d("custom_models:\n  - {id: slow, type: mock, mock: {latency: 300ms}}\n");
  const int fd = connect_to(d.port());
  REQUIRE(fd >= 0);
  send_all(fd, post("/v1/chat/completions", chat_body("custom:slow")));
  // The request is in flight once the daemon counts it.
  while (d.app().metrics().inflight() == 0) {
    std::this_thread::yield();
  }
  const auto started = std::chrono::steady_clock::now();
  d.server().drain();
  const auto answer = read_from(fd, 10s);
  const auto answered = std::chrono::steady_clock::now();
  CHECK(status_of(answer.bytes) == 200);
  CHECK(answer.closed);
  REQUIRE(d.wait_served(10s));
  const auto after_answer = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - answered);
  MESSAGE("answered after "
          << std::chrono::duration_cast<std::chrono::milliseconds>(answered - started).count()
          << " ms, stopped " << after_answer.count() << " ms later");
  CHECK(after_answer < k_prompt);
  ::close(fd);
}
