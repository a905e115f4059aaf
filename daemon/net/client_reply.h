// How a proxied request answers its client: one whole response, or a head followed by the bytes
// of a stream as they are relayed. Each write completes when the client's connection took the
// bytes, so a slow reader slows the upstream read behind it instead of growing a buffer.
#pragma once

#include "modelmux/http.h"

#include <boost/asio/awaitable.hpp>
#include <string_view>

namespace modelmux::net {

class ClientReply {
public:
  virtual ~ClientReply() = default;
  // false: the client is gone.
  virtual boost::asio::awaitable<bool> send(HttpResponse& response) = 0;
  // The status and headers of a stream, sent with chunked transfer coding.
  virtual boost::asio::awaitable<bool> begin_stream(HttpResponse& head) = 0;
  virtual boost::asio::awaitable<bool> write(std::string_view bytes) = 0;
  virtual boost::asio::awaitable<bool> end_stream() = 0;
};

} // namespace modelmux::net
