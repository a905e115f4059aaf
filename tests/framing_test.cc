// HTTP/1.1 framing (SPEC §6, RFC 9112): the pure rules, then modelmux held against nginx on the
// same raw byte sequences over loopback. nginx (Debian's, one worker, its own config in a temp
// prefix) proxies to a second nginx server that answers 200; modelmux serves a mock model. Each
// case's bytes go to both; what each answered (statuses, and whether it closed) is compared. A
// case agrees with nginx, or names the RFC rule by which modelmux departs from it and what the
// rule requires of modelmux: refuse and close. Nothing else may differ.
#include "fake_upstream.h"
#include "modelmux/framing.h"
#include "raw_client.h"

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <filesystem>
#include <fstream>
#include <signal.h>
#include <sys/wait.h>

using namespace modelmux;
using namespace modelmux::testing;
using namespace std::chrono_literals;

namespace {

std::optional<FramingRefusal> judge(unsigned version,
                                    std::vector<std::pair<std::string, std::string>> fields) {
  RequestFraming framing;
  for (const auto& [name, value] : fields) {
    framing.field(name, value);
  }
  return framing.verdict(version);
}

int status(const std::optional<FramingRefusal>& r) {
  return r ? r->status : 0;
}

} // namespace

TEST_CASE("a request head frames by Content-Length or by chunked alone") {
  CHECK(status(judge(11, {{"Host", "x"}, {"Content-Length", "5"}})) == 0);
  CHECK(status(judge(11, {{"Host", "x"}, {"Transfer-Encoding", "chunked"}})) == 0);
  CHECK(status(judge(11, {{"host", "x"}, {"transfer-encoding", " Chunked "}})) == 0);
  CHECK(status(judge(10, {{"Content-Length", "5"}})) == 0);
}

TEST_CASE("a Transfer-Encoding whose last coding is not chunked is a 400, one modelmux cannot "
          "decode a 501") {
  CHECK(status(judge(11, {{"Host", "x"}, {"Transfer-Encoding", "gzip"}})) == 400);
  CHECK(status(judge(11, {{"Host", "x"}, {"Transfer-Encoding", "chunked, gzip"}})) == 400);
  CHECK(status(judge(11, {{"Host", "x"},
                          {"Transfer-Encoding", "chunked"},
                          {"Transfer-Encoding", "chunked"}})) == 400);
  CHECK(status(judge(11, {{"Host", "x"}, {"Transfer-Encoding", "identity"}})) == 400);
  const auto gzip = judge(11, {{"Host", "x"}, {"Transfer-Encoding", "gzip, chunked"}});
  CHECK(status(gzip) == 501);
  CHECK(gzip->message == "a transfer coding other than chunked");
  CHECK(status(judge(11, {{"Host", "x"},
                          {"Transfer-Encoding", "gzip"},
                          {"Transfer-Encoding", "chunked"}})) == 501);
}

