// One event loop and what it owns: its io_context, its socket deadlines, its upstream
// connections, its client connections (for a drain to find the idle ones) and a free list of
// request body parsers. A request lives on the worker that accepted its connection, from first byte
// to last; nothing here is touched by another thread.
#pragma once

#include "modelmux/app.h"
#include "modelmux/request_body.h"
#include "net/upstream_client.h"

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <list>
#include <memory>
#include <vector>

namespace modelmux::net {

class Connection;

struct Worker {
  explicit Worker(ClientTls& tls) : pools(io, tls, deadlines) { deadlines.start(io); }
  ~Worker() {
    pools.close();
    deadlines.stop();
  }

  // A parser for one request's body, kept across its waits; back to the list when done.
  std::unique_ptr<BodyParser> take_parser() {
    if (parsers.empty()) {
      return std::make_unique<BodyParser>();
    }
    auto p = std::move(parsers.back());
    parsers.pop_back();
    return p;
  }
  void give_back(std::unique_ptr<BodyParser> parser) {
    // A parser grown by a huge body is dropped, so it does not pin the memory.
    if (parsers.size() < 64 && parser->dom.capacity() <= 1024 * 1024) {
      parsers.push_back(std::move(parser));
    }
  }

  // The config snapshot of the moment: this loop's own copy, loaded again only when the App
  // published a new one. A request that suspends keeps a copy of the pointer, not a reference.
  const std::shared_ptr<const Snapshot>& snapshot(const App& app) {
    const uint64_t generation = app.snapshot_generation();
    if (!current_snapshot || generation != snapshot_generation) {
      snapshot_generation = generation;
      current_snapshot = app.snapshot();
    }
    return current_snapshot;
  }
  std::shared_ptr<const Snapshot> current_snapshot;
  uint64_t snapshot_generation = 0;

  // Whether the daemon is draining: set by the server, read by requests in flight (no new
  // hedge starts during a drain).
  bool draining() const {
    return drain_flag != nullptr && drain_flag->load(std::memory_order_relaxed);
  }
  const std::atomic<bool>* drain_flag = nullptr;

  // Declared before io so that they outlive it: destroying the io_context destroys the
  // coroutines still suspended on it, and their destructors reach these.
  std::list<Connection*> connections;
  std::vector<std::unique_ptr<BodyParser>> parsers;
  Deadlines deadlines;
  UpstreamPools pools;
  asio::io_context io{1};
};

} // namespace modelmux::net
