// A wake-up for one waiting coroutine on an event loop: tasks racing on the same worker (a
// hedged request's two attempts) notify it; the waiter sleeps until a notification it has not
// seen, or a deadline. No lock: everything involved runs on one thread.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdint>

namespace modelmux::net {

class Signal {
public:
  explicit Signal(const boost::asio::any_io_executor& executor) : m_timer(executor) {}

  uint64_t version() const { return m_version; }
  void notify() {
    ++m_version;
    m_timer.cancel();
  }
  // Returns at once when a notification came since seen; else at the next one or at deadline.
  boost::asio::awaitable<void> wait(uint64_t seen, std::chrono::steady_clock::time_point deadline) {
    if (m_version != seen) {
      co_return;
    }
    m_timer.expires_at(deadline);
    co_await m_timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
  }

private:
  boost::asio::steady_timer m_timer;
  uint64_t m_version = 0;
};

} // namespace modelmux::net