TEST_CASE("Content-Length with Transfer-Encoding, and Transfer-Encoding in HTTP/1.0, are refused") {
  CHECK(judge(11, {{"Host", "x"}, {"Transfer-Encoding", "identity"}, {"Content-Length", "5"}})
            ->message == "both Content-Length and Transfer-Encoding");
  CHECK(judge(11, {{"Host", "x"}, {"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}})
            ->message == "both Content-Length and Transfer-Encoding");
  CHECK(judge(10, {{"Transfer-Encoding", "chunked"}})->message ==
        "Transfer-Encoding in an HTTP/1.0 request");
}

TEST_CASE("repeated or listed Content-Lengths and a missing or repeated Host are refused") {
  CHECK(judge(11, {{"Host", "x"}, {"Content-Length", "5"}, {"Content-Length", "5"}})->message ==
        "more than one Content-Length");
  CHECK(status(judge(11, {{"Host", "x"}, {"Content-Length", "5, 5"}})) == 400);
  CHECK(judge(11, {{"Content-Length", "5"}})->message ==
        "an HTTP/1.1 request without a Host header");
  CHECK(judge(11, {{"Host", "x"}, {"Host", "y"}})->message == "more than one Host header");
  CHECK(status(judge(10, {{"Host", "x"}, {"Host", "y"}})) == 400);
}

TEST_CASE("a header value with a NUL, CR or LF is refused, and so is an HTTP version but 1.0 and "
          "1.1") {
  CHECK(status(judge(11, {{"Host", "x"}, {"X-A", std::string("a\0b", 3)}})) == 400);
  CHECK(status(judge(11, {{"Host", "x"}, {"X-A", "a\rb"}})) == 400);
  CHECK(status(judge(11, {{"Host", "x"}, {"X-A", "a\r\n b"}})) == 400);
  CHECK(status(judge(20, {{"Host", "x"}})) == 505);
  CHECK(status(judge(9, {})) == 505);
}

TEST_CASE("a bare LF in bytes waiting to end a line is found") {
  CHECK_FALSE(holds_bare_lf(""));
  CHECK_FALSE(holds_bare_lf("5;a=b\r\nhel"));
  CHECK_FALSE(holds_bare_lf("\r\n5\r"));
  CHECK(holds_bare_lf("5\nhello"));
  CHECK(holds_bare_lf("\n"));
  CHECK(holds_bare_lf("5\r\nab\ncd"));
}

TEST_CASE("a head's lines end in CRLF and never fold") {
  CHECK(head_line_fault("POST / HTTP/1.1\r\nHost: x\r\n\r\n") == HeadLineFault::none);
  CHECK(head_line_fault("POST / HTTP/1.1\r\nHo") == HeadLineFault::none);
  CHECK(head_line_fault("GET / HTTP/1.1\nHost: x\n\n") == HeadLineFault::bare_lf);
  CHECK(head_line_fault("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n") == HeadLineFault::obs_fold);
  CHECK(head_line_fault("GET / HTTP/1.1\r\nX: a\r\n\tb") == HeadLineFault::obs_fold);
  // What follows the head is a body: its own newlines and indents are not the head's, also
  // when the parser has taken every line of the head but the empty one that ends it.
  CHECK(head_line_fault("\r\n{\n  \"a\": 1\n}") == HeadLineFault::none);
  CHECK(head_line_fault("POST / HTTP/1.1\r\nHost: x\r\n\r\n{\n  \"a\": 1\n}") ==
        HeadLineFault::none);
}

// ---- modelmux against nginx ----

namespace {

// What a server answered to one case: the final statuses in order (1xx left out) and whether it
// closed the connection.
struct Answer {
  std::vector<int> statuses;
  bool closed = false;
  std::string raw;
};

// The statuses of the responses in bytes, parsed with Beast as a client would.
std::vector<int> statuses_in(std::string_view bytes) {
  namespace http = boost::beast::http;
  std::vector<int> out;
  while (!bytes.empty()) {
    http::response_parser<http::string_body> parser;
    parser.eager(true);
    boost::system::error_code ec;
    const size_t used = parser.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
    if (ec || !parser.is_done()) {
      break;
    }
    bytes.remove_prefix(used);
    const int code = parser.get().result_int();
    if (code >= 200) {
      out.push_back(code);
    }
  }
  return out;
}

Answer ask(int port, const std::string& bytes) {
  Answer a;
  const int fd = connect_to(port);
  REQUIRE(fd >= 0);
  send_all(fd, bytes);
  const auto r = read_from(fd, 3s);
  ::close(fd);
  a.closed = r.closed;
  a.raw = r.bytes;
  a.statuses = statuses_in(r.bytes);
  return a;
}

bool refused(int code) {
  return code >= 400;
}

// Same number of answers, each served or refused alike, and the connection left alike.
bool alike(const Answer& a, const Answer& b) {
  if (a.statuses.size() != b.statuses.size() || a.closed != b.closed) {
    return false;
  }
  for (size_t i = 0; i < a.statuses.size(); ++i) {
    if (refused(a.statuses[i]) != refused(b.statuses[i])) {
      return false;
    }
  }
  return true;
}

// What the RFC requires where modelmux departs from nginx: one refusal, then the connection
// closed, nothing after the faulty request read as a request.
bool refused_and_closed(const Answer& a) {
  return a.statuses.size() == 1 && refused(a.statuses[0]) && a.closed;
}

struct Case {
  std::string name;
  std::string bytes;
  // Empty: modelmux must agree with nginx. Else the rule by which it refuses and closes,
  // whatever nginx does.
  std::string rfc = {};
  // A last request with Connection: close follows the case's bytes, so a server that kept the
  // connection answers it and closes; off where it would complete an unfinished case.
  bool probe = true;
};

const std::string k_body = R"({"model":"custom:demo","messages":[{"role":"user","content":"hi"}]})";
const std::string k_cl = "Content-Length: " + std::to_string(k_body.size()) + "\r\n";
const std::string k_post = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                           "Content-Type: application/json\r\n";
const std::string k_hidden = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
const std::string k_probe = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

std::string hex(size_t n) {
  char b[20];
  std::snprintf(b, sizeof b, "%zx", n);
  return b;
}

// The body as one chunk, then the last chunk.
std::string chunked_body(const std::string& size_suffix = "") {
  return hex(k_body.size()) + size_suffix + "\r\n" + k_body + "\r\n0\r\n\r\n";
}

std::vector<Case> cases() {
  const std::string post = k_post + k_cl + "\r\n" + k_body;
  const std::string te = k_post + "Transfer-Encoding: chunked\r\n";
  std::string many_headers;
  for (int i = 0; i < 300; ++i) {
    many_headers += "X-H" + std::to_string(i) + ": v\r\n";
  }
  // A request whose body, read by the wrong framing, is a second request.
  const auto smuggle = [&](const std::string& framing) {
    return k_post + framing + "\r\n" + hex(k_hidden.size()) + "\r\n" + k_hidden + "\r\n0\r\n\r\n";
  };
  return {
      {"a POST framed by Content-Length", post},
      {"a POST framed by chunked", te + "\r\n" + chunked_body()},
      {"chunk extensions", te + "\r\n" + chunked_body(";name=value;flag")},
      {"a chunk size in upper case with leading zeros", te + "\r\n00" +
                                                            [] {
                                                              auto h = hex(k_body.size());
                                                              for (auto& c : h) {
                                                                c = static_cast<char>(
                                                                    std::toupper(c));
                                                              }
                                                              return h;
                                                            }() +
                                                            "\r\n" + k_body + "\r\n0\r\n\r\n"},
      {"the body in several chunks", te + "\r\n" + hex(10) + "\r\n" + k_body.substr(0, 10) +
                                         "\r\n" + hex(k_body.size() - 10) + "\r\n" +
                                         k_body.substr(10) + "\r\n0\r\n\r\n"},
      {"a trailer field after the last chunk",
       te + "\r\n" + hex(k_body.size()) + "\r\n" + k_body + "\r\n0\r\nX-Trailer: t\r\n\r\n"},
      {"Transfer-Encoding in another case and with spaces",
       k_post + "Transfer-Encoding:  Chunked \r\n\r\n" + chunked_body()},
      {"Transfer-Encoding: gzip, a hidden request as its body",
       smuggle("Transfer-Encoding: gzip\r\n"), "RFC 9112 §6.3: chunked not last, 400 and close"},
      {"Transfer-Encoding: chunked, gzip", smuggle("Transfer-Encoding: chunked, gzip\r\n"),
       "RFC 9112 §6.3: chunked not last, 400 and close"},
      {"Transfer-Encoding: gzip, chunked", smuggle("Transfer-Encoding: gzip, chunked\r\n"),
       "RFC 9112 §6.1: a coding not understood, 501, and close"},
      {"Transfer-Encoding: chunked twice",
       smuggle("Transfer-Encoding: chunked\r\n"
               "Transfer-Encoding: chunked\r\n"),
       "RFC 9112 §7: chunked applied more than once"},
      {"Transfer-Encoding: identity with Content-Length",
       k_post + "Transfer-Encoding: identity\r\n" + k_cl + "\r\n" + k_body,
       "RFC 9112 §6.1: both, faulty framing (SPEC §6: refuse and close)"},
      {"Transfer-Encoding then Content-Length",
       k_post + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" + chunked_body(),
       "RFC 9112 §6.1: both, faulty framing (SPEC §6: refuse and close)"},
      {"Content-Length then Transfer-Encoding",
       k_post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked_body(),
       "RFC 9112 §6.1: both, faulty framing (SPEC §6: refuse and close)"},
      {"Transfer-Encoding in HTTP/1.0",
       "POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n"
       "Transfer-Encoding: chunked\r\n\r\n" +
           chunked_body(),
       "RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing, close"},
      {"an HTTP/1.1 request without Host", "GET /health HTTP/1.1\r\n\r\n",
       "RFC 9112 §3.2: no Host, 400"},
      {"two Host headers", "GET /health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
       "RFC 9112 §3.2: more than one Host, 400"},
      {"an HTTP/1.0 request without Host", "GET /health HTTP/1.0\r\n\r\n"},
      {"two equal Content-Lengths", k_post + k_cl + k_cl + "\r\n" + k_body},
      {"two different Content-Lengths", k_post + k_cl + "Content-Length: 5\r\n\r\n" + k_body},
      {"a listed Content-Length",
       k_post + "Content-Length: " + std::to_string(k_body.size()) + ", " +
           std::to_string(k_body.size()) + "\r\n\r\n" + k_body,
       "RFC 9110 §8.6: a list may be refused; modelmux frames by one number only"},
      {"a signed Content-Length", k_post + "Content-Length: +5\r\n\r\n" + k_body},
      {"a Content-Length that is not a number", k_post + "Content-Length: abc\r\n\r\n" + k_body},
      {"a chunk-size line ending in a bare LF",
       te + "\r\n" + hex(k_body.size()) + "\n" + k_body + "\n0\n\n",
       "RFC 9112 §7.1: chunk lines end in CRLF; refused at once, not at the read deadline", false},
      {"a chunk size that is not hex", te + "\r\nzz\r\n" + k_body + "\r\n0\r\n\r\n"},
      {"a chunk size past 64 bits", te + "\r\nfffffffffffffffffff\r\n" + k_body + "\r\n0\r\n\r\n"},
      {"chunk data longer than its size", te + "\r\n5\r\n" + k_body + "\r\n0\r\n\r\n"},
      {"an obs-fold continuation line", k_post + k_cl + "X-Folded: a\r\n b\r\n\r\n" + k_body},
      {"whitespace between a field name and its colon",
       k_post + "Content-Length : " + std::to_string(k_body.size()) + "\r\n\r\n" + k_body},
      {"a NUL in a header value",
       k_post + k_cl + "X-Nul: a" + std::string(1, '\0') + "b\r\n\r\n" + k_body},
      {"a bare CR in a header value", k_post + k_cl + "X-Cr: a\rb\r\n\r\n" + k_body},
      {"a header line of 70 KB",
       k_post + k_cl + "X-Long: " + std::string(70000, 'a') + "\r\n\r\n" + k_body},
      {"a URL of 70 KB", "GET /health?" + std::string(70000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n"},
      {"300 header fields", k_post + k_cl + many_headers + "\r\n" + k_body,
       "RFC 9110 §15.5: a server may refuse more fields than it processes (431)"},
      {"three pipelined requests", post + post + post},
      {"Expect: 100-continue", k_post + k_cl + "Expect: 100-continue\r\n\r\n" + k_body},
      {"HTTP/1.0 with keep-alive",
       "POST /v1/chat/completions HTTP/1.0\r\nConnection: keep-alive\r\n" + k_cl +
           "Content-Type: application/json\r\n\r\n" + k_body},
      {"HTTP/1.0 without keep-alive", "POST /v1/chat/completions HTTP/1.0\r\n" + k_cl +
                                          "Content-Type: application/json\r\n\r\n" + k_body},
      {"an absolute-form request target",
       "POST http://127.0.0.1/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
       "Content-Type: application/json\r\n" +
           k_cl + "\r\n" + k_body},
      {"an empty line before the request line", "\r\n" + post},
      {"lines ending in a bare LF", "GET /health HTTP/1.1\nHost: x\n\n",
       "RFC 9112 §2.2: a bare LF may be refused; modelmux frames by CRLF only", false},
      {"HTTP/2.0 in an HTTP/1 request line", "GET /health HTTP/2.0\r\nHost: x\r\n\r\n",
       "RFC 9110 §15.6.6: a major version not supported, 505"},
  };
}

// nginx as a reverse proxy in front of a server that answers 200, one worker, in a temp prefix.
class Nginx {
public:
  Nginx() {
    m_prefix = std::filesystem::temp_directory_path() /
               ("modelmux-framing-nginx-" + std::to_string(::getpid()));
    std::filesystem::create_directories(m_prefix / "logs");
    m_port = free_port();
    const int backend = free_port();
    const auto p = m_prefix.string();
    std::ofstream(m_prefix / "nginx.conf")
        << "daemon off;\nmaster_process off;\nworker_processes 1;\npid " << p
        << "/nginx.pid;\nerror_log " << p << "/logs/error.log;\n"
        << "events { worker_connections 256; }\n"
        << "http {\n  access_log off;\n  client_body_temp_path " << p
        << "/body;\n  proxy_temp_path " << p << "/proxy;\n  fastcgi_temp_path " << p
        << "/fastcgi;\n  uwsgi_temp_path " << p << "/uwsgi;\n  scgi_temp_path " << p << "/scgi;\n"
        << "  server { listen 127.0.0.1:" << m_port
        << "; location / { proxy_pass http://127.0.0.1:" << backend
        << "; proxy_http_version 1.1; } }\n"
        << "  server { listen 127.0.0.1:" << backend
        << "; location / { return 200 \"ok\\n\"; } }\n}\n";
    m_pid = ::fork();
    if (m_pid == 0) {
      ::execl("/usr/sbin/nginx", "nginx", "-p", p.c_str(), "-c", (p + "/nginx.conf").c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 2000; ++i) { // until it listens, at most 10 s
      const int fd = connect_to(m_port);
      if (fd >= 0) {
        ::close(fd);
        m_up = true;
        return;
      }
      std::this_thread::sleep_for(5ms);
    }
  }
  ~Nginx() {
    if (m_pid > 0) {
      ::kill(m_pid, SIGTERM);
      ::waitpid(m_pid, nullptr, 0);
    }
    std::filesystem::remove_all(m_prefix);
  }
  bool up() const { return m_up; }
  int port() const { return m_port; }

private:
  static int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
  }

  std::filesystem::path m_prefix;
  int m_port = 0;
  pid_t m_pid = -1;
  bool m_up = false;
};

std::string describe(const Answer& a) {
  std::string s = "[";
  for (const int code : a.statuses) {
    s += (s.size() > 1 ? " " : "") + std::to_string(code);
  }
  return s + (a.closed ? "] closed" : "] open");
}

} // namespace

TEST_CASE("modelmux frames requests as nginx does, or refuses and closes where RFC 9112 requires") {
  REQUIRE_MESSAGE(std::filesystem::exists("/usr/sbin/nginx"),
                  "nginx is not installed (.ci/run installs nginx-light)");
  Nginx nginx;
  REQUIRE(nginx.up());
  TestDaemon d("server: {read_timeout: 2s}\ncustom_models:\n  - {id: demo, type: mock}\n");
  int agree = 0;
  int departs = 0;
  const auto all = cases();
  for (const auto& c : all) {
    CAPTURE(c.name);
    const std::string bytes = c.bytes + (c.probe ? k_probe : "");
    const auto ours = ask(d.port(), bytes);
    const auto theirs = ask(nginx.port(), bytes);
    MESSAGE(c.name << ": modelmux " << describe(ours) << ", nginx " << describe(theirs));
    if (c.rfc.empty()) {
      CHECK_MESSAGE(alike(ours, theirs), "modelmux " << describe(ours) << " nginx "
                                                     << describe(theirs) << "\n"
                                                     << ours.raw.substr(0, 400));
      agree += alike(ours, theirs) ? 1 : 0;
    } else {
      CHECK_MESSAGE(refused_and_closed(ours), c.rfc << ": modelmux " << describe(ours) << "\n"
                                                    << ours.raw.substr(0, 400));
      if (refused_and_closed(ours)) {
        (alike(ours, theirs) ? agree : departs) += 1;
      }
    }
  }
  MESSAGE(all.size() << " cases: " << agree << " agree with nginx, " << departs
                     << " depart as the RFC requires, "
                     << all.size() - static_cast<size_t>(agree + departs) << " differ otherwise");
  CHECK(static_cast<size_t>(agree + departs) == all.size());
  // Nothing hidden in a body reached a route: the daemon served only what the cases sent as
  // requests, and still serves.
  const auto r = d.client().Get("/health");
  REQUIRE(r);
  CHECK(r->status == 200);
}
