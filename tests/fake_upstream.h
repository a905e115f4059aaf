// Test helpers: a fake upstream model server and a modelmux daemon, both in-process on
// 127.0.0.1 with ephemeral ports, a latch for ordering threads without sleeps, and the client
// side: request bodies, a streaming POST, and reading error bodies.
#pragma once

#include "modelmux/app.h"
#include "modelmux/server.h"

#include <arpa/inet.h>
#include <condition_variable>
#include <doctest/doctest.h>
#include <functional>
#include <httplib.h>
#include <mutex>
#include <netinet/in.h>
#include <simdjson.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace modelmux::testing {

// A one-shot gate: wait() blocks until open() (with a generous cap so a broken test fails
// instead of hanging CI).
class Latch {
public:
  void open() {
    std::lock_guard lock(m_mutex);
    m_open = true;
    m_cv.notify_all();
  }
  bool wait(std::chrono::milliseconds cap = std::chrono::seconds(20)) {
    std::unique_lock lock(m_mutex);
    return m_cv.wait_for(lock, cap, [&] { return m_open; });
  }

private:
  std::mutex m_mutex;
  std::condition_variable m_cv;
  bool m_open = false;
};

// Counts up and lets a waiter block until a count is reached.
class Counter {
public:
  void add() {
    std::lock_guard lock(m_mutex);
    ++m_count;
    m_cv.notify_all();
  }
  bool wait_for_count(int n, std::chrono::milliseconds cap = std::chrono::seconds(20)) {
    std::unique_lock lock(m_mutex);
    return m_cv.wait_for(lock, cap, [&] { return m_count >= n; });
  }
  int value() {
    std::lock_guard lock(m_mutex);
    return m_count;
  }

private:
  std::mutex m_mutex;
  std::condition_variable m_cv;
  int m_count = 0;
};

struct SeenRequest {
  std::string path;
  httplib::Headers headers;
  std::string body;
};

// An upstream model server whose answers each test scripts.
class FakeUpstream {
public:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

  explicit FakeUpstream(Handler handler) : m_handler(std::move(handler)) {
    m_server.new_task_queue = [] { return new httplib::ThreadPool(96); };
    m_server.set_tcp_nodelay(true);
    m_server.set_keep_alive_max_count(100000);
    const auto record_and_answer = [this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard lock(m_mutex);
        m_seen.push_back(SeenRequest{req.path + (req.params.empty() ? "" : "?" + query(req)),
                                     req.headers, req.body});
      }
      m_handler(req, res);
    };
    m_server.Post(".*", record_and_answer);
    m_server.Get(".*", record_and_answer); // health probes
    int listen_fd = -1;
    m_server.set_socket_options([&listen_fd](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      listen_fd = sock;
    });
    m_port = m_server.bind_to_any_port("127.0.0.1");
    // The library's backlog of 5 drops SYNs when many streams connect at once.
    ::listen(listen_fd, 1024);
    m_thread = std::thread([this] { m_server.listen_after_bind(); });
    while (!m_server.is_running()) {
      std::this_thread::yield();
    }
  }
  ~FakeUpstream() { stop(); }

  void stop() {
    if (m_thread.joinable()) {
      m_server.stop();
      m_thread.join();
    }
  }

  int port() const { return m_port; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(m_port) + "/v1"; }
  std::vector<SeenRequest> seen() {
    std::lock_guard lock(m_mutex);
    return m_seen;
  }
  size_t request_count() {
    std::lock_guard lock(m_mutex);
    return m_seen.size();
  }

private:
  static std::string query(const httplib::Request& req) {
    std::string q;
    for (const auto& [k, v] : req.params) {
      q += (q.empty() ? "" : "&") + k + "=" + v;
    }
    return q;
  }

  Handler m_handler;
  httplib::Server m_server;
  int m_port = 0;
  std::thread m_thread;
  std::mutex m_mutex;
  std::vector<SeenRequest> m_seen;
};

// A port where nothing listens: a fake bound, started and stopped (a bound socket that never
// listens would hang clients instead of refusing them).
inline int dead_port() {
  FakeUpstream f([](const httplib::Request&, httplib::Response&) {});
  const int port = f.port();
  f.stop();
  return port;
}

// An upstream on a raw socket, for faults no HTTP library would produce: each accepted
// connection goes to on_connection, then is closed.
class RawUpstream {
public:
  explicit RawUpstream(std::function<void(int fd)> on_connection)
      : m_on_connection(std::move(on_connection)) {
    m_fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(m_fd, 64) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&addr), &len);
    m_port = ntohs(addr.sin_port);
    m_thread = std::thread([this] {
      for (;;) {
        const int c = ::accept(m_fd, nullptr, nullptr);
        if (c < 0) {
          return; // the listening socket was shut down
        }
        m_on_connection(c);
        ::close(c);
      }
    });
  }
  RawUpstream(const RawUpstream&) = delete; // its thread holds this
  RawUpstream& operator=(const RawUpstream&) = delete;
  ~RawUpstream() {
    ::shutdown(m_fd, SHUT_RDWR);
    ::close(m_fd);
    m_thread.join();
  }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(m_port) + "/v1"; }

private:
  std::function<void(int)> m_on_connection;
  int m_fd = -1;
  int m_port = 0;
  std::thread m_thread;
};

// A snapshot of a config given as YAML text, with no environment variables set; fails the test
// on any config error.
inline std::shared_ptr<const Snapshot> load_test_snapshot(const std::string& yaml) {
  ConfigEnvironment env;
  env.getenv = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  auto load = load_snapshot_text(yaml, "test.yaml", env);
  for (const auto& e : load.errors) {
    FAIL(to_string(e));
  }
  REQUIRE(load.snapshot);
  return load.snapshot;
}

