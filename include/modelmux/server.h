// The HTTP front door: event loops (server.workers, one per core by default) that accept client
// connections, read requests with Beast's HTTP/1.1 parser, answer modelmux's own routes and run
// proxied requests as coroutines on the worker that accepted them. No request holds a thread:
// thousands of streams share a few loops.
#pragma once

#include "modelmux/app.h"
#include "modelmux/result.h"

#include <chrono>
#include <memory>
#include <string>

namespace modelmux {

class Server {
public:
  explicit Server(App& app);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds host:port (port 0 picks a free one) and returns the bound port.
  Result<int> bind(const std::string& host, int port);
  // Runs the event loops until stop(), or until a drain has let every connection end.
  void serve();
  // Ends at once: connections are closed and requests in flight cut off.
  void stop();
  bool is_running() const;
  // Shutting down: stops accepting connections and closes the idle keep-alive ones at once; a
  // request arriving on an open connection is answered 503 (and the connection closed), while
  // requests in flight, streams included, finish. serve() returns when they have.
  void drain();
  // True when every event loop ran a no-op posted to it within timeout: none is stuck. The
  // systemd watchdog pings only then.
  bool loops_responsive(std::chrono::milliseconds timeout);

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

} // namespace modelmux
