// The event loops' upstream client.
#include "net/upstream_client.h"

#include "net/http_io.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/read.hpp>
#include <openssl/ssl.h>

namespace modelmux::net {

namespace http = beast::http;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto k_use = asio::as_tuple(asio::use_awaitable);
// A relayed slice: big enough for any SSE event an upstream sends at once, small enough that a
// worker holding thousands of streams stays within its memory budget.
constexpr size_t k_chunk_size = 4 * 1024;
// Idle connections kept per origin and worker, and how long one may sit unused before it is
// closed (upstream servers close theirs after 5 s to a few minutes; reusing one they closed
// costs a retry).
constexpr size_t k_max_idle_per_origin = 256;
constexpr auto k_max_idle_age = std::chrono::seconds(4);
constexpr size_t k_header_limit = 64 * 1024;
// A whole answer's first read: Beast reads what the buffer has room for, 512 bytes to begin
// with, so a 1 KB answer took two reads. A stream's events are small; its buffer stays small.
constexpr size_t k_whole_answer_read = 4 * 1024;

// The request head: written by hand (writing HTTP is simple; reading it is Beast's), so the
// hot path builds one string and writes it with the body in one gather.
void write_head(std::string& head, const Origin& origin, const UpstreamRequest& request) {
  head.reserve(256 + request.path.size());
  head += request.method;
  head += ' ';
  head += request.path;
  head += " HTTP/1.1\r\nHost: ";
  head += origin.host;
  if (!(origin.tls ? origin.port == "443" : origin.port == "80")) {
    head += ':';
    head += origin.port;
  }
  head += "\r\nUser-Agent: modelmux/" MODELMUX_VERSION "\r\n";
  for (const auto& [name, value] : request.headers) {
    head += name;
    head += ": ";
    head += value;
    head += "\r\n";
  }
  if (request.method != "GET" || !request.body.empty()) {
    head += "Content-Type: application/json\r\nContent-Length: ";
    head += std::to_string(request.body.size());
    head += "\r\n";
  }
  head += "\r\n";
}

std::string describe_connect_error(const error_code& ec, bool timed_out, bool tls) {
  if (timed_out) {
    return "connection timed out";
  }
  if (ec == asio::error::connection_refused) {
    return "connection refused or unreachable";
  }
  if (tls && ec.category() == asio::error::get_ssl_category()) {
    const auto reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
    if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
      return "TLS certificate not trusted";
    }
    return "TLS handshake failed";
  }
  if (ec == asio::error::host_not_found || ec == asio::error::host_not_found_try_again) {
    return "host not found";
  }
  return "connection failed (" + ec.message() + ")";
}

} // namespace

std::unique_ptr<asio::ssl::context> make_client_tls_context() {
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_default_verify_paths();
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3);
  return ctx;
}

UpstreamPools::UpstreamPools(asio::io_context& io, ClientTls& tls, Deadlines& deadlines)
    : m_io(io), m_tls(tls), m_deadlines(deadlines) {}

std::unique_ptr<UpstreamConnection> UpstreamPools::take_idle(const Origin& origin) {
  const auto it = m_idle.find(origin.key);
  if (it == m_idle.end()) {
    return nullptr;
  }
  auto& idle = it->second;
  const auto now = Clock::now();
  drop_aged(idle, now);
  while (!idle.empty()) {
    auto c = std::move(idle.back());
    idle.pop_back();
    if (now - c->idle_since < k_max_idle_age && c->socket().is_open()) {
      c->deadline.disarm();
      return c;
    }
  }
  return nullptr;
}

void UpstreamPools::put_idle(const Origin& origin, std::unique_ptr<UpstreamConnection> connection) {
  auto& idle = m_idle[origin.key];
  const auto now = Clock::now();
  drop_aged(idle, now);
  if (m_closed || idle.size() >= k_max_idle_per_origin) {
    return; // closed as it goes
  }
  connection->idle_since = now;
  // Past its age the worker's timer closes it, so a burst's connections do not hold
  // descriptors (and the upstream's sockets) long after the burst.
  connection->expires_at(now + k_max_idle_age);
  idle.push_back(std::move(connection));
}

