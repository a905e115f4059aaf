// A small JSON writer: modelmux parses with simdjson and writes its own answers (errors, model
// lists, mock replies, health) with this. It appends to a caller-owned string so a hot-path
// caller can reuse one buffer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace modelmux {

// Appends s as a quoted JSON string, escaping what RFC 8259 requires. Bytes that are not valid
// UTF-8 are replaced with U+FFFD so the output is always valid JSON.
void append_json_string(std::string& out, std::string_view s);

class JsonWriter {
public:
  explicit JsonWriter(std::string& out) : m_out(out) {}

  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view k);
  JsonWriter& value(std::string_view s);
  JsonWriter& value(const char* s) { return value(std::string_view(s)); }
  JsonWriter& value(int64_t n);
  JsonWriter& value(int n) { return value(static_cast<int64_t>(n)); }
  JsonWriter& value(double d);
  JsonWriter& value(bool b);
  JsonWriter& null();
  // Appends already-serialized JSON as one value.
  JsonWriter& raw(std::string_view json);

  template <typename T> JsonWriter& field(std::string_view k, T v) { return key(k).value(v); }

private:
  void separate();

  std::string& m_out;
  bool m_need_comma = false;
};

} // namespace modelmux
