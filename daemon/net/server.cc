// The front door on the event loops: one acceptor hands connections to the workers in turn;
// each connection is a coroutine reading requests with Beast's parser (pipelined ones in order),
// answering modelmux's own routes at once and proxied ones through the proxy coroutine.
#include "modelmux/server.h"

#include "modelmux/framing.h"
#include "modelmux/routes.h"
#include "net/client_reply.h"
#include "net/http_io.h"
#include "net/proxy.h"
#include "net/redis_link.h"
#include "net/worker.h"

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace modelmux {

namespace net {

namespace http = beast::http;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto k_use = asio::as_tuple(asio::use_awaitable);
constexpr size_t k_max_headers = 256;
constexpr size_t k_header_limit = 64 * 1024;
// How long an idle keep-alive connection is kept: it costs a descriptor and a few KiB, no
// thread. SDK clients drop theirs sooner (4-5 s); a drain closes them at once.
constexpr auto k_keep_alive_idle = std::chrono::seconds(75);
// A client that does not take the bytes of an answer for this long is gone.
constexpr auto k_write_timeout = std::chrono::seconds(60);

} // namespace

// What every worker shares: the app, the limits of the moment, the drain flag and the count of
// open connections against server.max_connections.
struct Shared {
  explicit Shared(App& a) : app(a) {}
  App& app;
  std::atomic<bool> draining{false};
  std::atomic<int> connections{0};
};

class Connection final : public ClientReply {
public:
  Connection(Worker& worker, Shared& shared, tcp::socket socket)
      : m_worker(worker), m_shared(shared), m_socket(std::move(socket)),
        m_deadline(worker.deadlines) {
    m_position = m_worker.connections.insert(m_worker.connections.end(), this);
  }
  ~Connection() override { m_worker.connections.erase(m_position); }

  Task<void> run();

  // A drain closes a connection that waits for its next request; one busy with a request
  // finishes it and then closes.
  void close_if_idle() {
    if (!m_busy) {
      error_code ignored;
      m_socket.shutdown(tcp::socket::shutdown_both, ignored);
      m_socket.close(ignored);
    }
  }
  void close_now() {
    error_code ignored;
    m_socket.close(ignored);
  }

  Task<bool> send(HttpResponse& response) override;
  Task<bool> begin_stream(HttpResponse& head) override;
  Task<bool> write(std::string_view bytes) override;
  Task<bool> end_stream() override;

private:
  Task<bool> read_request(http::request_parser<http::string_body>& parser, HttpResponse& refusal);
  Task<void> handle(HttpRequest& request);
  void write_head(const HttpResponse& response, bool chunked, size_t content_length);
  void drop_empty_lines() {
    const auto* bytes = static_cast<const char*>(m_buffer.data().data());
    size_t n = 0;
    while (n < m_buffer.size() &&
           (bytes[n] == '\n' ||
            (bytes[n] == '\r' && n + 1 < m_buffer.size() && bytes[n + 1] == '\n'))) {
      n += bytes[n] == '\r' ? 2 : 1;
    }
    m_buffer.consume(n);
  }
  void expires_after(std::chrono::steady_clock::duration within) {
    m_deadline.arm(m_socket, std::chrono::steady_clock::now() + within);
  }
  // After this answer the connection ends: the client asked, or a drain is on and no pipelined
  // request waits (one that does is read, and answered 503).
  bool closing() const {
    return !m_keep_alive ||
           (m_shared.draining.load(std::memory_order_relaxed) && m_buffer.size() == 0);
  }

  Worker& m_worker;
  Shared& m_shared;
  tcp::socket m_socket;
  Deadline m_deadline; // of the read or write in progress
  beast::flat_buffer m_buffer;
  std::string m_head; // reused for every response head
  bool m_busy = false;
  bool m_keep_alive = true;
  bool m_head_request = false;
  std::list<Connection*>::iterator m_position;
};

namespace {

std::string_view reason_of(int status) {
  const auto reason = http::obsolete_reason(static_cast<http::status>(status));
  return reason.empty() ? std::string_view("Unknown")
                        : std::string_view(reason.data(), reason.size());
}

void refuse(HttpResponse& res, int status, Protocol protocol, ErrorKind kind, std::string message) {
  set_error(res, protocol, make_error(kind, std::move(message)));
  res.status = status;
}

std::string_view view(beast::string_view s) {
  return std::string_view(s.data(), s.size());
}

// RFC 9112's framing rules over a parsed head (SPEC §6); nullopt when it may be served.
std::optional<FramingRefusal>
framing_refusal(const http::request_parser<http::string_body>::value_type& head) {
  RequestFraming framing;
  for (const auto& field : head) {
    framing.field(view(field.name_string()), view(field.value()));
  }
  return framing.verdict(head.version());
}

// A head's lines are judged before Beast parses them (it would join an obs-fold and wait for
// a CR after a bare LF); a read that waits for the rest of a chunk-size line or trailer is
// refused at once when what it holds has a bare LF: it would never end.
boost::system::error_code refuse_faulty_lines(const http::basic_parser<true>& parser,
                                              const beast::flat_buffer& pending) {
  const std::string_view bytes(static_cast<const char*>(pending.data().data()), pending.size());
  if (!parser.is_header_done()) {
    switch (head_line_fault(bytes)) {
    case HeadLineFault::none:
      return {};
    case HeadLineFault::bare_lf:
      return http::error::bad_line_ending;
    case HeadLineFault::obs_fold:
      return http::error::bad_value;
    }
  }
  if (parser.chunked() && holds_bare_lf(bytes)) {
    return http::error::bad_chunk;
  }
  return {};
}

// The path of a request target in origin form ("/v1/models?x") or absolute form
// ("http://host:port/v1/models?x", which a server must accept: RFC 9112 §3.2.2).
std::string_view path_of(std::string_view target) {
  if (!target.starts_with('/')) {
    const size_t scheme = target.find("://");
    if (scheme != std::string_view::npos) {
      const size_t path = target.find('/', scheme + 3);
      target = path == std::string_view::npos ? std::string_view("/") : target.substr(path);
    }
  }
  return target;
}

} // namespace

void Connection::write_head(const HttpResponse& response, bool chunked, size_t content_length) {
  m_head.clear();
  m_head += "HTTP/1.1 ";
  m_head += std::to_string(response.status);
  m_head += ' ';
  m_head += reason_of(response.status);
  m_head += "\r\n";
  for (const auto& [name, value] : response.headers) {
    m_head += name;
    m_head += ": ";
    m_head += value;
    m_head += "\r\n";
  }
  if (!response.content_type.empty()) {
    m_head += "Content-Type: ";
    m_head += response.content_type;
    m_head += "\r\n";
  }
  if (chunked) {
    m_head += "Transfer-Encoding: chunked\r\n";
  } else {
    m_head += "Content-Length: ";
    m_head += std::to_string(content_length);
    m_head += "\r\n";
  }
  if (closing()) {
    m_head += "Connection: close\r\n";
  }
  m_head += "\r\n";
}

Task<bool> Connection::send(HttpResponse& response) {
  if (closing()) {
    m_keep_alive = false;
  }
  write_head(response, false, response.body.size());
  expires_after(k_write_timeout);
  const std::array<asio::const_buffer, 2> buffers{
      asio::buffer(m_head), m_head_request ? asio::const_buffer() : asio::buffer(response.body)};
  const auto ec = co_await write_all(m_socket, buffers);
  m_deadline.disarm();
  co_return !ec;
}

Task<bool> Connection::begin_stream(HttpResponse& head) {
  if (closing()) {
    m_keep_alive = false;
  }
  if (m_buffer.size() == 0) {
    m_buffer.shrink_to_fit(); // the request's read buffer, held for nothing while a stream runs
  }
  write_head(head, true, 0);
  expires_after(k_write_timeout);
  const auto ec = co_await write_all(m_socket, asio::buffer(m_head));
  m_deadline.disarm();
  co_return !ec;
}

Task<bool> Connection::write(std::string_view bytes) {
  if (bytes.empty()) {
    co_return true;
  }
  char size_line[24];
  const int len = std::snprintf(size_line, sizeof size_line, "%zx\r\n", bytes.size());
  const std::array<asio::const_buffer, 3> buffers{asio::buffer(size_line, static_cast<size_t>(len)),
                                                  asio::buffer(bytes.data(), bytes.size()),
                                                  asio::buffer("\r\n", 2)};
  expires_after(k_write_timeout);
  const auto ec = co_await write_all(m_socket, buffers);
  m_deadline.disarm();
  co_return !ec;
}

Task<bool> Connection::end_stream() {
  expires_after(k_write_timeout);
  const auto ec = co_await write_all(m_socket, asio::buffer("0\r\n\r\n", 5));
  m_deadline.disarm();
  co_return !ec;
}

// Reads one request, whole, within server.read_timeout of its first byte. false: the
// connection ends — after refusal, when it holds a status to answer with.
Task<bool> Connection::read_request(http::request_parser<http::string_body>& parser,
                                    HttpResponse& refusal) {
  // Used before the first wait only: the worker may load a new snapshot meanwhile.
  const auto& server = m_worker.snapshot(m_shared.app)->config->server;
  parser.header_limit(k_header_limit);
  parser.body_limit(static_cast<uint64_t>(server.max_body_size));
  expires_after(server.read_timeout);
  auto ec = co_await read_until(
      m_socket, m_buffer, parser, [](const auto& p) { return p.is_header_done(); },
      refuse_faulty_lines);
  std::optional<FramingRefusal> framing;
  if (!ec) {
    framing = framing_refusal(parser.get());
  }
  if (!ec && !framing) {
    const auto& head = parser.get();
    const auto expect = head[http::field::expect];
    if (!expect.empty() &&
        iequals(std::string_view(expect.data(), expect.size()), "100-continue")) {
      // curl and some SDKs wait for this before sending a large body.
      ec = co_await write_all(m_socket, asio::buffer("HTTP/1.1 100 Continue\r\n\r\n", 25));
    }
  }
  if (!ec && !framing) {
    ec = co_await read_until(
        m_socket, m_buffer, parser, [](const auto& p) { return p.is_done(); }, refuse_faulty_lines);
  }
  m_deadline.disarm();
  if (!ec && !framing) {
    co_return true;
  }
  // The request line is known once parsed, even when a later header failed.
  const Protocol protocol = protocol_for_path(path_of(view(parser.get().target())));
  if (framing) {
    refuse(refusal, framing->status, protocol, ErrorKind::invalid_request,
           "malformed HTTP request (" + std::string(framing->message) + ")");
  } else if (ec == http::error::body_limit) {
    refuse(refusal, 413, protocol, ErrorKind::too_large,
           "the request body is larger than server.max_body_size");
  } else if (ec == http::error::header_limit) {
    refuse(refusal, 431, protocol, ErrorKind::invalid_request,
           "the request headers are larger than 64 KiB");
  } else if (m_deadline.expired()) {
    // A client that dribbles its request is cut off (the deadline closed the socket, so
    // nothing is answered); it held no thread meanwhile.
    refusal.status = 0;
  } else if (ec == http::error::end_of_stream || ec == asio::error::eof ||
             ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
             ec == asio::error::bad_descriptor) {
    refusal.status = 0; // gone: nothing to answer
  } else {
    // Smuggling shapes (Content-Length with Transfer-Encoding, differing Content-Lengths) and
    // every other malformed request end here, and the connection with them (RFC 9112 §6.3).
    refuse(refusal, 400, protocol, ErrorKind::invalid_request,
           "malformed HTTP request (" + ec.message() + ")");
  }
  co_return false;
}

Task<void> Connection::handle(HttpRequest& request) {
  HttpResponse response;
  const Protocol protocol = protocol_for_path(request.path);
  if (m_shared.draining.load(std::memory_order_relaxed)) {
    m_keep_alive = false;
    refuse(response, 503, protocol, ErrorKind::unavailable,
           "modelmux is shutting down; retry on a new connection");
    co_await send(response);
    co_return;
  }
  if (request.headers.size() > k_max_headers) {
    // Not an SDK's request; refused before anything reads the headers.
    m_keep_alive = false;
    refuse(response, 431, protocol, ErrorKind::invalid_request,
           "more than " + std::to_string(k_max_headers) + " request headers");
    co_await send(response);
    co_return;
  }
  const auto snapshot = m_worker.snapshot(m_shared.app);
  std::optional<ApiRoute> route;
  try {
    route = route_request(m_shared.app, *snapshot, request, response);
    if (route) {
      co_await serve_proxied(m_worker, m_shared.app, snapshot, *route, request, *this);
      co_return;
    }
  } catch (const std::exception& e) {
    m_shared.app.log().error("internal_error", {{"path", request.path}, {"what", e.what()}});
    response = HttpResponse{};
    set_error(response, protocol,
              make_error(ErrorKind::internal, "modelmux failed to handle this request"));
  }
  co_await send(response);
}

namespace {

HttpRequest to_request(http::request<http::string_body>& message) {
  HttpRequest request;
  request.method = std::string(message.method_string());
  const std::string_view target = path_of(view(message.target()));
  const size_t q = target.find('?');
  request.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) {
    request.query = std::string(target.substr(q + 1));
  }
  for (const auto& field : message) {
    request.headers.add(std::string(field.name_string()), std::string(field.value()));
  }
  request.body = std::move(message.body());
  return request;
}

} // namespace

