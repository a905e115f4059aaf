// A worker's socket deadlines: the one timer that closes the sockets whose read or write took
// too long. Over loopback TCP sockets on one io_context; each case runs the loop until the reads
// it waits for have ended, never for a fixed time.
#include "net/deadlines.h"

#include <boost/asio/write.hpp>
#include <doctest/doctest.h>

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using modelmux::net::Deadline;
using modelmux::net::Deadlines;
using namespace std::chrono_literals;

// One end of a loopback connection whose other end stays open and silent.
struct Pair {
  explicit Pair(asio::io_context& io, tcp::acceptor& acceptor) : near(io), far(io) {
    near.connect(acceptor.local_endpoint());
    acceptor.accept(far);
  }
  tcp::socket near;
  tcp::socket far;
};

struct Loop {
  asio::io_context io;
  tcp::acceptor acceptor{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  Deadlines deadlines;
  Loop() { deadlines.start(io); }
  ~Loop() { deadlines.stop(); }
};

// Reads a byte on pair.near, running the loop until the read has ended; result says how.
void read_to_end(Loop& loop, Pair& pair, char* byte, boost::system::error_code& result) {
  bool done = false;
  pair.near.async_read_some(asio::buffer(byte, 1),
                            [&result, &done](const boost::system::error_code& ec, size_t) {
                              result = ec;
                              done = true;
                            });
  while (!done) {
    loop.io.run_one();
  }
}

} // namespace

TEST_CASE("a read whose deadline passes ends aborted and its deadline says it expired") {
  Loop loop;
  Pair pair(loop.io, loop.acceptor);
  Deadline deadline(loop.deadlines);
  char byte = 0;
  boost::system::error_code ec;
  const auto started = Deadline::Clock::now();
  deadline.arm(pair.near, started + 20ms);
  read_to_end(loop, pair, &byte, ec);
  CHECK(ec == asio::error::operation_aborted);
  CHECK(deadline.expired());
  CHECK_FALSE(pair.near.is_open());
  CHECK(Deadline::Clock::now() - started >= 20ms);
  CHECK(loop.deadlines.armed() == 0);
}

TEST_CASE("a deadline earlier than every other fires first and the later ones keep their sockets") {
  Loop loop;
  Pair late_pair(loop.io, loop.acceptor);
  Pair soon_pair(loop.io, loop.acceptor);
  Deadline late(loop.deadlines);
  Deadline soon(loop.deadlines);
  late.arm(late_pair.near, Deadline::Clock::now() + 1h);
  soon.arm(soon_pair.near, Deadline::Clock::now() + 20ms); // moves the worker's wake earlier
  char byte = 0;
  boost::system::error_code ec;
  read_to_end(loop, soon_pair, &byte, ec);
  CHECK(soon.expired());
  CHECK_FALSE(late.expired());
  CHECK(late_pair.near.is_open());
  CHECK(loop.deadlines.armed() == 1);
}

TEST_CASE("a disarmed deadline never closes its socket, and a re-armed one counts from anew") {
  Loop loop;
  Pair kept_pair(loop.io, loop.acceptor);
  Pair timed_pair(loop.io, loop.acceptor);
  Deadline kept(loop.deadlines);
  Deadline timed(loop.deadlines);
  kept.arm(kept_pair.near, Deadline::Clock::now() + 10ms);
  kept.disarm(); // the operation ended in time
  kept.arm(kept_pair.near, Deadline::Clock::now() + 1h);
  timed.arm(timed_pair.near, Deadline::Clock::now() + 40ms);
  char byte = 0;
  boost::system::error_code ec;
  read_to_end(loop, timed_pair, &byte, ec);
  CHECK(timed.expired());
  CHECK_FALSE(kept.expired());
  CHECK(kept_pair.near.is_open());
}

TEST_CASE("a read that ends in time is not cut off by the deadline it was armed with") {
  Loop loop;
  Pair pair(loop.io, loop.acceptor);
  Deadline deadline(loop.deadlines);
  deadline.arm(pair.near, Deadline::Clock::now() + 50ms);
  asio::write(pair.far, asio::buffer("x", 1));
  char byte = 0;
  boost::system::error_code ec;
  read_to_end(loop, pair, &byte, ec);
  deadline.disarm();
  CHECK_FALSE(ec);
  CHECK(byte == 'x');
  // The worker's timer still wakes at the old deadline and finds nothing to close.
  Pair witness(loop.io, loop.acceptor);
  Deadline after(loop.deadlines);
  after.arm(witness.near, Deadline::Clock::now() + 80ms);
  read_to_end(loop, witness, &byte, ec);
  CHECK(after.expired());
  CHECK_FALSE(deadline.expired());
  CHECK(pair.near.is_open());
}
