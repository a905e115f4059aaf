// The JSON writer: escaping and comma bookkeeping.
#include "modelmux/json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace modelmux {

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not valid.
size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t len = 0;
  uint32_t min = 0;
  if (c < 0x80) {
    return 1;
  } else if ((c & 0xE0) == 0xC0) {
    len = 2;
    min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) {
    return 0;
  }
  uint32_t cp = c & (0xFF >> (len + 1));
  for (size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) {
      return 0;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return len;
}

} // namespace

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char k_hex[] = "0123456789abcdef";
  out.push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    // Copy the longest run that needs no escaping in one go.
    size_t run = i;
    while (run < s.size()) {
      const auto c = static_cast<unsigned char>(s[run]);
      if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) {
        break;
      }
      ++run;
    }
    out.append(s.data() + i, run - i);
    i = run;
    if (i >= s.size()) {
      break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const size_t len = utf8_sequence_length(s, i);
      if (len == 0) {
        out.append("\\ufffd");
        ++i;
      } else {
        out.append(s.data() + i, len);
        i += len;
      }
      continue;
    }
    switch (c) {
    case '"':
      out.append("\\\"");
      break;
    case '\\':
      out.append("\\\\");
      break;
    case '\n':
      out.append("\\n");
      break;
    case '\r':
      out.append("\\r");
      break;
    case '\t':
      out.append("\\t");
      break;
    case '\b':
      out.append("\\b");
      break;
    case '\f':
      out.append("\\f");
      break;
    default:
      out.append("\\u00");
      out.push_back(k_hex[c >> 4]);
      out.push_back(k_hex[c & 0xF]);
    }
    ++i;
  }
  out.push_back('"');
}

void JsonWriter::separate() {
  if (m_need_comma) {
    m_out.push_back(',');
  }
}

JsonWriter& JsonWriter::begin_object() {
  separate();
  m_out.push_back('{');
  m_need_comma = false;
  return *this;
}

JsonWriter& JsonWriter::end_object() {
  m_out.push_back('}');
  m_need_comma = true;
  return *this;
}

JsonWriter& JsonWriter::begin_array() {
  separate();
  m_out.push_back('[');
  m_need_comma = false;
  return *this;
}

JsonWriter& JsonWriter::end_array() {
  m_out.push_back(']');
  m_need_comma = true;
  return *this;
}

JsonWriter& JsonWriter::key(std::string_view k) {
  separate();
  append_json_string(m_out, k);
  m_out.push_back(':');
  m_need_comma = false;
  return *this;
}

JsonWriter& JsonWriter::value(std::string_view s) {
  separate();
  append_json_string(m_out, s);
  m_need_comma = true;
  return *this;
}

JsonWriter& JsonWriter::value(int64_t n) {
  separate();
  m_out.append(std::to_string(n));
  m_need_comma = true;
  return *this;
}

JsonWriter& JsonWriter::value(double d) {
  separate();
  if (!std::isfinite(d)) {
    m_out.append("null");
  } else {
    char buf[32];
    const int n = std::snprintf(buf, sizeof buf, "%.17g", d);
    // Prefer the shortest representation that reads back the same.
    for (int precision = 1; precision < 17; ++precision) {
      char tryb[32];
      const int m = std::snprintf(tryb, sizeof tryb, "%.*g", precision, d);
      if (std::strtod(tryb, nullptr) == d) {
        m_out.append(tryb, static_cast<size_t>(m));
        m_need_comma = true;
        return *this;
      }
    }
    m_out.append(buf, static_cast<size_t>(n));
  }
  m_need_comma = true;
  return *this;
}

JsonWriter& JsonWriter::value(bool b) {
  separate();
  m_out.append(b ? "true" : "false");
  m_need_comma = true;
  return *this;
}

JsonWriter& JsonWriter::null() {
  separate();
  m_out.append("null");
  m_need_comma = true;
  return *this;
}

JsonWriter& JsonWriter::raw(std::string_view json) {
  separate();
  m_out.append(json);
  m_need_comma = true;
  return *this;
}

} // namespace modelmux
