// RFC 9112's framing rules for a request head.
#include "modelmux/framing.h"

#include "modelmux/http.h"

namespace modelmux {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

} // namespace

void RequestFraming::field(std::string_view name, std::string_view value) {
  if (value.find_first_of(std::string_view("\0\r\n", 3)) != std::string_view::npos) {
    m_bad_value = true;
  }
  if (iequals(name, "host")) {
    ++m_hosts;
  } else if (iequals(name, "content-length")) {
    ++m_content_lengths;
    m_content_length_list = m_content_length_list || value.find(',') != std::string_view::npos;
  } else if (iequals(name, "transfer-encoding")) {
    m_transfer_encoding = true;
    // A list may span several fields: their codings apply in order (RFC 9110 §5.3).
    size_t start = 0;
    for (;;) {
      const size_t comma = value.find(',', start);
      transfer_coding(trim(value.substr(start, comma - start)));
      if (comma == std::string_view::npos) {
        break;
      }
      start = comma + 1;
    }
  }
}

void RequestFraming::transfer_coding(std::string_view coding) {
  if (coding.empty()) {
    return; // empty list elements are allowed and mean nothing (RFC 9110 §5.6.1)
  }
  // A coding's parameters (";q=...") do not change what it is.
  const auto name = trim(coding.substr(0, coding.find(';')));
  if (m_last_chunked) {
    m_chunked_not_last = true; // chunked must be applied once, and last (RFC 9112 §6.1)
  }
  m_last_chunked = iequals(name, "chunked");
  if (!m_last_chunked) {
    m_unknown_coding = true;
  }
}

std::optional<FramingRefusal> RequestFraming::verdict(unsigned version) const {
  if (version != 10 && version != 11) {
    return FramingRefusal{505, "modelmux speaks HTTP/1.0 and HTTP/1.1 only"};
  }
  if (m_bad_value) {
    return FramingRefusal{400, "a header value holds a NUL, CR or LF"};
  }
  if (m_transfer_encoding) {
    if (version == 10) {
      return FramingRefusal{400, "Transfer-Encoding in an HTTP/1.0 request"};
    }
    if (m_content_lengths > 0) {
      return FramingRefusal{400, "both Content-Length and Transfer-Encoding"};
    }
    if (!m_last_chunked || m_chunked_not_last) {
      return FramingRefusal{400, "Transfer-Encoding whose final coding is not chunked"};
    }
    if (m_unknown_coding) {
      return FramingRefusal{501, "a transfer coding other than chunked"};
    }
  }
  if (m_content_lengths > 1 || m_content_length_list) {
    return FramingRefusal{400, "more than one Content-Length"};
  }
  if (m_hosts > 1) {
    return FramingRefusal{400, "more than one Host header"};
  }
  if (version == 11 && m_hosts == 0) {
    return FramingRefusal{400, "an HTTP/1.1 request without a Host header"};
  }
  return std::nullopt;
}

HeadLineFault head_line_fault(std::string_view head) {
  // The parser takes a head's lines as they complete, so these bytes start at a line: the empty
  // line that ends the head may be the very first, its CRLF before already taken.
  if (head.starts_with("\r\n")) {
    return HeadLineFault::none;
  }
  const size_t end = head.find("\r\n\r\n");
  if (end != std::string_view::npos) {
    head = head.substr(0, end + 2);
  }
  for (size_t at = head.find('\n'); at != std::string_view::npos; at = head.find('\n', at + 1)) {
    if (at == 0 || head[at - 1] != '\r') {
      return HeadLineFault::bare_lf;
    }
    if (at + 1 < head.size() && (head[at + 1] == ' ' || head[at + 1] == '\t')) {
      return HeadLineFault::obs_fold;
    }
  }
  return HeadLineFault::none;
}

bool holds_bare_lf(std::string_view pending) {
  for (size_t at = pending.find('\n'); at != std::string_view::npos;
       at = pending.find('\n', at + 1)) {
    if (at == 0 || pending[at - 1] != '\r') {
      return true;
    }
  }
  return false;
}

} // namespace modelmux
