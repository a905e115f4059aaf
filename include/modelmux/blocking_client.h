// The blocking upstream client, for the background prober's thread (the data plane's requests
// go through the event loops' client): keep-alive httplib clients per target, and one
// request's whole answer.
#pragma once

#include "modelmux/upstream.h"

#include <chrono>
#include <concurrentqueue/concurrentqueue.h>
#include <httplib.h>
#include <memory>

namespace modelmux {

// timed_out: the failure came at the read deadline, so a silent peer, not a broken one.
Outcome outcome_from(httplib::Error error, bool timed_out);

// Keep-alive clients for one target. httplib::Client serves one request at a time, so each
// request in flight checks one out and returns it only if its connection is clean.
class ClientPool {
public:
  explicit ClientPool(const Target& target);

  std::unique_ptr<httplib::Client> acquire();
  void release(std::unique_ptr<httplib::Client> client);
  // How long a streaming read waits for bytes before giving up.
  std::chrono::milliseconds read_timeout() const { return m_read_timeout; }

private:
  UpstreamEndpoint m_endpoint;
  bool m_tls_verify;
  std::chrono::milliseconds m_timeout;
  std::chrono::milliseconds m_read_timeout;
  moodycamel::ConcurrentQueue<std::unique_ptr<httplib::Client>> m_free;
};

// Sends request (its body is moved out, not copied) and reads the whole answer. An answer over
// max_answer bytes is not read further: the attempt fails as malformed and the connection is
// dropped, never reused.
UpstreamReply send_buffered(ClientPool& pool, UpstreamRequest request,
                            std::chrono::milliseconds timeout,
                            size_t max_answer = k_default_max_answer);

} // namespace modelmux
