// Header lookup and query parameters for modelmux's own HTTP message types.
#include "modelmux/http.h"

namespace modelmux {

namespace {

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  c = lower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

std::string percent_decoded(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
               hex_value(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

} // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

const std::string* HttpHeaders::find(std::string_view name) const {
  for (const auto& [n, v] : m_fields) {
    if (iequals(n, name)) {
      return &v;
    }
  }
  return nullptr;
}

std::string_view HttpHeaders::get(std::string_view name) const {
  const auto* v = find(name);
  return v == nullptr ? std::string_view() : std::string_view(*v);
}

void HttpHeaders::set(std::string_view name, std::string value) {
  for (auto& [n, v] : m_fields) {
    if (iequals(n, name)) {
      v = std::move(value);
      return;
    }
  }
  reserve_first();
  m_fields.emplace_back(std::string(name), std::move(value));
}

std::string HttpRequest::param(std::string_view name) const {
  std::string_view rest = query;
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string() : percent_decoded(pair.substr(eq + 1));
    }
  }
  return {};
}

} // namespace modelmux