void UpstreamPools::drop_aged(std::vector<std::unique_ptr<UpstreamConnection>>& idle,
                              Clock::time_point now) {
  // Oldest first: the aged ones, closed by their deadline or about to be, are a prefix.
  auto aged = idle.begin();
  while (aged != idle.end() && now - (*aged)->idle_since >= k_max_idle_age) {
    ++aged;
  }
  idle.erase(idle.begin(), aged);
}

void UpstreamPools::close() {
  m_closed = true;
  m_idle.clear();
}

Task<std::vector<tcp::endpoint>> UpstreamPools::resolve(const Origin& origin, error_code& ec) {
  uint16_t port = 0;
  for (const char c : origin.port) {
    port = static_cast<uint16_t>(port * 10 + (c - '0'));
  }
  error_code parse_error;
  const auto address = asio::ip::make_address(origin.host, parse_error);
  if (!parse_error) {
    co_return std::vector<tcp::endpoint>{tcp::endpoint(address, port)};
  }
  const auto now = Clock::now();
  if (const auto it = m_resolved.find(origin.key);
      it != m_resolved.end() && it->second.until > now) {
    co_return it->second.endpoints;
  }
  tcp::resolver resolver(m_io);
  auto [error, results] = co_await resolver.async_resolve(origin.host, origin.port, k_use);
  ec = error;
  std::vector<tcp::endpoint> endpoints;
  if (!error) {
    for (const auto& r : results) {
      endpoints.push_back(r.endpoint());
    }
    m_resolved[origin.key] = Resolved{endpoints, now + std::chrono::minutes(1)};
  }
  co_return endpoints;
}

UpstreamExchange::~UpstreamExchange() {
  // Only a connection whose answer ended cleanly and that may be kept is reused.
  if (m_connection && m_origin != nullptr && !m_cancelled && m_parser && m_parser->is_done() &&
      m_parser->keep_alive() && m_failure == Outcome::ok) {
    m_pools.put_idle(*m_origin, std::move(m_connection));
  }
}

void UpstreamExchange::fail(Outcome outcome, std::string detail) {
  m_failure = outcome;
  m_detail = std::move(detail);
  if (m_connection) {
    error_code ignored;
    m_connection->socket().close(ignored);
  }
}

void UpstreamExchange::cancel() {
  m_cancelled = true;
  if (m_connection) {
    error_code ignored;
    m_connection->socket().shutdown(tcp::socket::shutdown_both, ignored);
    m_connection->socket().close(ignored);
  }
}

Task<bool> UpstreamExchange::connect(const Origin& origin, Clock::time_point deadline) {
  error_code ec;
  const auto endpoints = co_await m_pools.resolve(origin, ec);
  if (ec || endpoints.empty()) {
    fail(Outcome::connect_error,
         describe_connect_error(ec ? ec : asio::error::host_not_found, false, origin.tls));
    co_return false;
  }
  m_connection = std::make_unique<UpstreamConnection>(m_pools.io(), m_pools.deadlines());
  auto& c = *m_connection;
  // Connecting is bounded by the attempt's deadline, and never by more than 10 s: a host that
  // drops SYNs should not hold a request for the whole time to first byte. The TLS handshake
  // shares that bound.
  const auto connect_deadline = std::min(deadline, Clock::now() + std::chrono::seconds(10));
  c.expires_at(connect_deadline);
  auto [connect_error, endpoint] = co_await asio::async_connect(c.tcp, endpoints, k_use);
  c.deadline.disarm();
  if (connect_error) {
    fail(Outcome::connect_error,
         describe_connect_error(connect_error, c.deadline.expired(), false));
    co_return false;
  }
  c.tcp.set_option(tcp::no_delay(true), ec);
  if (!origin.tls) {
    co_return true;
  }
  auto tls = std::make_unique<beast::ssl_stream<tcp::socket>>(std::move(c.tcp), m_pools.tls());
  if (!SSL_set_tlsext_host_name(tls->native_handle(), origin.host.c_str())) {
    fail(Outcome::connect_error, "TLS handshake failed (SNI)");
    co_return false;
  }
  if (origin.verify) {
    tls->set_verify_mode(asio::ssl::verify_peer);
    tls->set_verify_callback(asio::ssl::host_name_verification(origin.host));
  } else {
    tls->set_verify_mode(asio::ssl::verify_none);
  }
  c.tls = std::move(tls);
  c.expires_at(connect_deadline); // the socket moved into the TLS stream
  auto [handshake_error] = co_await c.tls->async_handshake(asio::ssl::stream_base::client, k_use);
  c.deadline.disarm();
  if (handshake_error) {
    fail(Outcome::connect_error,
         describe_connect_error(handshake_error, c.deadline.expired(), true));
    co_return false;
  }
  co_return true;
}

