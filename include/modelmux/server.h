// The HTTP front door: binds the listener, checks client keys, dispatches exact paths to the
// proxy and the built-in routes, and shapes every error in the route's protocol.
#pragma once

#include "modelmux/app.h"
#include "modelmux/result.h"

#include <atomic>
#include <httplib.h>
#include <memory>

namespace modelmux {

class Server {
public:
  explicit Server(App& app);
  ~Server();

  // Binds host:port (port 0 picks a free one) and returns the bound port.
  Result<int> bind(const std::string& host, int port);
  // Serves until stop(); returns once the requests in flight have finished.
  void serve();
  void stop();
  bool is_running() const { return m_http.is_running(); }
  // Shutting down: stops accepting connections; a request arriving on an open connection is
  // answered 503 (and the connection closed), while requests already in flight, streams
  // included, finish. serve() returns when they have. (stop() would cut streams off: the
  // library ends a streamed answer once its listener is stopped.)
  void drain();

private:
  void configure();
  void handle_post(const httplib::Request& req, httplib::Response& res);
  void handle_delete(const httplib::Request& req, httplib::Response& res);
  httplib::Server::HandlerResponse handle_get(const httplib::Request& req, httplib::Response& res);

  App& m_app;
  httplib::Server m_http;
  int m_listen_fd = -1;
  std::atomic<bool> m_draining{false};
};

// True when the request carries one of the configured client keys (or none are configured).
bool client_authorized(const AuthConfig& auth, const httplib::Request& req);

// The /v1/models answer: OpenAI's list shape, or Anthropic's when the client is an Anthropic SDK.
std::string models_list_body(const Registry& registry, bool anthropic_shape);
// GET /v1/models/{id}: the entry of the list named id; nullopt when the list has none.
std::optional<std::string> model_entry_body(const Registry& registry, std::string_view id,
                                            bool anthropic_shape);

} // namespace modelmux
