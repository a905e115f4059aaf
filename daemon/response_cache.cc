// The response cache's key, its use decision and the in-memory store.

#include "modelmux/response_cache.h"

#include "modelmux/json.h"
#include "modelmux/text.h"

#include <algorithm>
#include <openssl/evp.h>
#include <simdjson.h>

namespace modelmux {

namespace {

namespace od = simdjson::ondemand;

// Deep enough for any real request; deeper is refused rather than recursed into.
constexpr int k_max_depth = 128;

std::string_view trimmed(std::string_view token) {
  while (!token.empty() && (token.back() == ' ' || token.back() == '\n' || token.back() == '\r' ||
                            token.back() == '\t')) {
    token.remove_suffix(1);
  }
  return token;
}

bool write_canonical(od::value value, std::string& out, int depth,
                     const std::vector<std::string_view>* leave_out) {
  if (depth > k_max_depth) {
    return false;
  }
  od::json_type type;
  if (value.type().get(type)) {
    return false;
  }
  switch (type) {
  case od::json_type::object: {
    od::object object;
    if (value.get_object().get(object)) {
      return false;
    }
    std::vector<std::pair<std::string, std::string>> fields;
    for (auto field_result : object) {
      od::field field;
      std::string_view key;
      if (std::move(field_result).get(field) || field.unescaped_key().get(key)) {
        return false;
      }
      std::string name(key);
      if (leave_out != nullptr &&
          std::find(leave_out->begin(), leave_out->end(), name) != leave_out->end()) {
        continue;
      }
      std::string written;
      if (!write_canonical(field.value(), written, depth + 1, nullptr)) {
        return false;
      }
      fields.emplace_back(std::move(name), std::move(written));
    }
    std::sort(fields.begin(), fields.end());
    out.push_back('{');
    for (size_t i = 0; i < fields.size(); ++i) {
      if (i > 0) {
        out.push_back(',');
      }
      append_json_string(out, fields[i].first);
      out.push_back(':');
      out += fields[i].second;
    }
    out.push_back('}');
    return true;
  }
  case od::json_type::array: {
    od::array array;
    if (value.get_array().get(array)) {
      return false;
    }
    out.push_back('[');
    bool first = true;
    for (auto item : array) {
      od::value v;
      if (item.get(v)) {
        return false;
      }
      if (!first) {
        out.push_back(',');
      }
      first = false;
      if (!write_canonical(v, out, depth + 1, nullptr)) {
        return false;
      }
    }
    out.push_back(']');
    return true;
  }
  case od::json_type::string: {
    std::string_view s;
    if (value.get_string().get(s)) {
      return false;
    }
    append_json_string(out, s);
    return true;
  }
  case od::json_type::number: {
    // As written ("1.0" stays "1.0"), once the parser agrees it is a number.
    const std::string_view written = trimmed(value.raw_json_token());
    od::number number;
    if (value.get_number().get(number)) {
      return false;
    }
    out += written;
    return true;
  }
  case od::json_type::boolean: {
    bool b = false;
    if (value.get_bool().get(b)) {
      return false;
    }
    out += b ? "true" : "false";
    return true;
  }
  case od::json_type::null: {
    bool null = false;
    if (value.is_null().get(null) || !null) {
      return false;
    }
    out += "null";
    return true;
  }
  }
  return false;
}

} // namespace

Result<std::string> canonical_json(std::string_view body,
                                   const std::vector<std::string_view>& leave_out) {
  od::parser parser;
  const simdjson::padded_string padded(body);
  od::document doc;
  od::value root;
  std::string out;
  out.reserve(body.size());
  if (parser.iterate(padded).get(doc) || doc.get_value().get(root) ||
      !write_canonical(root, out, 0, &leave_out) || out.empty() || out.front() != '{' ||
      !doc.current_location().error()) { // a location left: more after the object
    return make_error(ErrorKind::invalid_request, "the request body is not a JSON object");
  }
  return out;
}

std::string cache_key(ApiRoute route, const std::vector<std::string>& chain,
                      std::string_view canonical_body) {
  std::string material(path_of(route));
  material.push_back('\n');
  for (const auto& target : chain) {
    material += target;
    material.push_back(',');
  }
  material.push_back('\n');
  material += canonical_body;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(material.data(), material.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(k_hex[digest[i] >> 4]);
    hex.push_back(k_hex[digest[i] & 0xf]);
  }
  return hex;
}

CacheUse cache_use(CacheWhen when, std::string_view header, simdjson::dom::element root) {
  if (header == "bypass") {
    return CacheUse::bypass;
  }
  switch (when) {
  case CacheWhen::always:
    return CacheUse::use;
  case CacheWhen::header:
    return header == "use" ? CacheUse::use : CacheUse::bypass;
  case CacheWhen::deterministic:
    break;
  }
  if (header == "use") {
    return CacheUse::use;
  }
  // Deterministic: greedy sampling, or a seed that makes sampling repeatable.
  double temperature = 1;
  if (!root["temperature"].get(temperature) && temperature == 0) {
    return CacheUse::use;
  }
  simdjson::dom::element seed;
  return !root["seed"].get(seed) && !seed.is_null() ? CacheUse::use : CacheUse::bypass;
}

void MemoryCache::configure(size_t max_bytes, std::chrono::milliseconds ttl) {
  std::lock_guard lock(m_mutex);
  m_max_bytes = max_bytes;
  m_ttl = ttl;
  evict_locked();
}

std::shared_ptr<const CachedAnswer> MemoryCache::get(const std::string& key,
                                                     Clock::time_point now) {
  std::lock_guard lock(m_mutex);
  const auto found = m_index.find(key);
  if (found == m_index.end()) {
    return nullptr;
  }
  if (found->second->expires <= now) {
    erase_locked(found->second);
    return nullptr;
  }
  m_lru.splice(m_lru.begin(), m_lru, found->second);
  return found->second->answer;
}

void MemoryCache::put(const std::string& key, std::shared_ptr<const CachedAnswer> answer,
                      Clock::time_point now) {
  const size_t bytes = answer->bytes() + key.size() * 2 + sizeof(Entry);
  std::lock_guard lock(m_mutex);
  if (bytes > m_max_bytes) {
    return; // bigger than the whole cache: not worth evicting everything for
  }
  if (const auto found = m_index.find(key); found != m_index.end()) {
    erase_locked(found->second);
  }
  m_lru.push_front(Entry{key, std::move(answer), now + m_ttl, bytes});
  m_index.emplace(key, m_lru.begin());
  m_bytes += bytes;
  evict_locked();
}

CacheStats MemoryCache::stats() const {
  std::lock_guard lock(m_mutex);
  return {m_index.size(), m_bytes};
}

void MemoryCache::evict_locked() {
  while (m_bytes > m_max_bytes && !m_lru.empty()) {
    erase_locked(std::prev(m_lru.end()));
  }
}

void MemoryCache::erase_locked(std::list<Entry>::iterator it) {
  m_bytes -= it->bytes;
  m_index.erase(it->key);
  m_lru.erase(it);
}

std::string encode_cached_answer(const CachedAnswer& answer) {
  std::string out = "modelmux-answer-1\n";
  out += answer.target;
  out += '\n';
  for (const int64_t n : {answer.cost_micros, answer.usage.input_tokens, answer.usage.output_tokens,
                          answer.usage.cache_read_tokens, answer.usage.cache_write_tokens,
                          int64_t{answer.usage.reported ? 1 : 0}}) {
    out += std::to_string(n);
    out += ' ';
  }
  out.back() = '\n';
  out += answer.body;
  return out;
}

std::optional<CachedAnswer> decode_cached_answer(std::string_view bytes) {
  auto line = [&]() -> std::optional<std::string_view> {
    const size_t end = bytes.find('\n');
    if (end == std::string_view::npos) {
      return std::nullopt;
    }
    const auto l = bytes.substr(0, end);
    bytes.remove_prefix(end + 1);
    return l;
  };
  const auto version = line();
  const auto target = line();
  auto numbers = line();
  if (!version || *version != "modelmux-answer-1" || !target || target->empty() || !numbers) {
    return std::nullopt;
  }
  int64_t n[6];
  for (auto& v : n) {
    const size_t end = std::min(numbers->find(' '), numbers->size());
    const auto parsed = parse_int(numbers->substr(0, end));
    if (!parsed || *parsed < 0) {
      return std::nullopt;
    }
    v = *parsed;
    numbers->remove_prefix(std::min(end + 1, numbers->size()));
  }
  if (!numbers->empty() || n[5] > 1 || bytes.empty()) {
    return std::nullopt;
  }
  CachedAnswer a;
  a.target = std::string(*target);
  a.cost_micros = n[0];
  a.usage = TokenUsage{n[1], n[2], n[3], n[4], n[5] == 1};
  a.body = std::string(bytes);
  return a;
}

} // namespace modelmux
