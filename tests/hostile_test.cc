// Hostile peers over loopback, on both sides. Clients: slowloris, a stalled body, a disconnect
// mid-stream, pipelining, oversized headers and URLs, invalid UTF-8, deep nesting, duplicate
// keys, wrong types, and 10,000 connection attempts against a small worker limit. Upstreams: a
// gigantic answer, an endless stream, broken chunked encoding, headers without their body, a
// certificate nobody trusts, and a redirect to another host. Each gets the right error or a
// closed connection, and the daemon keeps serving.
#include "fake_upstream.h"
#include "raw_client.h"

#include <arpa/inet.h>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

using namespace modelmux;
using namespace modelmux::testing;

namespace {

// The daemon still answers a plain request.
void expect_serving(TestDaemon& d) {
  const auto r =
      d.client().Post("/v1/chat/completions", chat_body("custom:demo"), "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
}

const char* k_daemon = R"(
server: {read_timeout: 300ms, workers: 2, max_body_size: 1MiB}
custom_models:
  - id: demo
    type: mock
)";

// ---- scripted raw upstreams ----

// Reads one HTTP request (headers, then Content-Length bytes of body) from fd.
bool read_request(int fd) {
  std::string in;
  size_t header_end = std::string::npos;
  size_t need = 0;
  char buf[16384];
  for (;;) {
    if (header_end != std::string::npos && in.size() >= header_end + 4 + need) {
      return true;
    }
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      return false;
    }
    in.append(buf, static_cast<size_t>(n));
    if (header_end == std::string::npos) {
      header_end = in.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        std::string lower = in.substr(0, header_end);
        std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
        const auto cl = lower.find("content-length:");
        need = cl == std::string::npos ? 0 : std::stoul(lower.substr(cl + 15));
      }
    }
  }
}

// An upstream that answers every request with the same scripted bytes, then closes.
RawUpstream scripted_upstream(std::string reply) {
  return RawUpstream([reply = std::move(reply)](int c) {
    if (read_request(c)) {
      send_all(c, reply);
    }
  });
}

// A chain where the hostile target falls back to a good one, and the same target alone.
std::string chain(const std::string& hostile_url, const FakeUpstream& good,
                  const std::string& extra = "") {
  return fill(R"(
custom_models:
  - {id: hostile, endpoint: "{hostile}", model: m, timeout: 2s, fallback: [custom:good] {extra}}
  - {id: alone, endpoint: "{hostile}", model: m, timeout: 2s {extra}}
  - {id: good, endpoint: "{good}", model: m}
server: {max_answer_size: 64KiB, request_timeout: 3s}
health:
  active: {interval: 1h}
)",
              {{"hostile", hostile_url}, {"good", good.base_url()}, {"extra", extra}});
}

// The hostile target is invisible but for attempts; alone, it is a 502 naming why.
void expect_failed_attempt(TestDaemon& d, const std::string& why) {
  const auto r =
      d.client().Post("/v1/chat/completions", chat_body("custom:hostile"), "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == k_chat_completion);
  CHECK(header(r, "x-modelmux-attempts") == "2");
  const auto a =
      d.client().Post("/v1/chat/completions", chat_body("custom:alone"), "application/json");
  REQUIRE(a);
  CHECK(a->status == 502);
  CHECK_MESSAGE(error_message(a->body).find(why) != std::string::npos, a->body);
}

// A self-signed certificate and key for 127.0.0.1, written as PEM files in dir.
void write_self_signed(const std::filesystem::path& cert, const std::filesystem::path& key) {
  EVP_PKEY* pkey = EVP_EC_gen("P-256");
  REQUIRE(pkey != nullptr);
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, pkey);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  REQUIRE(X509_sign(x, pkey, EVP_sha256()) > 0);
  FILE* f = std::fopen(cert.c_str(), "w");
  PEM_write_X509(f, x);
  std::fclose(f);
  f = std::fopen(key.c_str(), "w");
  PEM_write_PrivateKey(f, pkey, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  X509_free(x);
  EVP_PKEY_free(pkey);
}

} // namespace

