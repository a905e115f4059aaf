// One worker's socket deadlines under one timer. Beast's tcp_stream arms an Asio timer for every
// read and write it does: a timer-queue insert under the reactor's lock, often a timerfd_settime,
// then a cancel and a cancelled wait to run when the operation ends — five of each per proxied
// request. Here a deadline is a time stored in its socket's entry. The worker's one timer wakes
// at the earliest, closes the sockets whose time has passed (their pending operation ends
// aborted, and the entry says it expired), and sleeps until the next. Arming a deadline later
// than the timer's wake, the common case, is two stores and a list link; only an earlier one
// moves the timer.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/list.hpp>
#include <chrono>
#include <optional>

namespace modelmux::net {

class Deadlines;

// The deadline of one socket's pending operations. Expiry is final: the socket is closed, and
// the connection is done with.
class Deadline : public boost::intrusive::list_base_hook<
                     boost::intrusive::link_mode<boost::intrusive::auto_unlink>> {
public:
  using Clock = std::chrono::steady_clock;

  explicit Deadline(Deadlines& deadlines) : m_deadlines(deadlines) {}
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;
  ~Deadline() { disarm(); }

  // Closes socket at `at` unless disarmed first. The socket is named each time: a connection's
  // socket moves into its TLS stream after the connect.
  void arm(boost::asio::ip::tcp::socket& socket, Clock::time_point at);
  void disarm();
  // Whether a deadline passed and closed the socket: a failed operation then timed out.
  bool expired() const { return m_expired; }

private:
  friend class Deadlines;
  Deadlines& m_deadlines;
  boost::asio::ip::tcp::socket* m_socket = nullptr;
  Clock::time_point m_at;
  bool m_expired = false;
};

class Deadlines {
public:
  using Clock = Deadline::Clock;

  Deadlines() = default;
  Deadlines(const Deadlines&) = delete;
  Deadlines& operator=(const Deadlines&) = delete;

  // Deadlines fire from io's thread from now on (before, they are only kept).
  void start(boost::asio::io_context& io) { m_timer.emplace(io); }
  // The worker is going away: the timer goes while its io_context still lives; entries armed
  // from now on (by coroutines destroyed with the io_context) never fire.
  void stop() {
    m_timer.reset();
    m_armed.clear();
  }

  // A drain is on: from now on the timer waits only while a deadline is armed. Its wait is
  // the one thing a loop would otherwise keep after its last socket closed — a wake set for a
  // keep-alive or write deadline that was disarmed long ago — and would hold run() until then.
  void release_when_idle();

  size_t armed() const { return m_armed.size(); }
  // Whether the timer has a wait pending: a loop with none and no socket has nothing to run.
  bool waiting() const { return m_wake != Clock::time_point::max(); }

private:
  friend class Deadline;
  using List = boost::intrusive::list<Deadline, boost::intrusive::constant_time_size<false>>;

  void armed(Deadline& deadline);
  void wake_at(Clock::time_point at);
  void on_timer();
  // Nothing is armed and a drain is on: the pending wait, if any, goes.
  void release_if_idle();

  std::optional<boost::asio::steady_timer> m_timer;
  List m_armed;
  Clock::time_point m_wake = Clock::time_point::max();
  bool m_release_when_idle = false;
};

} // namespace modelmux::net