Task<void> Connection::run() {
  error_code ignored;
  m_socket.set_option(tcp::no_delay(true), ignored);
  for (;;) {
    m_busy = false;
    if (m_buffer.size() == 0) {
      // Idle between requests: a drain may close the connection now.
      if (m_shared.draining.load(std::memory_order_relaxed)) {
        break;
      }
      expires_after(k_keep_alive_idle);
      auto [ec, n] = co_await m_socket.async_read_some(m_buffer.prepare(4096), k_use);
      if (ec) {
        break;
      }
      m_buffer.commit(n);
    }
    // Empty lines before a request line are ignored (RFC 9112 §2.2): a client may end a body
    // with an extra CRLF.
    drop_empty_lines();
    if (m_buffer.size() == 0) {
      continue;
    }
    m_busy = true;
    // The parser (and its copy of the headers) lives only while the request is read: a stream
    // that then runs for minutes holds none of it.
    auto parser = std::make_unique<http::request_parser<http::string_body>>();
    HttpResponse refusal;
    if (!co_await read_request(*parser, refusal)) {
      if (refusal.status != 0) {
        m_keep_alive = false;
        co_await send(refusal);
      }
      break;
    }
    HttpRequest request = to_request(parser->get());
    m_keep_alive = parser->get().keep_alive();
    m_head_request = parser->get().method() == http::verb::head;
    parser.reset();
    co_await handle(request);
    if (closing() || !m_socket.is_open()) {
      break;
    }
  }
  m_socket.shutdown(tcp::socket::shutdown_send, ignored);
  m_socket.close(ignored);
}

} // namespace net

