// Server-sent events, parsed a slice at a time.
#include "modelmux/sse.h"

#include <cstring>

namespace modelmux {

namespace {

// The offset of the first CR or LF in s, or npos.
size_t find_line_break(std::string_view s) {
  const void* lf = std::memchr(s.data(), '\n', s.size());
  const size_t lf_at = lf ? static_cast<size_t>(static_cast<const char*>(lf) - s.data()) : s.size();
  const void* cr = std::memchr(s.data(), '\r', lf_at);
  if (cr != nullptr) {
    return static_cast<size_t>(static_cast<const char*>(cr) - s.data());
  }
  return lf ? lf_at : std::string_view::npos;
}

} // namespace

void SseParser::feed(std::string_view bytes, SseHandler& handler) {
  if (m_overflowed) {
    return;
  }
  size_t i = 0;
  if (m_skip_lf && !bytes.empty()) {
    m_skip_lf = false;
    if (bytes.front() == '\n') {
      i = 1;
    }
  }
  while (i < bytes.size()) {
    const std::string_view rest = bytes.substr(i);
    const size_t brk = find_line_break(rest);
    if (brk == std::string_view::npos) {
      if (m_line.size() + rest.size() > m_max_event_bytes) {
        m_overflowed = true;
        return;
      }
      m_line.append(rest);
      return;
    }
    if (m_line.empty()) {
      take_line(rest.substr(0, brk), handler);
    } else {
      m_line.append(rest.substr(0, brk));
      take_line(m_line, handler);
      m_line.clear();
    }
    if (m_overflowed) {
      return;
    }
    i += brk + 1;
    if (rest[brk] == '\r') {
      if (i < bytes.size()) {
        if (bytes[i] == '\n') {
          ++i;
        }
      } else {
        m_skip_lf = true;
      }
    }
  }
}

bool SseParser::finish(SseHandler& handler) {
  if (m_overflowed) {
    return false;
  }
  if (!m_line.empty()) {
    const std::string line = std::move(m_line);
    m_line.clear();
    take_line(line, handler);
  }
  const bool pending = m_has_data;
  dispatch(handler);
  m_skip_lf = false;
  return pending;
}

void SseParser::take_line(std::string_view line, SseHandler& handler) {
  if (line.empty()) {
    dispatch(handler);
    return;
  }
  if (line.front() == ':') {
    handler.on_comment(line.substr(1));
    return;
  }
  const size_t colon = line.find(':');
  const std::string_view field = line.substr(0, colon);
  std::string_view value;
  if (colon != std::string_view::npos) {
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') {
      value.remove_prefix(1);
    }
  }
  if (field == "data") {
    if (m_data.size() + value.size() + 1 > m_max_event_bytes) {
      m_overflowed = true;
      return;
    }
    if (m_has_data) {
      m_data.push_back('\n');
    }
    m_data.append(value);
    m_has_data = true;
  } else if (field == "event") {
    m_event.assign(value);
  }
  // "id" and "retry" steer browser reconnection, which a proxied answer never does.
}

void SseParser::dispatch(SseHandler& handler) {
  if (m_has_data) {
    handler.on_event(m_event, m_data);
  }
  m_data.clear();
  m_event.clear();
  m_has_data = false;
}

void append_sse(std::string& out, std::string_view event, std::string_view data) {
  if (!event.empty()) {
    out.append("event: ").append(event).push_back('\n');
  }
  // Data that came in several data lines goes out in as many.
  for (size_t nl = data.find('\n'); nl != std::string_view::npos; nl = data.find('\n')) {
    out.append("data: ").append(data.substr(0, nl)).push_back('\n');
    data.remove_prefix(nl + 1);
  }
  out.append("data: ").append(data).append("\n\n");
}

} // namespace modelmux
