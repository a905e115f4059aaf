// sd_notify messages over a real datagram socket, path and abstract.
#include "modelmux/notify.h"

#include <cstring>
#include <doctest/doctest.h>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

using namespace modelmux;

namespace {

// A datagram socket bound where systemd's would be; receive() returns one message.
class NotifySocket {
public:
  explicit NotifySocket(std::string name) : m_name(std::move(name)) {
    m_fd = ::socket(AF_UNIX, SOCK_DGRAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, m_name.data(), m_name.size());
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + m_name.size());
    if (m_name.front() == '@') {
      addr.sun_path[0] = '\0';
    } else {
      ::unlink(m_name.c_str());
      len += 1;
    }
    REQUIRE(::bind(m_fd, reinterpret_cast<sockaddr*>(&addr), len) == 0);
    timeval tv{5, 0};
    ::setsockopt(m_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~NotifySocket() {
    ::close(m_fd);
    if (m_name.front() != '@') {
      ::unlink(m_name.c_str());
    }
  }
  std::string receive() {
    char buf[512];
    const ssize_t n = ::recv(m_fd, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }

private:
  std::string m_name;
  int m_fd = -1;
};

} // namespace

TEST_CASE("sd_notify messages reach a path socket in the order sent") {
  const std::string path = "/tmp/modelmux-notify-" + std::to_string(::getpid());
  NotifySocket socket(path);
  const SystemdNotifier n(path, std::nullopt);
  REQUIRE(n.enabled());
  CHECK(n.ready());
  CHECK(n.reloading());
  CHECK(n.ready());
  CHECK(n.stopping());
  CHECK(socket.receive() == "READY=1");
  const auto reloading = socket.receive();
  CHECK(reloading.rfind("RELOADING=1\nMONOTONIC_USEC=", 0) == 0);
  CHECK(std::stoll(reloading.substr(reloading.find('=', 12) + 1)) > 0);
  CHECK(socket.receive() == "READY=1");
  CHECK(socket.receive() == "STOPPING=1");
}

TEST_CASE("sd_notify reaches an abstract socket, and does nothing without NOTIFY_SOCKET") {
  const std::string name = "@modelmux-notify-" + std::to_string(::getpid());
  NotifySocket socket(name);
  CHECK(SystemdNotifier(name, std::chrono::seconds(10)).watchdog());
  CHECK(socket.receive() == "WATCHDOG=1");
  const SystemdNotifier none;
  CHECK_FALSE(none.enabled());
  CHECK_FALSE(none.ready());
}

TEST_CASE("the watchdog interval comes from WATCHDOG_USEC when it is meant for this process") {
  ::setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
  ::setenv("WATCHDOG_USEC", "30000000", 1);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  CHECK(SystemdNotifier::from_environment().watchdog_interval() == std::chrono::seconds(30));
  ::setenv("WATCHDOG_PID", "1", 1);
  CHECK_FALSE(SystemdNotifier::from_environment().watchdog_interval());
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  CHECK_FALSE(SystemdNotifier::from_environment().enabled());
}
