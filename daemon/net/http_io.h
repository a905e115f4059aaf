// Reading into Beast's HTTP parser and writing to a socket without a trip through the event loop
// when none is needed. Beast's async_read posts its completion when the bytes it needs are
// already in the buffer (a request read with its headers, an answer's body read with its head),
// and Asio posts the completion of a write the kernel took at once: each post is one more pass
// of the io_context's queue, and an epoll_wait with it — five per proxied request at c=1. Here
// bytes in hand are parsed at once and a write is first tried directly; the event loop is
// entered only to wait for the peer.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

namespace modelmux::net {

// Feeds parser from buffer, reading from stream only when the parser needs more bytes, until
// done(parser) holds or the parser fails. Ends of stream are Beast's: one after some bytes of a
// message completes it if it may end there, one before any is http::error::end_of_stream.
// Before each wait for more bytes, and before the parser is given bytes of a head,
// check(parser, pending) may end the read with an error: bytes that can never complete what the
// parser waits for are refused now, not at the deadline, and a head's lines may be judged by
// rules stricter than the parser's.
template <class Stream, bool isRequest, class Done, class Check>
boost::asio::awaitable<boost::system::error_code>
read_until(Stream& stream, boost::beast::flat_buffer& buffer,
           boost::beast::http::basic_parser<isRequest>& parser, Done done, Check check) {
  namespace http = boost::beast::http;
  boost::system::error_code ec;
  while (!done(parser)) {
    if (buffer.size() > 0) {
      if (!parser.is_header_done()) {
        if (const auto refused = check(parser, buffer)) {
          co_return refused;
        }
      }
      const size_t used = parser.put(buffer.data(), ec);
      buffer.consume(used);
      if (ec && ec != http::error::need_more) {
        co_return ec;
      }
      const bool progressed = !ec && used > 0;
      ec = {};
      if (progressed || done(parser)) {
        continue;
      }
    }
    if (const auto refused = check(parser, buffer)) {
      co_return refused;
    }
    const size_t room = boost::beast::read_size(buffer, 65536);
    if (room == 0) {
      co_return http::error::buffer_overflow;
    }
    auto [read_error, n] = co_await stream.async_read_some(
        buffer.prepare(room), boost::asio::as_tuple(boost::asio::use_awaitable));
    buffer.commit(n);
    if (read_error == boost::asio::error::eof) {
      if (!parser.got_some()) {
        co_return http::error::end_of_stream;
      }
      parser.put_eof(ec);
      co_return ec;
    }
    if (read_error) {
      co_return read_error;
    }
  }
  co_return ec;
}

template <class Stream, bool isRequest, class Done>
boost::asio::awaitable<boost::system::error_code>
read_until(Stream& stream, boost::beast::flat_buffer& buffer,
           boost::beast::http::basic_parser<isRequest>& parser, Done done) {
  return read_until(stream, buffer, parser, std::move(done),
                    [](const auto&, const auto&) { return boost::system::error_code(); });
}

// Writes buffers whole: at once if the socket takes them all, else the rest as the socket drains.
template <class Buffers>
boost::asio::awaitable<boost::system::error_code> write_all(boost::asio::ip::tcp::socket& socket,
                                                            const Buffers& buffers) {
  boost::system::error_code ec;
  if (!socket.non_blocking()) {
    socket.non_blocking(true, ec);
  }
  const size_t total = boost::asio::buffer_size(buffers);
  const size_t written = socket.write_some(buffers, ec);
  if (!ec && written == total) {
    co_return ec;
  }
  if (ec && ec != boost::asio::error::would_block && ec != boost::asio::error::try_again) {
    co_return ec;
  }
  boost::beast::buffers_suffix<Buffers> rest(buffers);
  rest.consume(ec ? 0 : written);
  auto [write_error, n] = co_await boost::asio::async_write(
      socket, rest, boost::asio::as_tuple(boost::asio::use_awaitable));
  co_return write_error;
}

} // namespace modelmux::net
