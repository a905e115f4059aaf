// The event loops' upstream client: one HTTP/1.1 exchange with a model server at a time per
// connection, over Beast's parser and serializer, plain TCP or TLS (SNI and certificate checks
// against the system store). Each worker keeps its own idle keep-alive connections by origin, so
// no lock is taken on the way to an upstream. Deadlines are absolute and kept by the worker's
// Deadlines: when one passes, the connection is closed and the pending operation ends as timed
// out.
#pragma once

#include "modelmux/upstream.h"
#include "net/deadlines.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace modelmux::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
using Clock = std::chrono::steady_clock;
template <class T> using Task = asio::awaitable<T>;

using Origin = UpstreamOrigin;

// One connection to an origin, with the bytes read past the last answer and the deadline of
// the exchange on it.
struct UpstreamConnection {
  UpstreamConnection(asio::io_context& io, Deadlines& deadlines) : tcp(io), deadline(deadlines) {}
  asio::ip::tcp::socket tcp;
  std::unique_ptr<beast::ssl_stream<asio::ip::tcp::socket>> tls;
  beast::flat_buffer buffer;
  // Where an answer's body is read to, slice by slice; made on the first read and kept with the
  // connection, so a kept-alive connection allocates it once (a 4 KiB malloc also makes glibc
  // consolidate its fast bins).
  std::unique_ptr<char[]> chunk;
  Deadline deadline;
  Clock::time_point idle_since;

  asio::ip::tcp::socket& socket() { return tls ? tls->next_layer() : tcp; }
  void expires_at(Clock::time_point at) { deadline.arm(socket(), at); }
};

// A TLS client context that checks certificates against the system's trust store.
std::unique_ptr<asio::ssl::context> make_client_tls_context();

// The one TLS client context every worker's upstream connections use, made on first use: a
// daemon with no https target never loads the system's trust store (about 1 MB per context,
// read whole when the context is made). An OpenSSL context is safe to share between threads
// once set up; only its making is guarded.
class ClientTls {
public:
  asio::ssl::context& get() {
    std::call_once(m_once, [this] { m_context = make_client_tls_context(); });
    return *m_context;
  }

private:
  std::once_flag m_once;
  std::unique_ptr<asio::ssl::context> m_context;
};

// One worker's upstream connections: the idle ones by origin and the resolved addresses. Only
// that worker's thread touches it.
class UpstreamPools {
public:
  UpstreamPools(asio::io_context& io, ClientTls& tls, Deadlines& deadlines);

  asio::io_context& io() { return m_io; }
  Deadlines& deadlines() { return m_deadlines; }
  asio::ssl::context& tls() { return m_tls.get(); }
  // A kept-alive connection to origin, or null.
  std::unique_ptr<UpstreamConnection> take_idle(const Origin& origin);
  // Keeps a connection read to its end for reuse, for at most k_max_idle_age.
  void put_idle(const Origin& origin, std::unique_ptr<UpstreamConnection> connection);
  // Closes the idle connections and keeps none from now on (the worker is going away).
  void close();
  // Addresses of a named host, remembered for a minute (numeric hosts need no lookup).
  Task<std::vector<asio::ip::tcp::endpoint>> resolve(const Origin& origin,
                                                     boost::system::error_code& ec);

private:
  static void drop_aged(std::vector<std::unique_ptr<UpstreamConnection>>& idle,
                        Clock::time_point now);

  struct Resolved {
    std::vector<asio::ip::tcp::endpoint> endpoints;
    Clock::time_point until;
  };
  asio::io_context& m_io;
  ClientTls& m_tls;
  Deadlines& m_deadlines;
  std::unordered_map<std::string, std::vector<std::unique_ptr<UpstreamConnection>>> m_idle;
  std::unordered_map<std::string, Resolved> m_resolved;
  bool m_closed = false;
};

// One request to an upstream and its answer, read as it arrives. A connection whose answer was
// read to its end goes back to the worker's idle pool; any other is closed.
class UpstreamExchange {
public:
  explicit UpstreamExchange(UpstreamPools& pools) : m_pools(pools) {}
  ~UpstreamExchange();
  UpstreamExchange(const UpstreamExchange&) = delete;
  UpstreamExchange& operator=(const UpstreamExchange&) = delete;

  // Connects (or reuses a kept-alive connection), sends request, and reads the status line and
  // headers, all before deadline. false: failure() and failure_detail() say why.
  Task<bool> start(const Origin& origin, const UpstreamRequest& request,
                   Clock::time_point deadline);
  int status() const { return m_status; }
  const HttpHeaders& headers() const { return m_headers; }

  enum class Read { data, end, failed, timed_out };
  // The next bytes of the body, as a view valid until the next read, before deadline.
  Task<Read> read(std::string_view& out, Clock::time_point deadline);
  // The rest of the body appended to out; more than limit bytes in all is a failure (malformed).
  Task<Read> read_all(std::string& out, size_t limit, Clock::time_point deadline);

  Outcome failure() const { return m_failure; }
  const std::string& failure_detail() const { return m_detail; }
  // Closes the connection: the upstream stops generating, and a pending read ends as failed.
  void cancel();

private:
  Task<bool> connect(const Origin& origin, Clock::time_point deadline);
  Task<bool> send_and_read_head(const UpstreamRequest& request, Clock::time_point deadline,
                                bool& retry_on_fresh);
  void fail(Outcome outcome, std::string detail);
  Read failed_read(const boost::system::error_code& ec);

  UpstreamPools& m_pools;
  const Origin* m_origin = nullptr;
  std::unique_ptr<UpstreamConnection> m_connection;
  std::optional<beast::http::response_parser<beast::http::buffer_body>> m_parser;
  int m_status = 0;
  HttpHeaders m_headers;
  Outcome m_failure = Outcome::ok;
  std::string m_detail;
  bool m_cancelled = false;
};

// A whole answer: sent, its head read before head_deadline and its body (at most max_answer
// bytes) before body_deadline.
Task<UpstreamReply> send_buffered(UpstreamPools& pools, const Origin& origin,
                                  const UpstreamRequest& request, Clock::time_point head_deadline,
                                  Clock::time_point body_deadline, size_t max_answer);

} // namespace modelmux::net
