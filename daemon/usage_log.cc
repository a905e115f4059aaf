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

UsageLog::~UsageLog() {
  m_stopping = true;
  m_queue.enqueue(UsageRecord{}); // wakes the writer; a record with no id is not written
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
  m_written_cv.wait(lock, [&] { return m_written >= target; });
}

void UsageLog::run() {
  std::vector<UsageRecord> batch(256);
  std::string lines;
  for (;;) {
    // At most a second between flushes; a busy daemon writes in batches.
    const size_t n =
        m_queue.wait_dequeue_bulk_timed(batch.begin(), batch.size(), std::chrono::seconds(1));
    lines.clear();
    size_t records = 0;
    for (size_t i = 0; i < n; ++i) {
      if (batch[i].request_id.empty()) {
        continue; // the stop signal
      }
      lines += to_json_line(batch[i]);
      ++records;
    }
    if (!lines.empty()) {
      if (std::fwrite(lines.data(), 1, lines.size(), m_file) != lines.size() ||
          std::fflush(m_file) != 0) {
        m_log.error("usage_log_write_failed", {{"reason", std::strerror(errno)}});
      }
      if (m_on_written) {
        for (size_t i = 0; i < n; ++i) {
          if (!batch[i].request_id.empty()) {
            m_on_written(batch[i]);
          }
        }
      }
    }
    {
      std::lock_guard lock(m_mutex);
      m_written += records;
    }
    m_written_cv.notify_all();
    if (m_stopping && m_queue.size_approx() == 0) {
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
