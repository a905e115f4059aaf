// The usage log's writer thread and reader.
#include "modelmux/usage_log.h"

#include <cstring>
#include <filesystem>
#include <vector>

namespace modelmux {

Result<std::unique_ptr<UsageLog>>
UsageLog::open(const std::string& path, Log& log,
               std::function<void(const UsageRecord&)> on_written) {
  std::error_code ec;
  const auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) {
    std::filesystem::create_directories(dir, ec);
  }
  std::FILE* file = std::fopen(path.c_str(), "a+");
  if (file == nullptr) {
    return make_error(ErrorKind::internal,
                      "cannot open the usage log " + path + ": " + std::strerror(errno));
  }
  // A crash mid-write leaves a torn last line; end it, so the next record starts a line of its
  // own and only the torn one is lost.
  if (std::fseek(file, -1, SEEK_END) == 0 && std::fgetc(file) != '\n') {
    std::fseek(file, 0, SEEK_END);
    std::fputc('\n', file);
    std::fflush(file);
  }
  return std::unique_ptr<UsageLog>(new UsageLog(file, log, std::move(on_written)));
}

UsageLog::UsageLog(std::FILE* file, Log& log, std::function<void(const UsageRecord&)> on_written)
    : m_file(file), m_log(log), m_on_written(std::move(on_written)), m_thread([this] { run(); }) {}

namespace {

// How often the writer looks at the queue: well inside the promised second.
constexpr auto k_batch_interval = std::chrono::milliseconds(200);

} // namespace

UsageLog::~UsageLog() {
  {
    std::lock_guard lock(m_mutex);
    m_stopping = true;
  }
  m_wake.notify_all();
  m_thread.join();
  std::fclose(m_file);
}

void UsageLog::append(UsageRecord record) {
  ++m_appended;
  m_queue.enqueue(std::move(record));
}

void UsageLog::flush() {
  const uint64_t target = m_appended.load();
  std::unique_lock lock(m_mutex);
  m_flush_requested = true;
  m_wake.notify_all();
  m_written_cv.wait(lock, [&] { return m_written >= target; });
}

void UsageLog::run() {
  std::vector<UsageRecord> batch(256);
  std::string lines;
  for (;;) {
    bool stopping = false;
    {
      std::unique_lock lock(m_mutex);
      m_wake.wait_for(lock, k_batch_interval, [&] { return m_stopping || m_flush_requested; });
      m_flush_requested = false;
      stopping = m_stopping;
    }
    // Everything queued by now, in batches.
    for (;;) {
      const size_t n = m_queue.try_dequeue_bulk(batch.begin(), batch.size());
      if (n == 0) {
        break;
      }
      lines.clear();
      for (size_t i = 0; i < n; ++i) {
        lines += to_json_line(batch[i]);
      }
      if (std::fwrite(lines.data(), 1, lines.size(), m_file) != lines.size() ||
          std::fflush(m_file) != 0) {
        m_log.error("usage_log_write_failed", {{"reason", std::strerror(errno)}});
      }
      if (m_on_written) {
        for (size_t i = 0; i < n; ++i) {
          m_on_written(batch[i]);
        }
      }
      {
        std::lock_guard lock(m_mutex);
        m_written += n;
      }
      m_written_cv.notify_all();
    }
    if (stopping) {
      return;
    }
  }
}

UsageLogRead read_usage_log(const std::string& path,
                            const std::function<void(const UsageRecord&)>& f) {
  UsageLogRead out;
  std::FILE* file = std::fopen(path.c_str(), "r");
  if (file == nullptr) {
    return out;
  }
  char* line = nullptr;
  size_t capacity = 0;
  ssize_t length = 0;
  while ((length = getline(&line, &capacity, file)) > 0) {
    std::string_view text(line, static_cast<size_t>(length));
    if (text.back() != '\n') {
      ++out.skipped; // torn: the daemon stopped mid-line
      continue;
    }
    const auto record = parse_usage_line(text);
    if (!record) {
      ++out.skipped;
      continue;
    }
    ++out.records;
    f(*record);
  }
  std::free(line);
  std::fclose(file);
  return out;
}

} // namespace modelmux