Task<bool> UpstreamExchange::send_and_read_head(const UpstreamRequest& request,
                                                Clock::time_point deadline, bool& retry_on_fresh) {
  auto& c = *m_connection;
  // Armed while an operation is pending, as a stream's timeout would be: time the caller spends
  // between reads (writing to a slow client) is not the upstream's.
  c.expires_at(deadline);
  std::string head;
  write_head(head, *m_origin, request);
  const std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(request.body)};
  error_code write_error;
  if (c.tls) {
    std::tie(write_error, std::ignore) = co_await asio::async_write(*c.tls, buffers, k_use);
  } else {
    write_error = co_await write_all(c.tcp, buffers);
  }
  if (write_error) {
    c.deadline.disarm();
    if (c.deadline.expired()) {
      fail(Outcome::timeout, "no answer in time");
    } else {
      fail(Outcome::reset, "connection reset while sending");
    }
    co_return false;
  }
  if (!request.stream && c.buffer.capacity() < k_whole_answer_read) {
    c.buffer.reserve(k_whole_answer_read);
  }
  m_parser.emplace();
  m_parser->header_limit(k_header_limit);
  m_parser->body_limit(boost::none); // bounded by the reader: max_answer_size, or a stream
  if (request.method == "HEAD") {
    m_parser->skip(true);
  }
  const auto head_done = [](const auto& p) { return p.is_header_done(); };
  error_code read_error;
  if (c.tls) {
    read_error = co_await read_until(*c.tls, c.buffer, *m_parser, head_done);
  } else {
    read_error = co_await read_until(c.tcp, c.buffer, *m_parser, head_done);
  }
  c.deadline.disarm();
  if (read_error) {
    // A kept-alive connection the server closed meanwhile fails at once with nothing read:
    // the request never reached it, so a fresh connection may carry it.
    retry_on_fresh = retry_on_fresh && !c.deadline.expired() && !m_parser->got_some();
    if (c.deadline.expired()) {
      fail(Outcome::timeout, "no answer in time");
    } else if (read_error == http::error::end_of_stream || read_error == asio::error::eof ||
               read_error == asio::error::connection_reset) {
      fail(Outcome::reset, "connection reset");
    } else {
      fail(Outcome::malformed,
           "the upstream's HTTP answer is malformed (" + read_error.message() + ")");
    }
    co_return false;
  }
  retry_on_fresh = false;
  const auto& message = m_parser->get();
  m_status = static_cast<int>(message.result_int());
  for (const auto& field : message) {
    m_headers.add(std::string(field.name_string()), std::string(field.value()));
  }
  co_return true;
}

Task<bool> UpstreamExchange::start(const Origin& origin, const UpstreamRequest& request,
                                   Clock::time_point deadline) {
  m_origin = &origin;
  m_connection = m_pools.take_idle(origin);
  bool reused = m_connection != nullptr;
  for (;;) {
    if (!m_connection && !co_await connect(origin, deadline)) {
      co_return false;
    }
    bool retry = reused;
    if (co_await send_and_read_head(request, deadline, retry)) {
      co_return true;
    }
    if (!retry || m_cancelled) {
      co_return false;
    }
    m_connection.reset();
    m_failure = Outcome::ok;
    m_detail.clear();
    reused = false;
  }
}

