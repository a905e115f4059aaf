// A fast OpenAI-compatible mock upstream for the benchmark: one thread, epoll, keep-alive
// HTTP/1.1. A chat request answers at once with a 684-byte completion; a streaming one answers
// 20 SSE chunks 50 ms apart, then [DONE], from a timer heap, so a thousand slow streams cost it
// nothing but memory. It must never be the bottleneck of what it measures.
// Usage: modelmux_bench_upstream [CHUNK_GAP_MS [ANSWER_DELAY_MS]]  (prints the port it listens
// on, on 127.0.0.1; the gap between stream chunks defaults to 50 ms; a whole answer waits
// ANSWER_DELAY_MS, default 0, like a model server taking its time)
#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <queue>
#include <string>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <unordered_map>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr int k_chunks = 20;
auto k_chunk_gap = std::chrono::milliseconds(50);
auto k_answer_delay = std::chrono::milliseconds(0);
// Conn::chunks_sent when a whole answer waits for its delay.
constexpr int k_answer_waiting = -2;

std::string completion_body() {
  std::string content(433, 'x'); // pads the answer to the 684 bytes the bench quotes
  std::string body = R"({"id":"chatcmpl-bench","object":"chat.completion","created":1741569952,)"
                     R"("model":"bench","choices":[{"index":0,"message":{"role":"assistant",)"
                     R"("content":")" +
                     content +
                     R"("},"finish_reason":"stop"}],"usage":{"prompt_tokens":250,)"
                     R"("completion_tokens":100,"total_tokens":350}})";
  return body;
}

std::string chunk(const std::string& data) {
  char size[16];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return size + data + "\r\n";
}

struct Conn {
  int fd = -1;
  std::string in;
  std::string out;
  int chunks_sent = -1; // a stream in progress when >= 0; k_answer_waiting: a delayed answer
};

class Server {
public:
  explicit Server(int listen_fd) : m_listen(listen_fd) {
    m_epoll = epoll_create1(0);
    add(m_listen, EPOLLIN);
    const std::string body = completion_body();
    m_answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n\r\n" + body;
    const std::string models = R"({"object":"list","data":[]})";
    m_models = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
               std::to_string(models.size()) + "\r\n\r\n" + models;
  }

  void run() {
    std::vector<epoll_event> events(1024);
    for (;;) {
      int timeout = -1;
      if (!m_timers.empty()) {
        const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
            m_timers.top().first - Clock::now());
        timeout = static_cast<int>(std::max<int64_t>(0, wait.count()));
      }
      const int n = epoll_wait(m_epoll, events.data(), static_cast<int>(events.size()), timeout);
      for (int i = 0; i < n; ++i) {
        const int fd = events[static_cast<size_t>(i)].data.fd;
        if (fd == m_listen) {
          accept_all();
        } else if (events[static_cast<size_t>(i)].events & (EPOLLERR | EPOLLHUP)) {
          close_conn(fd);
        } else {
          if (events[static_cast<size_t>(i)].events & EPOLLIN) {
            on_readable(fd);
          }
          if (m_conns.count(fd) && (events[static_cast<size_t>(i)].events & EPOLLOUT)) {
            flush(*m_conns[fd]);
          }
        }
      }
      const auto now = Clock::now();
      while (!m_timers.empty() && m_timers.top().first <= now) {
        const int fd = m_timers.top().second;
        m_timers.pop();
        const auto it = m_conns.find(fd);
        if (it != m_conns.end()) {
          next_chunk(*it->second);
        }
      }
    }
  }

