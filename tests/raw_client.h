// A raw client socket for tests that need bytes no HTTP library would send or must see exactly
// what came back: connect, send, read until closed or until a condition holds, and the status.
#pragma once

#include <arpa/inet.h>
#include <chrono>
#include <functional>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <unistd.h>

namespace modelmux::testing {

inline int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

inline void send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      return; // the peer closed; what it answered is still readable
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

struct Received {
  std::string bytes;
  bool closed = false; // the peer closed (or reset) the connection before the deadline
};

// Reads until the peer closes or until `until` returns true for what arrived, within cap.
inline Received read_from(int fd, std::chrono::milliseconds cap,
                          const std::function<bool(const std::string&)>& until = {}) {
  Received r;
  const auto deadline = std::chrono::steady_clock::now() + cap;
  while (!(until && until(r.bytes))) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return r;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      return r;
    }
    char buf[65536];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      r.closed = true;
      return r;
    }
    r.bytes.append(buf, static_cast<size_t>(n));
  }
  return r;
}

inline int status_of(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0 || response.size() < 12) {
    return 0;
  }
  return std::stoi(response.substr(9, 3));
}

} // namespace modelmux::testing