UpstreamExchange::Read UpstreamExchange::failed_read(const error_code& ec) {
  if (m_cancelled) {
    fail(Outcome::reset, "cancelled");
    return Read::failed;
  }
  if (m_connection->deadline.expired()) {
    fail(Outcome::timeout, "no answer in time");
    return Read::timed_out;
  }
  if (ec == http::error::partial_message || ec == http::error::end_of_stream ||
      ec == asio::error::eof || ec == asio::error::connection_reset) {
    fail(Outcome::reset, "connection reset");
  } else {
    fail(Outcome::malformed, "the upstream's HTTP answer is malformed (" + ec.message() + ")");
  }
  return Read::failed;
}

Task<UpstreamExchange::Read> UpstreamExchange::read(std::string_view& out,
                                                    Clock::time_point deadline) {
  if (!m_parser || !m_connection) {
    co_return Read::failed;
  }
  auto& c = *m_connection;
  if (!c.chunk) {
    c.chunk = std::make_unique<char[]>(k_chunk_size);
  }
  while (!m_parser->is_done()) {
    auto& body = m_parser->get().body();
    body.data = c.chunk.get();
    body.size = k_chunk_size;
    c.expires_at(deadline);
    // Until some body bytes are in the chunk (a full chunk ends as need_buffer) or the answer
    // ends.
    const auto some_body = [&body](const auto& p) {
      return p.is_done() || body.size < k_chunk_size;
    };
    error_code ec;
    if (c.tls) {
      ec = co_await read_until(*c.tls, c.buffer, *m_parser, some_body);
    } else {
      ec = co_await read_until(c.tcp, c.buffer, *m_parser, some_body);
    }
    c.deadline.disarm();
    if (ec == http::error::need_buffer) {
      ec = {};
    }
    if (ec) {
      co_return failed_read(ec);
    }
    const size_t got = k_chunk_size - m_parser->get().body().size;
    if (got > 0) {
      out = std::string_view(c.chunk.get(), got);
      co_return Read::data;
    }
  }
  co_return Read::end;
}

Task<UpstreamExchange::Read> UpstreamExchange::read_all(std::string& out, size_t limit,
                                                        Clock::time_point deadline) {
  std::string_view slice;
  for (;;) {
    const Read r = co_await read(slice, deadline);
    if (r != Read::data) {
      co_return r;
    }
    if (out.size() + slice.size() > limit) {
      fail(Outcome::malformed,
           "answer larger than server.max_answer_size (" + std::to_string(limit / 1024) + " KiB)");
      co_return Read::failed;
    }
    out.append(slice);
  }
}

Task<UpstreamReply> send_buffered(UpstreamPools& pools, const Origin& origin,
                                  const UpstreamRequest& request, Clock::time_point head_deadline,
                                  Clock::time_point body_deadline, size_t max_answer) {
  UpstreamReply reply;
  UpstreamExchange exchange(pools);
  if (!co_await exchange.start(origin, request, head_deadline)) {
    reply.outcome = exchange.failure();
    reply.detail = exchange.failure_detail();
    co_return reply;
  }
  const auto read = co_await exchange.read_all(reply.body, max_answer, body_deadline);
  if (read != UpstreamExchange::Read::end) {
    reply.outcome = exchange.failure();
    reply.detail =
        read == UpstreamExchange::Read::timed_out ? "no answer in time" : exchange.failure_detail();
    reply.body.clear();
    co_return reply;
  }
  reply.status = exchange.status();
  reply.outcome = outcome_from(reply.status);
  reply.detail = "HTTP " + std::to_string(reply.status);
  reply.headers = exchange.headers();
  co_return reply;
}

} // namespace modelmux::net
