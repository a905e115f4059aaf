// The event log: logfmt or JSON lines, one write(2) each.
#include "modelmux/log.h"

#include "modelmux/json.h"

#include <unistd.h>

namespace modelmux {

namespace {

bool needs_quotes(std::string_view v) {
  if (v.empty()) {
    return true;
  }
  for (const char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      return true;
    }
  }
  return false;
}

void write_stderr(std::string_view line) {
  std::string buf;
  buf.reserve(line.size() + 1);
  buf.append(line);
  buf.push_back('\n');
  size_t off = 0;
  while (off < buf.size()) {
    const ssize_t n = ::write(STDERR_FILENO, buf.data() + off, buf.size() - off);
    if (n <= 0) {
      return;
    }
    off += static_cast<size_t>(n);
  }
}

} // namespace

std::string_view to_string(LogLevel level) {
  switch (level) {
  case LogLevel::debug:
    return "debug";
  case LogLevel::info:
    return "info";
  case LogLevel::warn:
    return "warn";
  case LogLevel::error:
    return "error";
  }
  return "info";
}

std::string format_log_line(LogFormat format, LogLevel level, std::string_view event,
                            std::initializer_list<LogField> fields) {
  std::string line;
  line.reserve(128);
  if (format == LogFormat::json) {
    JsonWriter w(line);
    w.begin_object().field("level", to_string(level)).field("event", event);
    for (const auto& f : fields) {
      w.key(f.key);
      if (f.number) {
        w.raw(f.value);
      } else {
        w.value(f.value);
      }
    }
    w.end_object();
    return line;
  }
  line.append("level=").append(to_string(level)).append(" event=").append(event);
  for (const auto& f : fields) {
    line.push_back(' ');
    line.append(f.key).push_back('=');
    if (needs_quotes(f.value)) {
      append_json_string(line, f.value);
    } else {
      line.append(f.value);
    }
  }
  return line;
}

Log::Log() : m_sink(write_stderr) {}

Log::Log(Sink sink) : m_sink(std::move(sink)) {}

void Log::configure(LogLevel level, LogFormat format) {
  m_level.store(level, std::memory_order_relaxed);
  m_format.store(format, std::memory_order_relaxed);
}

void Log::write(LogLevel level, std::string_view event, std::initializer_list<LogField> fields) {
  if (!enabled(level)) {
    return;
  }
  m_sink(format_log_line(m_format.load(std::memory_order_relaxed), level, event, fields));
}

} // namespace modelmux
