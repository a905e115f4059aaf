// HTTP messages as modelmux's routes see them, free of any network library: the event loop's
// server fills an HttpRequest from its parser, and the routes answer with an HttpResponse.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace modelmux {

// Header fields in arrival order; names compare case-insensitively (RFC 9110 §5.1). A request
// carries a few dozen at most, so a scan beats a map.
class HttpHeaders {
public:
  using Field = std::pair<std::string, std::string>;

  void add(std::string name, std::string value) {
    reserve_first();
    m_fields.emplace_back(std::move(name), std::move(value));
  }
  // Replaces the first field of that name, or adds one.
  void set(std::string_view name, std::string value);
  // The first field's value; empty when absent.
  std::string_view get(std::string_view name) const;
  bool has(std::string_view name) const { return find(name) != nullptr; }
  const std::string* find(std::string_view name) const;
  size_t size() const { return m_fields.size(); }
  auto begin() const { return m_fields.begin(); }
  auto end() const { return m_fields.end(); }

private:
  // Room for a typical message's headers at once, rather than growing by doubling from one.
  void reserve_first() {
    if (m_fields.capacity() == 0) {
      m_fields.reserve(8);
    }
  }

  std::vector<Field> m_fields;
};

bool iequals(std::string_view a, std::string_view b);

struct HttpRequest {
  std::string method;
  std::string path;  // without the query
  std::string query; // after '?', undecoded
  HttpHeaders headers;
  std::string body;

  std::string_view header(std::string_view name) const { return headers.get(name); }
  // A query parameter's value (percent-decoded); empty when absent.
  std::string param(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  HttpHeaders headers;
  std::string content_type;
  std::string body;

  void set_content(std::string content, std::string type) {
    body = std::move(content);
    content_type = std::move(type);
  }
};

} // namespace modelmux