namespace asio = boost::asio;

struct Server::Impl {
  explicit Impl(App& app) : shared(app) {}

  net::Shared shared;
  net::ClientTls tls; // shared by the workers' upstream connections; made before them
  // The link to Redis when the config names one (SPEC §12); made before the workers and gone
  // before them, as what it answers is posted to their loops.
  std::unique_ptr<SharedState> redis;
  std::vector<std::unique_ptr<net::Worker>> workers;
  std::unique_ptr<net::tcp::acceptor> acceptor;
  std::unique_ptr<asio::steady_timer> room; // wakes the acceptor when a connection closes
  // Keeps the workers' loops running while they have no connection; dropped by a drain, so
  // each loop ends once its last connection has.
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> idle_guards;
  std::atomic<bool> running{false};
  std::atomic<bool> stopped{false};
  size_t next_worker = 0;

  net::Task<void> accept_loop();
  net::Task<void> connection(net::Worker& worker, net::tcp::socket socket);
};

net::Task<void> Server::Impl::connection(net::Worker& worker, net::tcp::socket socket) {
  {
    net::Connection c(worker, shared, std::move(socket));
    co_await c.run();
  }
  const int before = shared.connections.fetch_sub(1);
  const int limit = shared.app.snapshot()->config->server.max_connections;
  if (before >= limit) {
    asio::post(workers[0]->io, [this] { room->cancel(); });
  }
}

