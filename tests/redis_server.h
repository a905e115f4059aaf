// A real Redis for the shared-state tests: Debian's redis-server started on an ephemeral
// loopback port with no persistence (no system service), killed and started again on the same
// port when a test wants an outage, and a plain hiredis client to look at what is stored.
#pragma once

#include <chrono>
#include <csignal>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <filesystem>
#include <functional>
#include <hiredis/hiredis.h>
#include <memory>
#include <optional>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace modelmux::testing {

// Waits for condition, checking every millisecond, for at most cap: the tests wait for what
// another thread or process does, never for a fixed time.
inline bool eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds cap = std::chrono::seconds(10)) {
  const auto until = std::chrono::steady_clock::now() + cap;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > until) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

class RedisServer {
public:
  // persist: an append-only file fsynced on every write, in a directory of its own, so a
  // SIGKILL and a start again keep what was stored (an outage, not a lost database).
  explicit RedisServer(int port, bool persist = false) : m_port(port), m_persist(persist) {
    if (persist) {
      char dir[] = "/tmp/modelmux-redis-XXXXXX";
      REQUIRE(::mkdtemp(dir) != nullptr);
      m_dir = dir;
    }
    start();
  }
  ~RedisServer() {
    kill();
    if (!m_dir.empty()) {
      std::filesystem::remove_all(m_dir);
    }
  }

  int port() const { return m_port; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(m_port) + "/0"; }

  void start() {
    REQUIRE_MESSAGE(::access("/usr/bin/redis-server", X_OK) == 0,
                    "redis-server is not installed (apt-get install -y redis-server; .ci/run "
                    "installs it)");
    const std::string port = std::to_string(m_port);
    m_pid = ::fork();
    if (m_pid == 0) {
      // Its start-up banner and warnings are not the test's output.
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::dup2(null, 2);
      if (m_persist) {
        ::execl("/usr/bin/redis-server", "redis-server", "--port", port.c_str(), "--bind",
                "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "always",
                "--dir", m_dir.c_str(), "--loglevel", "warning", static_cast<char*>(nullptr));
      } else {
        ::execl("/usr/bin/redis-server", "redis-server", "--port", port.c_str(), "--bind",
                "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning",
                static_cast<char*>(nullptr));
      }
      ::_exit(127);
    }
    REQUIRE(m_pid > 0);
    REQUIRE(eventually([&] { return command({"PING"}) == "PONG"; }));
  }

  // SIGKILL: an outage as a crash or a network cut looks to modelmux.
  void kill() {
    if (m_pid > 0) {
      ::kill(m_pid, SIGKILL);
      ::waitpid(m_pid, nullptr, 0);
      m_pid = -1;
    }
  }

  // One command on a fresh connection: a string or status reply as it is, an integer in
  // decimal, nil as nullopt (also when Redis is not there).
  std::optional<std::string> command(const std::vector<std::string>& args) const {
    const timeval timeout{1, 0};
    std::unique_ptr<redisContext, void (*)(redisContext*)> c(
        redisConnectWithTimeout("127.0.0.1", m_port, timeout), redisFree);
    if (!c || c->err) {
      return std::nullopt;
    }
    std::vector<const char*> argv;
    std::vector<size_t> lengths;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lengths.push_back(a.size());
    }
    auto* reply = static_cast<redisReply*>(
        redisCommandArgv(c.get(), static_cast<int>(argv.size()), argv.data(), lengths.data()));
    if (reply == nullptr) {
      return std::nullopt;
    }
    std::optional<std::string> out;
    if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS) {
      out = std::string(reply->str, reply->len);
    } else if (reply->type == REDIS_REPLY_INTEGER) {
      out = std::to_string(reply->integer);
    } else if (reply->type == REDIS_REPLY_ARRAY) {
      out = std::to_string(reply->elements);
    }
    freeReplyObject(reply);
    return out;
  }

private:
  int m_port;
  bool m_persist;
  std::string m_dir;
  pid_t m_pid = -1;
};

} // namespace modelmux::testing
