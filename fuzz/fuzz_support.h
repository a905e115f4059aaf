// What the fuzz targets share: a check that aborts (so libFuzzer records the input) and a JSON
// validity test for what modelmux writes.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <simdjson.h>
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

} // namespace modelmux::fuzz
