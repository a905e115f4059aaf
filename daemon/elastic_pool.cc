// The elastic pool: threads start when work arrives and nobody is idle, and leave after a while
// without work. Threads are detached; shutdown waits for the count to reach zero.
#include "modelmux/elastic_pool.h"

#include <thread>

namespace modelmux {

ElasticPool::ElasticPool(size_t max_threads, std::chrono::milliseconds idle_exit)
    : m_max_threads(max_threads == 0 ? 1 : max_threads), m_idle_exit(idle_exit) {}

ElasticPool::~ElasticPool() {
  shutdown();
}

void ElasticPool::enqueue(std::function<void()> fn) {
  std::unique_lock lock(m_mutex);
  m_jobs.push_back(std::move(fn));
  // An idle thread counts until it wakes and takes a job, so a burst must compare the queue
  // with the idle threads, not just ask whether any is idle: otherwise a second long job waits
  // behind the first for a thread that is already spoken for.
  if (m_jobs.size() > m_idle && m_threads < m_max_threads) {
    ++m_threads;
    std::thread([this] { worker(); }).detach();
    return;
  }
  lock.unlock();
  m_work.notify_one();
}

void ElasticPool::shutdown() {
  std::unique_lock lock(m_mutex);
  m_stopping = true;
  m_work.notify_all();
  m_exited.wait(lock, [&] { return m_threads == 0; });
}

size_t ElasticPool::thread_count() const {
  std::lock_guard lock(m_mutex);
  return m_threads;
}

size_t ElasticPool::busy_count() const {
  std::lock_guard lock(m_mutex);
  return m_threads - m_idle;
}

void ElasticPool::worker() {
  std::unique_lock lock(m_mutex);
  for (;;) {
    if (m_jobs.empty()) {
      if (m_stopping) {
        break;
      }
      ++m_idle;
      const bool woke =
          m_work.wait_for(lock, m_idle_exit, [&] { return !m_jobs.empty() || m_stopping; });
      --m_idle;
      if (!woke) {
        break; // idle long enough: give the thread back
      }
      continue;
    }
    auto job = std::move(m_jobs.front());
    m_jobs.pop_front();
    lock.unlock();
    job();
    job = nullptr; // release what the job captured before taking the lock again
    lock.lock();
  }
  --m_threads;
  if (m_threads == 0) {
    m_exited.notify_all();
  }
}

} // namespace modelmux
