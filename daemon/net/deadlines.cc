// One worker's socket deadlines under one timer.
#include "net/deadlines.h"

namespace modelmux::net {

namespace {

// Deadlines that pass within this of each other are served by one wake: a thousand idle
// connections timing out one after another cost a few walks of the list, not a thousand.
constexpr auto k_coalesce = std::chrono::milliseconds(1);

} // namespace

void Deadline::arm(boost::asio::ip::tcp::socket& socket, Clock::time_point at) {
  m_socket = &socket;
  m_at = at;
  if (!is_linked()) {
    m_deadlines.m_armed.push_back(*this);
  }
  m_deadlines.armed(*this);
}

void Deadline::disarm() {
  if (is_linked()) {
    unlink();
    m_deadlines.release_if_idle();
  }
}

void Deadlines::release_when_idle() {
  m_release_when_idle = true;
  release_if_idle();
}

void Deadlines::release_if_idle() {
  if (m_release_when_idle && m_armed.empty() && waiting()) {
    m_wake = Clock::time_point::max();
    if (m_timer) {
      m_timer->cancel(); // its handler sees the wake changed, and returns
    }
  }
}

void Deadlines::armed(Deadline& deadline) {
  if (deadline.m_at < m_wake) {
    wake_at(deadline.m_at);
  }
}

void Deadlines::wake_at(Clock::time_point at) {
  if (!m_timer) {
    return;
  }
  m_wake = at;
  // Moving the expiry cancels the wait in progress; its handler sees the wake it was for is no
  // longer the one set, and returns.
  m_timer->expires_at(at);
  m_timer->async_wait([this, at](const boost::system::error_code& ec) {
    if (!ec && at == m_wake) {
      on_timer();
    }
  });
}

void Deadlines::on_timer() {
  m_wake = Clock::time_point::max();
  const auto now = Clock::now();
  auto next = Clock::time_point::max();
  for (auto it = m_armed.begin(); it != m_armed.end();) {
    Deadline& deadline = *it;
    if (deadline.m_at <= now) {
      it = m_armed.erase(it);
      deadline.m_expired = true;
      // Closing ends the socket's pending operations with operation_aborted; their handlers run
      // later, from the io_context, so the walk goes on undisturbed.
      boost::system::error_code ignored;
      deadline.m_socket->close(ignored);
    } else {
      next = std::min(next, deadline.m_at);
      ++it;
    }
  }
  if (next != Clock::time_point::max()) {
    wake_at(std::max(next, now + k_coalesce));
  }
}

} // namespace modelmux::net
