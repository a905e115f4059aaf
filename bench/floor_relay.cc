// The least a proxy can do, for a floor under "added latency": one thread, epoll, each client
// connection paired with a connection of its own to the upstream, bytes copied both ways and
// nothing parsed. What it adds over a direct connection is the kernel's loopback path and the
// waking of a sleeping thread, twice per request; whatever a real proxy adds beyond it is its
// own work. Loopback only. Usage: modelmux_bench_floor_relay LISTEN_PORT UPSTREAM_PORT
#include <arpa/inet.h>
#include <cstdio>
#include <cstdlib>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace {

sockaddr_in loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

void watch(int epoll, int fd) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = fd;
  epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s LISTEN_PORT UPSTREAM_PORT\n", argv[0]);
    return 2;
  }
  const int upstream_port = std::atoi(argv[2]);
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const sockaddr_in address = loopback(std::atoi(argv[1]));
  if (bind(listener, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      listen(listener, 128) != 0) {
    std::perror("listen");
    return 1;
  }
  const int epoll = epoll_create1(0);
  watch(epoll, listener);
  std::vector<int> peer(1 << 16, -1);
  std::vector<char> buffer(1 << 16);
  for (;;) {
    epoll_event events[64];
    const int ready = epoll_wait(epoll, events, 64, -1);
    for (int i = 0; i < ready; ++i) {
      const int fd = events[i].data.fd;
      if (fd == listener) {
        const int client = accept(listener, nullptr, nullptr);
        const int upstream = socket(AF_INET, SOCK_STREAM, 0);
        const sockaddr_in to = loopback(upstream_port);
        if (client < 0 || upstream < 0 || client >= static_cast<int>(peer.size()) ||
            upstream >= static_cast<int>(peer.size()) ||
            connect(upstream, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
          close(client);
          close(upstream);
          continue;
        }
        setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        peer[static_cast<size_t>(client)] = upstream;
        peer[static_cast<size_t>(upstream)] = client;
        watch(epoll, client);
        watch(epoll, upstream);
        continue;
      }
      const ssize_t got = recv(fd, buffer.data(), buffer.size(), 0);
      const int other = peer[static_cast<size_t>(fd)];
      if (got <= 0 || send(other, buffer.data(), static_cast<size_t>(got), MSG_NOSIGNAL) != got) {
        close(other);
        close(fd);
      }
    }
  }
}
