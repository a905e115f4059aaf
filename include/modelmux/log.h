// Structured event log: one line per event on stderr (the journal under systemd), as logfmt text or
// as JSON. Each line is built in one buffer and written with one write(2), so lines from
// concurrent requests never interleave. Callers never pass secrets or prompt text.
#pragma once

#include <atomic>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>

namespace modelmux {

enum class LogLevel { debug, info, warn, error };
enum class LogFormat { text, json };

struct LogField {
  std::string_view key;
  std::string_view value;
  // Numbers are written bare in JSON; strings quoted.
  bool number = false;
};

class Log {
public:
  using Sink = std::function<void(std::string_view line)>;

  // A log writing to stderr.
  Log();
  // A log writing to sink (tests capture lines this way).
  explicit Log(Sink sink);

  void configure(LogLevel level, LogFormat format);
  bool enabled(LogLevel level) const { return level >= m_level.load(std::memory_order_relaxed); }

  void write(LogLevel level, std::string_view event, std::initializer_list<LogField> fields = {});
  void debug(std::string_view event, std::initializer_list<LogField> fields = {}) {
    write(LogLevel::debug, event, fields);
  }
  void info(std::string_view event, std::initializer_list<LogField> fields = {}) {
    write(LogLevel::info, event, fields);
  }
  void warn(std::string_view event, std::initializer_list<LogField> fields = {}) {
    write(LogLevel::warn, event, fields);
  }
  void error(std::string_view event, std::initializer_list<LogField> fields = {}) {
    write(LogLevel::error, event, fields);
  }

private:
  Sink m_sink;
  std::atomic<LogLevel> m_level{LogLevel::info};
  std::atomic<LogFormat> m_format{LogFormat::text};
};

// Renders one log line (without the trailing newline); pure, for tests.
std::string format_log_line(LogFormat format, LogLevel level, std::string_view event,
                            std::initializer_list<LogField> fields);

std::string_view to_string(LogLevel level);

} // namespace modelmux
