// The front door's framing checks (SPEC §6) on any bytes, as the front door runs them: a head's
// lines judged before Beast parses them, then RequestFraming over the parsed fields. The bytes
// are fed whole and in two pieces (the first input byte picks the cut): whether a head is served
// must not depend on how the bytes arrived, and a head that passes frames one way only.
#include "fuzz_support.h"
#include "modelmux/framing.h"
#include "modelmux/http.h"

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <optional>
#include <string>

using namespace modelmux;
namespace http = boost::beast::http;

namespace {

struct Verdict {
  bool head_done = false;
  int refused = 0; // 0, or the status the front door answers with (400 for a parser error)
  bool operator==(const Verdict&) const = default;
};

// Runs the checks as Connection::read_request does, the bytes arriving in the given pieces.
Verdict front_door(std::string_view bytes, size_t cut) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(64 * 1024);
  parser.body_limit(1024 * 1024);
  parser.eager(false);
  std::string pending;
  Verdict v;
  for (const auto piece : {bytes.substr(0, cut), bytes.substr(cut)}) {
    pending.append(piece);
    if (head_line_fault(pending) != HeadLineFault::none) {
      v.refused = 400;
      return v;
    }
    boost::system::error_code ec;
    const size_t used = parser.put(boost::asio::buffer(pending.data(), pending.size()), ec);
    pending.erase(0, used);
    if (ec && ec != http::error::need_more) {
      v.refused = 400;
      return v;
    }
    if (parser.is_header_done()) {
      break;
    }
  }
  if (!parser.is_header_done()) {
    return v;
  }
  v.head_done = true;
  RequestFraming framing;
  int hosts = 0;
  bool content_length = false;
  bool transfer_encoding = false;
  for (const auto& field : parser.get()) {
    const std::string_view name(field.name_string().data(), field.name_string().size());
    framing.field(name, std::string_view(field.value().data(), field.value().size()));
    hosts += iequals(name, "host") ? 1 : 0;
    content_length = content_length || iequals(name, "content-length");
    transfer_encoding = transfer_encoding || iequals(name, "transfer-encoding");
  }
  if (const auto refusal = framing.verdict(parser.get().version())) {
    fuzz::require(refusal->status == 400 || refusal->status == 501 || refusal->status == 505,
                  "a framing refusal is a 400, 501 or 505");
    v.refused = refusal->status;
    return v;
  }
  // What passes frames one way: one Host in HTTP/1.1, never both lengths, chunked last.
  fuzz::require(parser.get().version() != 11 || hosts == 1, "an HTTP/1.1 head passed without "
                                                            "exactly one Host");
  fuzz::require(!(content_length && transfer_encoding), "a head passed with both lengths");
  fuzz::require(!transfer_encoding || parser.chunked(), "a Transfer-Encoding passed that Beast "
                                                        "does not read as chunked");
  fuzz::require(parser.get().version() == 10 || parser.get().version() == 11,
                "a head passed with a version other than 1.0 and 1.1");
  return v;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t cut = bytes.empty() ? 0 : data[0] % (bytes.size() + 1);
  const Verdict whole = front_door(bytes, bytes.size());
  const Verdict split = front_door(bytes, cut);
  // However the bytes were cut, a head is served by both or by neither, and a head both parse
  // whole is judged alike. (Beast may find a fault in an unfinished head sooner or later
  // depending on where a read ended: refused now or waiting for more, never served.)
  const auto served = [](const Verdict& v) { return v.head_done && v.refused == 0; };
  fuzz::require(served(whole) == served(split), "a head is served or not by where it was cut");
  if (whole.head_done && split.head_done) {
    fuzz::require(whole.refused == split.refused, "a whole head is judged by where it was cut");
  }
  return 0;
}