net::Task<void> Server::Impl::accept_loop() {
  for (;;) {
    const int limit = shared.app.snapshot()->config->server.max_connections;
    if (shared.connections.load() >= limit) {
      // Past server.max_connections new connections wait in the listen backlog.
      room->expires_after(std::chrono::milliseconds(100));
      co_await room->async_wait(net::k_use);
      if (!acceptor->is_open()) {
        break;
      }
      continue;
    }
    auto& worker = *workers[next_worker++ % workers.size()];
    auto [ec, socket] = co_await acceptor->async_accept(worker.io, net::k_use);
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) {
      break;
    }
    if (ec) {
      // Out of descriptors (EMFILE) or a connection reset before it was taken: wait a little
      // rather than spin, and go on.
      room->expires_after(std::chrono::milliseconds(50));
      co_await room->async_wait(net::k_use);
      continue;
    }
    shared.connections.fetch_add(1);
    asio::co_spawn(worker.io, connection(worker, std::move(socket)), asio::detached);
  }
}

Server::Server(App& app) : m_impl(std::make_unique<Impl>(app)) {
  if (const auto& redis = app.snapshot()->config->redis) {
    m_impl->redis = net::make_redis_link(*redis, app.log());
    app.attach_shared(m_impl->redis.get());
  }
  const auto& server = app.snapshot()->config->server;
  unsigned n = server.workers > 0 ? static_cast<unsigned>(server.workers)
                                  : std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i) {
    m_impl->workers.push_back(std::make_unique<net::Worker>(m_impl->tls));
    m_impl->workers.back()->drain_flag = &m_impl->shared.draining;
  }
  m_impl->room = std::make_unique<asio::steady_timer>(m_impl->workers[0]->io);
}