// modelmux serving a config given as YAML text, with its log lines captured.
class TestDaemon {
public:
  // usage_log: a usage log path opened before the server starts, as serve does.
  explicit TestDaemon(const std::string& yaml, const std::string& usage_log = {})
      : m_log([this](std::string_view line) {
          std::lock_guard lock(m_log_mutex);
          m_lines.emplace_back(line);
        }) {
    m_app = std::make_unique<App>(load_test_snapshot(yaml), m_log);
    if (!usage_log.empty()) {
      REQUIRE(m_app->open_usage_log(usage_log));
    }
    m_server = std::make_unique<Server>(*m_app);
    const auto port = m_server->bind("127.0.0.1", 0);
    REQUIRE(port);
    m_port = port.value();
    m_thread = std::thread([this] {
      m_server->serve();
      m_served.open();
    });
    while (!m_server->is_running()) {
      std::this_thread::yield();
    }
  }
  ~TestDaemon() {
    m_server->stop();
    m_thread.join();
    expect_no_secret_logged();
  }

  httplib::Client client() const {
    httplib::Client c("127.0.0.1", m_port);
    c.set_read_timeout(std::chrono::seconds(20));
    return c;
  }
  int port() const { return m_port; }
  // Waits for serve() to return (after a drain, or stop()): true when it did within cap.
  bool wait_served(std::chrono::milliseconds cap) { return m_served.wait(cap); }
  App& app() { return *m_app; }
  Server& server() { return *m_server; }
  std::vector<std::string> log_lines() {
    std::lock_guard lock(m_log_mutex);
    return m_lines;
  }

private:
  // Every test that runs a daemon also checks that no key of its config reached a log line.
  // Keys shorter than 8 characters are skipped: they would match ordinary words.
  void expect_no_secret_logged() {
    std::vector<std::string> secrets;
    const auto snapshot = m_app->snapshot();
    const Config& c = *snapshot->config;
    for (const auto& k : c.auth.client_keys) {
      secrets.push_back(k.value);
    }
    if (c.auth.admin_key) {
      secrets.push_back(c.auth.admin_key->value);
    }
    for (const auto& t : snapshot->registry->targets()) {
      for (const auto& k : t.endpoint.api_keys) {
        secrets.push_back(k.value);
      }
    }
    for (const auto& line : log_lines()) {
      for (const auto& secret : secrets) {
        if (secret.size() >= 8) {
          CHECK_MESSAGE(line.find(secret) == std::string::npos, "a key was logged: " << line);
        }
      }
    }
  }

  std::mutex m_log_mutex;
  std::vector<std::string> m_lines;
  Log m_log;
  std::unique_ptr<App> m_app;
  std::unique_ptr<Server> m_server;
  int m_port = 0;
  Latch m_served;
  std::thread m_thread;
};

// Replaces each "{name}" in text.
inline std::string fill(std::string text,
                        const std::vector<std::pair<std::string, std::string>>& values) {
  for (const auto& [name, value] : values) {
    const std::string key = "{" + name + "}";
    for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at)) {
      text.replace(at, key.size(), value);
      at += value.size();
    }
  }
  return text;
}

// ---- the client side ----

// A whole chat completion, as an OpenAI-compatible upstream answers one.
inline const char* k_chat_completion =
    R"({"id":"c","object":"chat.completion","created":1,"model":"m","choices":[)"
    R"({"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]})";

// A whole stream, as an OpenAI-compatible upstream answers one.
inline const char* k_stream = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},"
                              "\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";

// A fake that answers streams with k_stream and the rest with k_chat_completion.
inline FakeUpstream::Handler good_handler() {
  return [](const httplib::Request& req, httplib::Response& res) {
    const bool stream = req.body.find("\"stream\":true") != std::string::npos;
    res.set_content(stream ? k_stream : k_chat_completion,
                    stream ? "text/event-stream" : "application/json");
  };
}

inline std::string chat_body(std::string_view model, bool stream = false) {
  return std::string(R"({"model":")") + std::string(model) + R"(","stream":)" +
         (stream ? "true" : "false") + R"(,"messages":[{"role":"user","content":"hello"}]})";
}

inline std::string header(const httplib::Result& r, const char* name) {
  return r ? r->get_header_value(name) : std::string();
}

// The error object of an OpenAI-shaped or Anthropic-shaped error body.
inline std::string error_message(const std::string& body) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body).get(doc)) {
    return "(not JSON: " + body + ")";
  }
  std::string_view m;
  if (doc["error"]["message"].get(m)) {
    return "(no error.message: " + body + ")";
  }
  return std::string(m);
}

// Streams a POST and collects what arrives, calling on_chunk for each piece.
struct Streamed {
  int status = 0;
  std::string body;
  httplib::Headers headers;
};

inline Streamed stream_post(int port, const std::string& path, const std::string& body,
                            const std::function<void(const std::string&)>& on_chunk = {}) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(std::chrono::seconds(20));
  Streamed out;
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body;
  req.set_header("Content-Type", "application/json");
  req.response_handler = [&](const httplib::Response& r) {
    out.status = r.status;
    out.headers = r.headers;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    out.body.append(data, len);
    if (on_chunk) {
      on_chunk(std::string(data, len));
    }
    return true;
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  c.send(req, res, err);
  if (out.body.empty()) {
    out.body = res.body;
  }
  if (out.status == 0) {
    out.status = res.status;
  }
  return out;
}

} // namespace modelmux::testing