// ---- hostile clients ----

TEST_CASE("slowloris: headers dribbled byte by byte then stalled are closed after read_timeout, "
          "and others are served meanwhile") {
  TestDaemon d(k_daemon);
  std::vector<int> dribblers;
  for (int i = 0; i < 8; ++i) {
    const int fd = connect_to(d.port());
    REQUIRE(fd >= 0);
    for (const char c : std::string_view("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-A:")) {
      send_all(fd, std::string_view(&c, 1));
    }
    dribblers.push_back(fd);
  }
  expect_serving(d);
  for (const int fd : dribblers) {
    const auto r = read_from(fd, std::chrono::seconds(10));
    CHECK(r.closed);
    ::close(fd);
  }
  expect_serving(d);
}

TEST_CASE("a client that keeps dribbling its headers is cut off at read_timeout from its first "
          "byte") {
  TestDaemon d(k_daemon);
  const int fd = connect_to(d.port());
  REQUIRE(fd >= 0);
  const auto started = std::chrono::steady_clock::now();
  // A byte every 50 ms: never silent for read_timeout (300 ms), never done either.
  const std::string request =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Padding: " + std::string(200, 'a');
  Received r;
  for (const char c : request) {
    send_all(fd, std::string_view(&c, 1));
    r = read_from(fd, std::chrono::milliseconds(50));
    if (r.closed) {
      break;
    }
  }
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK(r.closed);
  CHECK(r.bytes.empty());
  CHECK(took < std::chrono::seconds(5)); // 200 bytes at 50 ms would take 10 s
  ::close(fd);
  expect_serving(d);
}