Server::~Server() {
  stop();
  if (m_impl->redis) {
    auto& app = m_impl->shared.app;
    app.flush_usage(); // every record's spend handed to the link before it goes
    app.attach_shared(nullptr);
    m_impl->redis.reset();
  }
  m_impl->idle_guards.clear(); // they point into the workers' io_contexts
  m_impl->room.reset();
  m_impl->acceptor.reset();
  m_impl->workers.clear();
}

Result<int> Server::bind(const std::string& host, int port) {
  auto fail = [&] {
    return make_error(ErrorKind::internal, "cannot listen on " + host + ":" + std::to_string(port) +
                                               " (address in use, or not an address of this "
                                               "machine)");
  };
  net::error_code ec;
  const auto address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) {
    return fail();
  }
  auto acceptor = std::make_unique<net::tcp::acceptor>(m_impl->workers[0]->io);
  const net::tcp::endpoint endpoint(address, static_cast<uint16_t>(port));
  acceptor->open(endpoint.protocol(), ec);
  // SO_REUSEADDR only: SO_REUSEPORT would let a second daemon share the port and silently take
  // half the traffic.
  if (!ec) {
    acceptor->set_option(net::tcp::acceptor::reuse_address(true), ec);
  }
  if (!ec) {
    acceptor->bind(endpoint, ec);
  }
  if (!ec) {
    acceptor->listen(4096, ec);
  }
  if (ec) {
    return fail();
  }
  const int bound = acceptor->local_endpoint().port();
  m_impl->acceptor = std::move(acceptor);
  return bound;
}

void Server::serve() {
  auto& impl = *m_impl;
  if (!impl.acceptor || impl.stopped) {
    return;
  }
  for (auto& w : impl.workers) {
    impl.idle_guards.push_back(asio::make_work_guard(w->io));
  }
  asio::co_spawn(impl.workers[0]->io, impl.accept_loop(), asio::detached);
  std::vector<std::thread> threads;
  for (size_t i = 1; i < impl.workers.size(); ++i) {
    threads.emplace_back([&impl, i] { impl.workers[i]->io.run(); });
  }
  impl.running = true;
  impl.workers[0]->io.run();
  for (auto& t : threads) {
    t.join();
  }
  impl.running = false;
}

bool Server::is_running() const {
  return m_impl->running;
}

void Server::drain() {
  auto& impl = *m_impl;
  impl.shared.draining = true;
  asio::post(impl.workers[0]->io, [&impl] {
    net::error_code ignored;
    if (impl.acceptor) {
      impl.acceptor->close(ignored);
    }
    impl.room->cancel();
    impl.idle_guards.clear();
  });
  for (auto& w : impl.workers) {
    asio::post(w->io, [worker = w.get()] {
      // Copied: closing one ends its coroutine later, not now, but stay safe if it erases.
      const std::vector<net::Connection*> open(worker->connections.begin(),
                                               worker->connections.end());
      for (auto* c : open) {
        c->close_if_idle();
      }
      // What the loop keeps that guards no request goes too, so run() returns as soon as
      // the last connection has ended: the idle upstream connections, and the deadline
      // timer's wait once no socket has a deadline.
      worker->pools.close();
      worker->deadlines.release_when_idle();
    });
  }
}

bool Server::loops_responsive(std::chrono::milliseconds timeout) {
  struct Answers {
    std::mutex mutex;
    std::condition_variable changed;
    size_t count = 0;
  };
  auto answers = std::make_shared<Answers>();
  for (auto& w : m_impl->workers) {
    asio::post(w->io, [answers] {
      {
        std::lock_guard lock(answers->mutex);
        ++answers->count;
      }
      answers->changed.notify_all();
    });
  }
  std::unique_lock lock(answers->mutex);
  const size_t n = m_impl->workers.size();
  return answers->changed.wait_for(lock, timeout, [&] { return answers->count == n; });
}

void Server::stop() {
  auto& impl = *m_impl;
  impl.stopped = true;
  for (auto& w : impl.workers) {
    w->io.stop();
  }
}

} // namespace modelmux