private:
  void add(int fd, uint32_t events) {
    epoll_event e{};
    e.events = events;
    e.data.fd = fd;
    epoll_ctl(m_epoll, EPOLL_CTL_ADD, fd, &e);
  }

  void accept_all() {
    for (;;) {
      const int fd = accept4(m_listen, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        return;
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto c = std::make_unique<Conn>();
      c->fd = fd;
      m_conns[fd] = std::move(c);
      add(fd, EPOLLIN | EPOLLRDHUP);
    }
  }

  void close_conn(int fd) {
    if (m_conns[fd]->chunks_sent == k_answer_waiting) {
      --m_pending;
    }
    epoll_ctl(m_epoll, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
    m_conns.erase(fd);
  }

  void on_readable(int fd) {
    Conn& c = *m_conns[fd];
    char buf[16384];
    for (;;) {
      const ssize_t n = read(fd, buf, sizeof buf);
      if (n > 0) {
        c.in.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        close_conn(fd);
        return;
      }
      break;
    }
    // Every complete request in the buffer, in order (a stream holds the connection).
    while (c.chunks_sent == -1) {
      const size_t end = c.in.find("\r\n\r\n");
      if (end == std::string::npos) {
        return;
      }
      size_t length = 0;
      const size_t cl = c.in.find("Content-Length:");
      const size_t cl_lower = c.in.find("content-length:");
      const size_t at = cl < end ? cl : cl_lower;
      if (at < end) {
        length = std::strtoul(c.in.c_str() + at + 15, nullptr, 10);
      }
      if (c.in.size() < end + 4 + length) {
        return;
      }
      const bool get = c.in.compare(0, 4, "GET ") == 0;
      const bool stats = c.in.compare(0, 11, "GET /stats ") == 0;
      const std::string_view body(c.in.data() + end + 4, length);
      const bool stream = body.find("\"stream\":true") != std::string_view::npos ||
                          body.find("\"stream\": true") != std::string_view::npos;
      c.in.erase(0, end + 4 + length);
      if (stats) {
        // How many delayed answers were pending at once, at most: what a model server with
        // slots would have had to hold (for bench/spill.sh).
        const std::string json = "{\"max_pending\":" + std::to_string(m_max_pending) + "}";
        c.out += "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                 std::to_string(json.size()) + "\r\n\r\n" + json;
      } else if (get) {
        c.out += m_models;
      } else if (stream) {
        c.out += "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n";
        c.chunks_sent = 0;
        next_chunk(c);
        return;
      } else if (k_answer_delay.count() > 0) {
        c.chunks_sent = k_answer_waiting;
        m_max_pending = std::max(m_max_pending, ++m_pending);
        m_timers.emplace(Clock::now() + k_answer_delay, c.fd);
        return;
      } else {
        c.out += m_answer;
      }
      flush(c);
      if (!m_conns.count(fd)) {
        return;
      }
    }
  }

  void next_chunk(Conn& c) {
    static const std::string delta = chunk(
        R"(data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1741569952,)"
        R"("model":"bench","choices":[{"index":0,"delta":{"content":"token "},)"
        R"("finish_reason":null}]})"
        "\n\n");
    static const std::string tail =
        chunk(R"(data: {"id":"chatcmpl-bench","object":"chat.completion.chunk",)"
              R"("created":1741569952,"model":"bench","choices":[{"index":0,"delta":{},)"
              R"("finish_reason":"stop"}]})"
              "\n\n") +
        chunk(R"(data: {"id":"chatcmpl-bench","object":"chat.completion.chunk",)"
              R"("created":1741569952,"model":"bench","choices":[],"usage":)"
              R"({"prompt_tokens":250,"completion_tokens":20,"total_tokens":270}})"
              "\n\n") +
        chunk("data: [DONE]\n\n") + "0\r\n\r\n";
    if (c.chunks_sent == k_answer_waiting) {
      --m_pending;
      c.out += m_answer;
      c.chunks_sent = -1;
    } else if (c.chunks_sent < k_chunks) {
      c.out += delta;
      ++c.chunks_sent;
      m_timers.emplace(Clock::now() + k_chunk_gap, c.fd);
    } else {
      c.out += tail;
      c.chunks_sent = -1;
    }
    const int fd = c.fd;
    flush(c);
    // A pipelined request that waited for the stream to end.
    if (m_conns.count(fd) && c.chunks_sent == -1 && !c.in.empty()) {
      on_readable(fd);
    }
  }

  void flush(Conn& c) {
    while (!c.out.empty()) {
      const ssize_t n = write(c.fd, c.out.data(), c.out.size());
      if (n > 0) {
        c.out.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        epoll_event e{};
        e.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
        e.data.fd = c.fd;
        epoll_ctl(m_epoll, EPOLL_CTL_MOD, c.fd, &e);
        return;
      }
      close_conn(c.fd);
      return;
    }
  }

  int m_listen;
  int m_epoll;
  std::string m_answer;
  std::string m_models;
  std::unordered_map<int, std::unique_ptr<Conn>> m_conns;
  int m_pending = 0;
  int m_max_pending = 0;
  using Timer = std::pair<Clock::time_point, int>;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> m_timers;
};

} // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  if (argc > 1) {
    k_chunk_gap = std::chrono::milliseconds(std::atoi(argv[1]));
  }
  if (argc > 2) {
    k_answer_delay = std::chrono::milliseconds(std::atoi(argv[2]));
  }
  // As many descriptors as the hard limit allows: the 9,000-stream run needs 9,000.
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 4096) != 0) {
    std::perror("listen");
    return 1;
  }
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::printf("%d\n", ntohs(addr.sin_port));
  std::fflush(stdout);
  Server(fd).run();
}
