// state_dir/usage.jsonl: one line per finished request, appended by one writer thread fed by a
// lock-free queue, so request threads never touch the disk. Written lines are flushed at least
// every second and everything queued is written on a clean shutdown. Reading streams the file
// a line at a time and skips a torn last line (a crash mid-write) or any line that is not a
// record.
#pragma once

#include "modelmux/log.h"
#include "modelmux/result.h"
#include "modelmux/usage.h"

#include <atomic>
#include <concurrentqueue/concurrentqueue.h>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace modelmux {

class UsageLog {
public:
  // Opens path for appending (creating it and its directory). on_written, when given, sees
  // each record on the writer thread after it is written (for in-memory sums).
  static Result<std::unique_ptr<UsageLog>>
  open(const std::string& path, Log& log, std::function<void(const UsageRecord&)> on_written = {});
  ~UsageLog(); // writes what is queued, flushes, closes

  UsageLog(const UsageLog&) = delete;
  UsageLog& operator=(const UsageLog&) = delete;

  void append(UsageRecord record);
  // Blocks until every record appended before the call is written and flushed.
  void flush();

private:
  UsageLog(std::FILE* file, Log& log, std::function<void(const UsageRecord&)> on_written);
  void run();

  std::FILE* m_file;
  Log& m_log;
  std::function<void(const UsageRecord&)> m_on_written;
  // Appending never wakes the writer: it looks every k_batch_interval, so a request costs one
  // lock-free enqueue, not a thread switch. flush() and the destructor wake it.
  moodycamel::ConcurrentQueue<UsageRecord> m_queue;
  std::atomic<uint64_t> m_appended{0};
  std::mutex m_mutex;
  std::condition_variable m_wake;       // the writer waits on this between batches
  std::condition_variable m_written_cv; // flush() waits on this
  uint64_t m_written = 0;
  bool m_flush_requested = false;
  bool m_stopping = false;
  std::thread m_thread;
};

struct UsageLogRead {
  size_t records = 0;
  size_t skipped = 0; // torn or foreign lines
};

// Calls f for every record in the file, in order; a missing file has none.
UsageLogRead read_usage_log(const std::string& path,
                            const std::function<void(const UsageRecord&)>& f);

} // namespace modelmux
