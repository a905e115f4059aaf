// What the fuzz targets share: a check that aborts (so libFuzzer records the input) and a JSON
// validity test for what modelmux writes.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <simdjson.h>
#include <string>
#include <string_view>

namespace modelmux::fuzz {

inline void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
    std::abort();
  }
}

inline bool is_json(std::string_view text) {
  static thread_local simdjson::dom::parser parser;
  simdjson::dom::element ignored;
  return !parser.parse(simdjson::padded_string(text)).get(ignored);
}

// Reads relayed SSE as a client does: an event's data lines joined by newlines, at each blank
// line. Every event's data is JSON (or [DONE]), and the last event is terminated.
inline void check_sse_output(std::string_view out) {
  std::string data;
  bool has_data = false;
  size_t pos = 0;
  while (pos < out.size()) {
    const size_t end = std::min(out.find('\n', pos), out.size());
    const std::string_view line = out.substr(pos, end - pos);
    if (line.empty()) {
      if (has_data && data != "[DONE]") {
        require(is_json(data), "every event's data is JSON");
      }
      data.clear();
      has_data = false;
    } else if (line.starts_with("data: ")) {
      if (has_data) {
        data += '\n';
      }
      data += line.substr(6);
      has_data = true;
    }
    pos = end + 1;
  }
  require(!has_data, "the last event is terminated");
}

} // namespace modelmux::fuzz