TEST_CASE("a body slower than read_timeout is dropped without reaching an upstream") {
  TestDaemon d(k_daemon);
  const int fd = connect_to(d.port());
  REQUIRE(fd >= 0);
  send_all(fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Content-Length: 1000\r\n\r\n{\"model\":\"custom:demo\"");
  const auto r = read_from(fd, std::chrono::seconds(10));
  CHECK(r.closed);
  CHECK((r.bytes.empty() || status_of(r.bytes) >= 400));
  ::close(fd);
  expect_serving(d);
  REQUIRE(d.app().wait_for_usage(1, std::chrono::seconds(20)));
  CHECK(!d.app().wait_for_usage(2, std::chrono::milliseconds(300))); // only the served one
}

TEST_CASE("a client that disconnects mid-stream cancels the upstream request, whose connection "
          "is not reused") {
  Latch saw_close;
  std::atomic<int> streams{0};
  FakeUpstream up([&](const httplib::Request& req, httplib::Response& res) {
    if (req.body.find("\"stream\":true") == std::string::npos) {
      res.set_content(k_chat_completion, "application/json");
      return;
    }
    ++streams;
    res.set_chunked_content_provider(
        "text/event-stream", [&, step = 0](size_t, httplib::DataSink& sink) mutable {
          const std::string first = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                                    "\"a\"},\"finish_reason\":null}]}\n\n";
          if (step++ > 0) {
            // Keep talking until the write fails: that is modelmux closing this connection.
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
          }
          if (!sink.write(step == 1 ? first.data() : ": keep-alive\n\n",
                          step == 1 ? first.size() : 14)) {
            saw_close.open();
            return false;
          }
          return true;
        });
  });
  TestDaemon d(fill(R"(
custom_models:
  - {id: up, endpoint: "{up}", model: m}
)",
                    {{"up", up.base_url()}}));
  const int fd = connect_to(d.port());
  REQUIRE(fd >= 0);
  const std::string body = chat_body("custom:up", true);
  send_all(fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Content-Length: " +
                   std::to_string(body.size()) + "\r\n\r\n" + body);
  const auto first = read_from(fd, std::chrono::seconds(10), [](const std::string& s) {
    return s.find("\"content\":\"a\"") != std::string::npos;
  });
  REQUIRE(first.bytes.find("\"content\":\"a\"") != std::string::npos);
  ::close(fd);
  CHECK(saw_close.wait());
  // The next request gets a clean answer: no leftover bytes of the cancelled stream.
  const auto r =
      d.client().Post("/v1/chat/completions", chat_body("custom:up"), "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == k_chat_completion);
  CHECK(streams == 1);
}

// HTTP/1.1 lets a client send its next requests before the first is answered; they are
// answered one after another, in the order sent, on the same connection.
TEST_CASE("pipelined requests are all answered, in the order they were sent") {
  TestDaemon d(k_daemon);
  const int fd = connect_to(d.port());
  REQUIRE(fd >= 0);
  const std::string body = chat_body("custom:demo");
  send_all(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
               "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Content-Length: " +
                   std::to_string(body.size()) + "\r\n\r\n" + body +
                   "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const auto r = read_from(fd, std::chrono::seconds(20));
  CHECK(r.closed);
  CHECK(status_of(r.bytes) == 200);
  const size_t health = r.bytes.find("\"status\":\"ok\"");
  const size_t chat = r.bytes.find("chat.completion");
  const size_t models = r.bytes.find("\"object\":\"list\"");
  REQUIRE(health != std::string::npos);
  REQUIRE(chat != std::string::npos);
  REQUIRE(models != std::string::npos);
  CHECK(health < chat);
  CHECK(chat < models);
  CHECK(d.app().wait_for_usage(1, std::chrono::seconds(5)));
  ::close(fd);
  expect_serving(d);
}

// RFC 9112 §6.3: a message with both Content-Length and Transfer-Encoding, or with differing
// Content-Lengths, could be framed two ways by two servers (request smuggling); it is refused
// and the connection closed, before anything reaches an upstream.
TEST_CASE("ambiguous request framing is refused with 400 and the connection closed") {
  TestDaemon d(k_daemon);
  const std::string body = chat_body("custom:demo");
  const std::string length = std::to_string(body.size());
  for (const std::string& head :
       {"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + length +
            "\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + length +
            "\r\nContent-Length: " + std::to_string(body.size() + 1) + "\r\n\r\n"}) {
    const int fd = connect_to(d.port());
    REQUIRE(fd >= 0);
    send_all(fd, head + body);
    const auto r = read_from(fd, std::chrono::seconds(10));
    CHECK(r.closed);
    CHECK_MESSAGE(status_of(r.bytes) == 400, r.bytes.substr(0, 200));
    CHECK(r.bytes.find("malformed HTTP request") != std::string::npos);
    ::close(fd);
  }
  CHECK(!d.app().wait_for_usage(1, std::chrono::milliseconds(200)));
  expect_serving(d);
}

// SIGTERM's drain: a connection idle between requests (every SDK keeps one) is closed at once,
// so a stop never waits on it; a request that arrives on a connection busy with another is
// answered 503 with Connection: close, and the one in flight finishes.
TEST_CASE("a drain closes idle keep-alive connections at once and answers 503 to a request "
          "behind one in flight") {
  TestDaemon d("custom_models:\n  - {id: slow, type: mock, mock: {latency: 400ms}}\n"
               "  - {id: demo, type: mock}\n");
  const std::string slow = chat_body("custom:slow");
  const std::string quick =
      R"({"model":"custom:demo","max_tokens":5,"messages":[{"role":"user","content":"hi"}]})";
  auto post = [](const std::string& path, const std::string& body) {
    return "POST " + path +
           " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  };
  // An idle keep-alive connection: one answered request, then nothing.
  const int idle = connect_to(d.port());
  REQUIRE(idle >= 0);
  send_all(idle, post("/v1/chat/completions", chat_body("custom:demo")));
  const auto first = read_from(idle, std::chrono::seconds(10), [](const std::string& b) {
    return b.find("chat.completion") != std::string::npos;
  });
  REQUIRE(status_of(first.bytes) == 200);
  // A busy one: a slow request in flight with a second pipelined behind it.
  const int busy = connect_to(d.port());
  REQUIRE(busy >= 0);
  send_all(busy, post("/v1/chat/completions", slow) + post("/v1/messages", quick));
  std::this_thread::sleep_for(std::chrono::milliseconds(100)); // the slow one is in the mock
  const auto drain_started = std::chrono::steady_clock::now();
  d.server().drain();
  const auto idle_end = read_from(idle, std::chrono::seconds(5));
  CHECK(idle_end.closed);
  CHECK(idle_end.bytes.empty());
  CHECK(std::chrono::steady_clock::now() - drain_started < std::chrono::seconds(1));
  const auto answers = read_from(busy, std::chrono::seconds(10));
  CHECK(answers.closed);
  CHECK(status_of(answers.bytes) == 200);
  const size_t second = answers.bytes.find("HTTP/1.1 503");
  REQUIRE(second != std::string::npos);
  CHECK(answers.bytes.find("chat.completion") < second);
  CHECK(answers.bytes.find(R"({"type":"error","error":{"type":"overloaded_error",)", second) !=
        std::string::npos);
  CHECK(answers.bytes.find("Connection: close", second) != std::string::npos);
  ::close(idle);
  ::close(busy);
}

TEST_CASE("past server.max_connections a new connection waits in the backlog until one closes") {
  TestDaemon d("server: {max_connections: 16}\ncustom_models:\n  - {id: demo, type: mock}\n");
  const std::string health = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  auto answered = [](const std::string& b) { return b.find("\"status\"") != std::string::npos; };
  std::vector<int> held;
  for (int i = 0; i < 16; ++i) {
    const int fd = connect_to(d.port());
    REQUIRE(fd >= 0);
    send_all(fd, health);
    REQUIRE(status_of(read_from(fd, std::chrono::seconds(10), answered).bytes) == 200);
    held.push_back(fd); // kept open, idle
  }
  const int extra = connect_to(d.port()); // the kernel completes it; modelmux does not take it
  REQUIRE(extra >= 0);
  send_all(extra, health);
  CHECK(read_from(extra, std::chrono::milliseconds(300)).bytes.empty());
  ::close(held.front());
  CHECK(status_of(read_from(extra, std::chrono::seconds(10), answered).bytes) == 200);
  ::close(extra);
  for (size_t i = 1; i < held.size(); ++i) {
    ::close(held[i]);
  }
}

TEST_CASE("oversized headers and URLs are refused and the daemon keeps serving") {
  TestDaemon d(k_daemon);
  for (const std::string& request :
       {"GET /v1/models?" + std::string(100'000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(100'000, 'b') + "\r\n\r\n",
        "GET /v1/models HTTP/1.1\r\nHost: x\r\n" +
            [] {
              std::string many;
              for (int i = 0; i < 5000; ++i) {
                many += "X-H" + std::to_string(i) + ": v\r\n";
              }
              return many;
            }() +
            "\r\n"}) {
    const int fd = connect_to(d.port());
    REQUIRE(fd >= 0);
    send_all(fd, request);
    const auto r = read_from(fd, std::chrono::seconds(10));
    CHECK(r.closed);
    CHECK_MESSAGE((r.bytes.empty() || status_of(r.bytes) == 414 || status_of(r.bytes) == 431 ||
                   status_of(r.bytes) == 400),
                  r.bytes.substr(0, 200));
    ::close(fd);
  }
  expect_serving(d);
}

TEST_CASE("invalid UTF-8, deep nesting, duplicate keys and wrong types are 400s in the client's "
          "protocol") {
  TestDaemon d(k_daemon);
  auto c = d.client();
  struct Case {
    std::string path;
    std::string body;
    std::string expect; // in the error message
  };
  const std::string deep = "{\"model\":\"custom:demo\",\"messages\":" + std::string(100'000, '[') +
                           std::string(100'000, ']') + "}";
  const std::vector<Case> cases = {
      {"/v1/chat/completions",
       "{\"model\":\"custom:demo\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}",
       "not valid JSON"},
      {"/v1/chat/completions", deep, "not valid JSON"},
      {"/v1/chat/completions", R"({"model":"custom:demo","messages":[],"model":"openai:gpt-4o"})",
       "more than once"},
      {"/v1/chat/completions", R"({"model":5,"messages":[]})", "'model' must be"},
      {"/v1/chat/completions", R"({"model":"custom:demo","messages":[{"role":7,"content":"x"}]})",
       "role"},
      {"/v1/messages", R"({"model":"custom:demo","max_tokens":"many","messages":[]})",
       "max_tokens"},
  };
  for (const auto& k : cases) {
    CAPTURE(k.expect);
    const auto r = c.Post(k.path, k.body, "application/json");
    REQUIRE(r);
    CHECK(r->status == 400);
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    REQUIRE(!parser.parse(r->body).get(doc));
    std::string_view message;
    if (k.path == "/v1/messages") {
      CHECK(doc["type"].get_string().value() == "error");
      REQUIRE(!doc["error"]["message"].get(message));
    } else {
      REQUIRE(!doc["error"]["message"].get(message));
    }
    CHECK_MESSAGE(message.find(k.expect) != std::string_view::npos, message);
  }
  expect_serving(d);
}

TEST_CASE("10,000 connection attempts against 16 workers: each is answered or closed, and the "
          "daemon keeps serving") {
  // Each attempt holds at most one descriptor, but raise the soft limit for the daemon's side.
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &lim);
  TestDaemon d(k_daemon);
  std::atomic<int> attempts{0};
  std::atomic<int> hung{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1250; ++i) {
        ++attempts;
        const int fd = connect_to(d.port());
        if (fd < 0) {
          continue; // refused: a clear answer too
        }
        if ((i + t) % 50 == 0) {
          // Some ask for something and must get an answer or a close, never a hang.
          send_all(fd, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
          const auto r = read_from(fd, std::chrono::seconds(20));
          if (!r.closed) {
            ++hung;
          }
        }
        ::close(fd);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  CHECK(attempts == 10'000);
  CHECK(hung == 0);
  expect_serving(d);
}

// ---- hostile upstreams ----

TEST_CASE("a gigantic answer is cut at max_answer_size and fails the attempt with a clear 502") {
  FakeUpstream huge([](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"pad\":\"" + std::string(1 << 20, 'x') + "\"}", "application/json");
  });
  FakeUpstream good(good_handler());
  TestDaemon d(chain(huge.base_url(), good));
  expect_failed_attempt(d, "custom:alone malformed (answer larger than server.max_answer_size");
}

TEST_CASE("an endless stream is ended by request_timeout with an error event, never [DONE]") {
  FakeUpstream endless([](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("text/event-stream", [](size_t, httplib::DataSink& sink) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20)); // the fake's pace
      const std::string e = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},"
                            "\"finish_reason\":null}]}\n\n";
      return sink.write(e.data(), e.size());
    });
  });
  FakeUpstream good(good_handler());
  TestDaemon d(chain(endless.base_url(), good));
  const auto started = std::chrono::steady_clock::now();
  const auto s = stream_post(d.port(), "/v1/chat/completions", chat_body("custom:alone", true));
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK(s.status == 200);
  CHECK(s.body.find("\"content\":\"x\"") != std::string::npos);
  CHECK(s.body.find("[DONE]") == std::string::npos);
  CHECK(s.body.find("data: {\"error\"") != std::string::npos);
  CHECK(took < std::chrono::seconds(15)); // request_timeout is 3s; generous for sanitizers
}

TEST_CASE("broken chunked encoding from an upstream is a failed attempt") {
  RawUpstream broken =
      scripted_upstream("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        "Transfer-Encoding: chunked\r\n\r\nZZZ\r\n{\"id\":\r\n0\r\n\r\n");
  FakeUpstream good(good_handler());
  TestDaemon d(chain(broken.base_url(), good));
  expect_failed_attempt(d, "custom:alone malformed");
}

TEST_CASE("headers without the body they announce are a failed attempt") {
  RawUpstream cut = scripted_upstream("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                      "Content-Length: 500\r\n\r\n{\"id\":\"c\"");
  FakeUpstream good(good_handler());
  TestDaemon d(chain(cut.base_url(), good));
  expect_failed_attempt(d, "custom:alone reset");
}

// An idle keep-alive connection to an upstream is reused for 4 s, then closed by the worker's
// timer: a burst's connections do not hold descriptors, nor the upstream's sockets, after it.
TEST_CASE("an upstream connection left idle is closed after 4 s") {
  Latch closed;
  std::atomic<int64_t> idle_ms{0};
  RawUpstream keep_alive([&](int c) {
    if (!read_request(c)) {
      return;
    }
    send_all(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                    std::to_string(std::strlen(k_chat_completion)) + "\r\n\r\n" +
                    k_chat_completion);
    const auto answered = std::chrono::steady_clock::now();
    char byte;
    if (::recv(c, &byte, 1, 0) == 0) { // modelmux closed the idle connection
      idle_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - answered)
                    .count();
      closed.open();
    }
  });
  TestDaemon d(fill("custom_models:\n  - {id: kept, endpoint: \"{url}\", model: m, probe: none}\n",
                    {{"url", keep_alive.base_url()}}));
  const auto r =
      d.client().Post("/v1/chat/completions", chat_body("custom:kept"), "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
  REQUIRE(closed.wait(std::chrono::seconds(10)));
  MESSAGE("closed after " << idle_ms.load() << " ms idle");
  CHECK(idle_ms.load() >= 3900);
  CHECK(idle_ms.load() < 6000);
}

TEST_CASE("an upstream certificate nobody trusts is refused unless the target opts out") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("modelmux-tls-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  write_self_signed(dir / "cert.pem", dir / "key.pem");
  httplib::SSLServer tls((dir / "cert.pem").c_str(), (dir / "key.pem").c_str());
  REQUIRE(tls.is_valid());
  tls.Post(".*", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(k_chat_completion, "application/json");
  });
  const int port = tls.bind_to_any_port("127.0.0.1");
  std::thread serving([&] { tls.listen_after_bind(); });
  while (!tls.is_running()) {
    std::this_thread::yield();
  }
  const std::string url = "https://127.0.0.1:" + std::to_string(port) + "/v1";
  {
    FakeUpstream good(good_handler());
    TestDaemon d(chain(url, good));
    expect_failed_attempt(d, "custom:alone connect_error (TLS");
  }
  {
    FakeUpstream good(good_handler());
    TestDaemon d(chain(url, good, ", tls_verify: false"));
    const auto r =
        d.client().Post("/v1/chat/completions", chat_body("custom:alone"), "application/json");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == k_chat_completion);
  }
  tls.stop();
  serving.join();
  std::filesystem::remove_all(dir);
}

TEST_CASE("a redirect from an upstream is not followed to another host") {
  FakeUpstream elsewhere(good_handler());
  FakeUpstream redirecting([&](const httplib::Request&, httplib::Response& res) {
    res.status = 302;
    res.set_header("Location", elsewhere.base_url() + "/chat/completions");
  });
  FakeUpstream good(good_handler());
  TestDaemon d(chain(redirecting.base_url(), good));
  expect_failed_attempt(d, "custom:alone http_5xx (HTTP 302)");
  CHECK(elsewhere.request_count() == 0);
}
