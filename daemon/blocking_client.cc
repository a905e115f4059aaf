// The blocking upstream client of the background prober: keep-alive httplib clients per target.
#include "modelmux/blocking_client.h"

namespace modelmux {

Outcome outcome_from(httplib::Error error, bool timed_out) {
  switch (error) {
  case httplib::Error::Success:
    return Outcome::ok;
  case httplib::Error::Connection:
  case httplib::Error::ConnectionTimeout:
  case httplib::Error::BindIPAddress:
  case httplib::Error::SSLConnection:
  case httplib::Error::SSLLoadingCerts:
  case httplib::Error::SSLServerVerification:
    return Outcome::connect_error;
  case httplib::Error::Read:
    return timed_out ? Outcome::timeout : Outcome::reset;
  default:
    return Outcome::reset;
  }
}

namespace {

std::string detail_of(httplib::Error error, Outcome outcome) {
  switch (error) {
  case httplib::Error::Connection:
    return "connection refused or unreachable";
  case httplib::Error::ConnectionTimeout:
    return "connection timed out";
  case httplib::Error::SSLConnection:
    return "TLS handshake failed";
  case httplib::Error::SSLServerVerification:
    return "TLS certificate not trusted";
  case httplib::Error::SSLLoadingCerts:
    return "TLS trust store could not be loaded";
  case httplib::Error::Read:
    return outcome == Outcome::timeout ? "no answer in time" : "connection reset";
  case httplib::Error::Write:
    return "connection reset while sending";
  case httplib::Error::Canceled:
    return "cancelled";
  default:
    return "connection failed (" + httplib::to_string(error) + ")";
  }
}

} // namespace

ClientPool::ClientPool(const Target& target)
    : m_endpoint(parse_base_url(target.endpoint.base_url)),
      m_tls_verify(target.endpoint.tls_verify), m_timeout(target.timeout),
      m_read_timeout(std::max(target.timeout, target.idle_timeout)) {}

std::unique_ptr<httplib::Client> ClientPool::acquire() {
  std::unique_ptr<httplib::Client> client;
  if (m_free.try_dequeue(client)) {
    return client;
  }
  client = std::make_unique<httplib::Client>(m_endpoint.origin);
  client->set_keep_alive(true);
  client->set_tcp_nodelay(true);
  client->set_follow_location(false);
  client->set_connection_timeout(
      std::min<std::chrono::milliseconds>(m_timeout, std::chrono::seconds(10)));
  client->set_read_timeout(m_read_timeout);
  client->set_write_timeout(std::chrono::seconds(30));
  client->enable_server_certificate_verification(m_tls_verify);
  return client;
}

void ClientPool::release(std::unique_ptr<httplib::Client> client) {
  m_free.enqueue(std::move(client));
}

UpstreamReply send_buffered(ClientPool& pool, UpstreamRequest request,
                            std::chrono::milliseconds timeout, size_t max_answer) {
  UpstreamReply reply;
  auto client = pool.acquire();
  client->set_read_timeout(timeout);
  httplib::Request req;
  req.method = std::move(request.method);
  req.path = std::move(request.path);
  for (const auto& [name, value] : request.headers) {
    req.headers.emplace(name, value);
  }
  req.body = std::move(request.body);
  req.set_header("Content-Type", "application/json");
  std::string body;
  bool too_big = false;
  req.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
    if (body.size() + size > max_answer) {
      too_big = true;
      return false;
    }
    body.append(data, size);
    return true;
  };
  httplib::Response res;
  httplib::Error error = httplib::Error::Success;
  const auto started = std::chrono::steady_clock::now();
  const bool sent = client->send(req, res, error);
  if (too_big) {
    reply.outcome = Outcome::malformed;
    reply.detail =
        "answer larger than server.max_answer_size (" + std::to_string(max_answer / 1024) + " KiB)";
    return reply;
  }
  if (!sent) {
    const bool timed_out = std::chrono::steady_clock::now() - started >= timeout * 95 / 100;
    reply.outcome = outcome_from(error, timed_out);
    reply.detail = detail_of(error, reply.outcome);
    return reply;
  }
  reply.status = res.status;
  reply.outcome = outcome_from(res.status);
  reply.detail = "HTTP " + std::to_string(res.status);
  for (const auto& [name, value] : res.headers) {
    reply.headers.add(name, value);
  }
  reply.body = std::move(body);
  pool.release(std::move(client));
  return reply;
}

} // namespace modelmux
