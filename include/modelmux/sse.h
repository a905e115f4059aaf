// An incremental parser for server-sent events (the WHATWG event-stream format), for reading
// upstream streams that arrive in slices cut at arbitrary bytes. It keeps only the unfinished
// line and the unfinished event between slices, so memory stays constant per event whatever the
// length of the stream.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace modelmux {

// Appends one event to out: "event: NAME" when event is not empty, then data, one data line per
// line of data, and the blank line that ends it.
void append_sse(std::string& out, std::string_view event, std::string_view data);

class SseHandler {
public:
  virtual ~SseHandler() = default;
  // One complete event. event is empty when the stream named none; data is the event's data
  // lines joined with '\n'. Both views are valid only during the call.
  virtual void on_event(std::string_view event, std::string_view data) = 0;
  // A comment line (":" and what follows it), which servers send to keep a quiet stream alive.
  virtual void on_comment(std::string_view) {}
};

class SseParser {
public:
  // An event (or a line) larger than this is an attack or a broken upstream, not a model answer.
  static constexpr size_t k_default_max_event_bytes = 16 * 1024 * 1024;

  explicit SseParser(size_t max_event_bytes = k_default_max_event_bytes)
      : m_max_event_bytes(max_event_bytes) {}

  // Parses bytes, calling handler for every event they complete. Lines may end in LF, CRLF or
  // CR, also when the CR and LF arrive in different slices. Comments (":...") are skipped.
  void feed(std::string_view bytes, SseHandler& handler);

  // The stream ended. An event left without its closing blank line (or its last line without a
  // line break) is dispatched anyway: servers that end on "data: [DONE]" with no blank line are
  // common, and the handler decides whether what came is complete. True if it dispatched one.
  bool finish(SseHandler& handler);

  // An event exceeded the size limit; everything after it was ignored.
  bool overflowed() const { return m_overflowed; }

private:
  void take_line(std::string_view line, SseHandler& handler);
  void dispatch(SseHandler& handler);

  size_t m_max_event_bytes;
  std::string m_line;  // a line not yet ended, carried to the next slice
  std::string m_data;  // the data lines of the event being read
  std::string m_event; // its event name
  bool m_has_data = false;
  bool m_skip_lf = false; // the last slice ended in CR: an LF starting the next one is its pair
  bool m_overflowed = false;
};

} // namespace modelmux
