// sd_notify over a datagram socket.
#include "modelmux/notify.h"

#include "modelmux/text.h"

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace modelmux {

SystemdNotifier SystemdNotifier::from_environment() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  if (socket == nullptr || *socket == '\0') {
    return {};
  }
  std::optional<std::chrono::microseconds> watchdog;
  const char* usec = std::getenv("WATCHDOG_USEC");
  const char* pid = std::getenv("WATCHDOG_PID");
  const bool for_us = pid == nullptr || parse_int(pid) == static_cast<int64_t>(::getpid());
  if (usec != nullptr && for_us) {
    if (const auto n = parse_int(usec); n && *n > 0) {
      watchdog = std::chrono::microseconds(*n);
    }
  }
  return SystemdNotifier(socket, watchdog);
}

bool SystemdNotifier::send(std::string_view message) const {
  if (m_socket.empty()) {
    return false;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (m_socket.size() >= sizeof addr.sun_path) {
    return false;
  }
  std::memcpy(addr.sun_path, m_socket.data(), m_socket.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + m_socket.size());
  if (m_socket.front() == '@') {
    addr.sun_path[0] = '\0'; // the abstract namespace
  } else {
    len += 1; // the path's terminating NUL
  }
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return false;
  }
  const ssize_t sent = ::sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
                                reinterpret_cast<sockaddr*>(&addr), len);
  ::close(fd);
  return sent == static_cast<ssize_t>(message.size());
}

bool SystemdNotifier::reloading() const {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const long long usec = static_cast<long long>(ts.tv_sec) * 1000000LL + ts.tv_nsec / 1000;
  return send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

} // namespace modelmux
