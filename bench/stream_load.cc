// The streaming load client of the benchmark: N concurrent streamed chat completions over
// keep-alive-less connections, all opened at once, each read to its end on one epoll thread. A
// stream counts as complete only with every one of its 20 content chunks and its [DONE]. Prints
// one JSON object: streams, completed, ttfb_p50_ms, ttfb_p99_ms, seconds. With RAMP_SECONDS,
// the streams are opened evenly over that time instead of all at once.
// Usage: modelmux_bench_streams PORT STREAMS [PATH] [BODY_FILE] [RAMP_SECONDS]
#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sstream>
#include <string>
#include <string_view>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Stream {
  int fd = -1;
  std::string request;
  size_t sent = 0;
  std::string raw; // everything received
  bool headers_done = false;
  bool done = false;
  bool ok = false;
  Clock::time_point started;
  double ttfb_ms = -1;
};

// Decodes a chunked body; false until the terminating chunk has arrived.
bool dechunk(const std::string& raw, size_t body_start, std::string& body) {
  size_t at = body_start;
  body.clear();
  for (;;) {
    const size_t line_end = raw.find("\r\n", at);
    if (line_end == std::string::npos) {
      return false;
    }
    const size_t size = std::strtoul(raw.c_str() + at, nullptr, 16);
    if (size == 0) {
      return raw.find("\r\n\r\n", line_end) != std::string::npos || raw.size() >= line_end + 4;
    }
    if (raw.size() < line_end + 2 + size + 2) {
      return false;
    }
    body.append(raw, line_end + 2, size);
    at = line_end + 2 + size + 2;
  }
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) {
    return -1;
  }
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size()) + 0.999999);
  return v[std::min(v.size(), std::max<size_t>(rank, 1)) - 1];
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s PORT STREAMS [PATH] [BODY_FILE] [RAMP_SECONDS]\n", argv[0]);
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  const int port = std::atoi(argv[1]);
  const int n = std::atoi(argv[2]);
  const std::string path = argc > 3 ? argv[3] : "/v1/chat/completions";
  std::string body =
      R"({"model":"bench:m","stream":true,"messages":[{"role":"user","content":"stream please"}]})";
  const double ramp_seconds = argc > 5 ? std::atof(argv[5]) : 0.0;
  if (argc > 4 && std::string_view(argv[4]) != "-") {
    std::ifstream in(argv[4]);
    std::stringstream s;
    s << in.rdbuf();
    body = s.str();
  }
  const std::string request =
      "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
      "Content-Type: application/json\r\nConnection: close\r\n" +
      "anthropic-version: 2023-06-01\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  const int epoll = epoll_create1(0);
  std::vector<Stream> streams(static_cast<size_t>(n));
  const auto begin = Clock::now();
  auto open_stream = [&](size_t i) {
    Stream& s = streams[i];
    s.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    s.request = request;
    s.started = Clock::now();
    epoll_event e{};
    e.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
    e.data.u64 = i;
    epoll_ctl(epoll, EPOLL_CTL_ADD, s.fd, &e);
  };
  size_t opened = 0;
  const auto ramp = std::chrono::duration<double>(ramp_seconds);
  auto open_due = [&] {
    const double share =
        ramp_seconds <= 0 ? 1.0 : std::chrono::duration<double>(Clock::now() - begin) / ramp;
    const size_t due = std::min(
        streams.size(), static_cast<size_t>(share * static_cast<double>(streams.size())) + 1);
    while (opened < due) {
      open_stream(opened++);
    }
  };
  open_due();
  size_t open_streams = streams.size();
  std::vector<epoll_event> events(1024);
  const auto give_up = Clock::now() + std::chrono::seconds(120) + ramp;
  while (open_streams > 0 && Clock::now() < give_up) {
    open_due();
    const int ready = epoll_wait(epoll, events.data(), static_cast<int>(events.size()),
                                 opened < streams.size() ? 5 : 1000);
    for (int k = 0; k < ready; ++k) {
      Stream& s = streams[events[static_cast<size_t>(k)].data.u64];
      if (s.done) {
        continue;
      }
      if ((events[static_cast<size_t>(k)].events & EPOLLOUT) && s.sent < s.request.size()) {
        const ssize_t w = write(s.fd, s.request.data() + s.sent, s.request.size() - s.sent);
        if (w > 0) {
          s.sent += static_cast<size_t>(w);
        }
        if (s.sent == s.request.size()) {
          epoll_event e{};
          e.events = EPOLLIN | EPOLLRDHUP;
          e.data.u64 = events[static_cast<size_t>(k)].data.u64;
          epoll_ctl(epoll, EPOLL_CTL_MOD, s.fd, &e);
        }
      }
      char buf[16384];
      bool closed = false;
      for (;;) {
        const ssize_t r = read(s.fd, buf, sizeof buf);
        if (r > 0) {
          s.raw.append(buf, static_cast<size_t>(r));
          continue;
        }
        closed = r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
        break;
      }
      const size_t head_end = s.raw.find("\r\n\r\n");
      if (head_end != std::string::npos && s.ttfb_ms < 0 && s.raw.size() > head_end + 4) {
        s.ttfb_ms = std::chrono::duration<double, std::milli>(Clock::now() - s.started).count();
      }
      std::string decoded;
      const bool chunked = s.raw.find("chunked") < head_end;
      const bool finished = head_end != std::string::npos &&
                            (chunked ? dechunk(s.raw, head_end + 4, decoded) : closed);
      if (!chunked && head_end != std::string::npos) {
        decoded = s.raw.substr(head_end + 4);
      }
      if (finished || closed) {
        // Every content chunk (OpenAI: "content":"token "; Anthropic: "text":"token ") and the end.
        const size_t pieces = count(decoded, "token ");
        const bool ended = decoded.find("data: [DONE]") != std::string::npos ||
                           decoded.find("event: message_stop") != std::string::npos;
        s.ok = s.raw.compare(0, 12, "HTTP/1.1 200") == 0 && pieces == 20 && ended &&
               decoded.find("\"error\"") == std::string::npos;
        s.done = true;
        close(s.fd);
        --open_streams;
      }
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  std::vector<double> ttfb;
  size_t completed = 0;
  for (const auto& s : streams) {
    completed += s.ok ? 1 : 0;
    if (s.ttfb_ms >= 0) {
      ttfb.push_back(s.ttfb_ms);
    }
  }
  std::printf("{\"streams\": %d, \"completed\": %zu, \"ttfb_p50_ms\": %.3f, \"ttfb_p99_ms\": %.3f, "
              "\"seconds\": %.3f}\n",
              n, completed, percentile(ttfb, 50), percentile(ttfb, 99), seconds);
  return completed == streams.size() ? 0 : 1;
}
