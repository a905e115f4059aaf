// A thread pool that grows on demand up to a limit and shrinks when idle. The HTTP server runs
// each connection on one (an open stream holds its thread for its whole life), and stream relays
// read upstreams on another; neither should pay for hundreds of idle threads at start.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <httplib.h>
#include <mutex>

namespace modelmux {

class ElasticPool final : public httplib::TaskQueue {
public:
  explicit ElasticPool(size_t max_threads,
                       std::chrono::milliseconds idle_exit = std::chrono::seconds(60));
  ~ElasticPool() override;

  void enqueue(std::function<void()> fn) override;
  // Runs the queued jobs to completion, then stops every thread.
  void shutdown() override;

  size_t thread_count() const;
  size_t busy_count() const;

private:
  void worker();

  const size_t m_max_threads;
  const std::chrono::milliseconds m_idle_exit;
  mutable std::mutex m_mutex;
  std::condition_variable m_work;
  std::condition_variable m_exited;
  std::deque<std::function<void()>> m_jobs;
  size_t m_threads = 0;
  size_t m_idle = 0;
  bool m_stopping = false;
};

} // namespace modelmux
