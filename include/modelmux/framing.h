// RFC 9112's framing rules for a request head, checked by the front door once the head is parsed
// and before any route sees the request (SPEC §6). Two parsers that disagree on where a request
// ends let a second request hide in a body: every shape on which a proxy, a load balancer or an
// upstream could frame a request otherwise than modelmux does is refused, and the connection
// closed. Pure: fields in, a verdict out, no allocation.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace modelmux {

// Why a request's head is refused: the status to answer (400, 501 or 505) and a sentence for
// the client. The connection always closes after it.
struct FramingRefusal {
  int status = 400;
  std::string_view message;
};

// Fed the head's fields one by one, then asked for a verdict.
class RequestFraming {
public:
  void field(std::string_view name, std::string_view value);
  // version: 10 for HTTP/1.0, 11 for HTTP/1.1 (Beast's numbering).
  std::optional<FramingRefusal> verdict(unsigned version) const;

private:
  void transfer_coding(std::string_view coding);

  int m_hosts = 0;
  int m_content_lengths = 0;
  bool m_content_length_list = false; // "Content-Length: 5, 5"
  bool m_transfer_encoding = false;
  bool m_chunked_not_last = false; // chunked applied, then another coding after it
  bool m_last_chunked = false;
  bool m_unknown_coding = false; // a coding modelmux does not decode (gzip, identity, ...)
  bool m_bad_value = false;      // a NUL, CR or LF inside a field value
};

// What is wrong with the lines of a request head: bytes from the start of a head line (the
// parser takes lines as they complete) up to the first empty line, all of them while the head
// is incomplete. A bare LF ends no line here (RFC 9112 §2.2 lets a server refuse
// it), and an obs-fold continuation line is refused rather than joined (RFC 9112 §5.2), as nginx
// does: a proxy in front that joins it otherwise could see other fields than modelmux.
enum class HeadLineFault { none, bare_lf, obs_fold };
HeadLineFault head_line_fault(std::string_view head);

// Whether bytes the parser could not use yet hold a bare LF: inside a chunked body they are
// a chunk-size line or a trailer, which end in CRLF (RFC 9112 §7.1). A parser that waits for
// the CR would hold the connection until the read deadline; this refuses it at once.
bool holds_bare_lf(std::string_view pending);

} // namespace modelmux
