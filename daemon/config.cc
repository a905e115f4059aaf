// The config loader: YAML in, a validated Config and every error out. yaml-cpp exceptions stop
// here; nothing past this file sees one.
#include "modelmux/config.h"

#include "modelmux/json.h"
#include "modelmux/text.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <yaml-cpp/yaml.h>

namespace modelmux {

std::string_view to_string(TargetType type) {
  switch (type) {
  case TargetType::openai:
    return "openai";
  case TargetType::anthropic:
    return "anthropic";
  case TargetType::azure_openai:
    return "azure-openai";
  case TargetType::mock:
    return "mock";
  }
  return "openai";
}

std::string_view to_string(ProbeKind probe) {
  switch (probe) {
  case ProbeKind::models:
    return "models";
  case ProbeKind::ollama:
    return "ollama";
  case ProbeKind::vllm:
    return "vllm";
  case ProbeKind::llamacpp:
    return "llamacpp";
  case ProbeKind::none:
    return "none";
  }
  return "models";
}

std::string to_string(const ConfigError& e) {
  std::string out = e.file;
  if (e.line > 0) {
    out += ":" + std::to_string(e.line) + ":" + std::to_string(e.column);
  }
  out += ": ";
  if (!e.path.empty()) {
    out += e.path + ": ";
  }
  out += e.message;
  return out;
}

ConfigEnvironment ConfigEnvironment::process() {
  ConfigEnvironment env;
  env.getenv = [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) {
      return std::nullopt;
    }
    return std::string(v);
  };
  if (const char* dir = std::getenv("CREDENTIALS_DIRECTORY")) {
    env.credentials_dir = dir;
  }
  return env;
}

std::optional<Millis> parse_duration(std::string_view s) {
  if (s == "0") {
    return Millis{0};
  }
  size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') {
    ++digits;
  }
  const auto n = parse_int(s.substr(0, digits));
  if (!n) {
    return std::nullopt;
  }
  const std::string_view unit = s.substr(digits);
  int64_t factor = 0;
  if (unit == "ms") {
    factor = 1;
  } else if (unit == "s") {
    factor = 1000;
  } else if (unit == "m") {
    factor = 60'000;
  } else if (unit == "h") {
    factor = 3'600'000;
  } else {
    return std::nullopt;
  }
  if (*n > INT64_MAX / factor / 1000) {
    return std::nullopt;
  }
  return Millis{*n * factor};
}

std::optional<int64_t> parse_size(std::string_view s) {
  size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') {
    ++digits;
  }
  const auto n = parse_int(s.substr(0, digits));
  if (!n) {
    return std::nullopt;
  }
  const std::string_view unit = s.substr(digits);
  int64_t factor = 0;
  if (unit.empty() || unit == "B") {
    factor = 1;
  } else if (unit == "KiB") {
    factor = int64_t{1} << 10;
  } else if (unit == "MiB") {
    factor = int64_t{1} << 20;
  } else if (unit == "GiB") {
    factor = int64_t{1} << 30;
  } else {
    return std::nullopt;
  }
  if (*n > (INT64_MAX >> 31)) {
    return std::nullopt;
  }
  return *n * factor;
}

bool is_loopback_host(std::string_view host) {
  return host == "localhost" || host == "::1" || starts_with(host, "127.");
}

namespace {

std::string child(const std::string& path, std::string_view key) {
  if (path.empty()) {
    return std::string(key);
  }
  return path + "." + std::string(key);
}

std::string item(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

SourceMark mark_of(const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  return SourceMark{m.line + 1, m.column + 1};
}

std::optional<std::string> read_text_file(const std::string& path, std::string& why) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    why = std::strerror(errno);
    return std::nullopt;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The state of one load: where errors go and how references are resolved.
class Loader {
public:
  Loader(std::string file, std::string base_dir, const ConfigEnvironment& env,
         std::vector<ConfigError>& errors)
      : m_file(std::move(file)), m_base_dir(std::move(base_dir)), m_env(env), m_errors(errors) {}

  void fail(const YAML::Node& n, const std::string& path, std::string message) {
    fail_at(mark_of(n), path, std::move(message));
  }
  void fail_at(SourceMark m, const std::string& path, std::string message) {
    m_errors.push_back(ConfigError{m_file, m.line, m.column, path, std::move(message)});
  }

  // Calls f(key, value, path, key_node) for each entry of a mapping, reporting duplicate keys
  // and, when known is not empty, keys outside it.
  template <typename F>
  void each_key(const YAML::Node& n, const std::string& path, const std::vector<std::string>& known,
                F&& f) {
    if (n.IsNull()) {
      return;
    }
    if (!n.IsMap()) {
      fail(n, path, "expected a mapping of keys to values");
      return;
    }
    std::set<std::string> seen;
    for (const auto& entry : n) {
      const YAML::Node& k = entry.first;
      if (!k.IsScalar()) {
        fail(k, path, "a key must be a plain name");
        continue;
      }
      const std::string key = k.Scalar();
      const std::string key_path = child(path, key);
      if (!seen.insert(key).second) {
        fail(k, key_path, "duplicate key");
        continue;
      }
      if (!known.empty() && std::find(known.begin(), known.end(), key) == known.end()) {
        std::string message = "unknown key";
        const auto near = close_matches(key, known, 1);
        if (!near.empty()) {
          message += " (did you mean \"" + near.front() + "\"?)";
        }
        fail(k, key_path, message);
        continue;
      }
      f(key, entry.second, key_path, k);
    }
  }

  // A scalar with its references resolved.
  std::optional<std::string> string(const YAML::Node& n, const std::string& path) {
    if (!n.IsScalar()) {
      fail(n, path, "expected a string");
      return std::nullopt;
    }
    return expand(n.Scalar(), n, path);
  }

  Secret secret(const YAML::Node& n, const std::string& path, bool& ok) {
    Secret s;
    const auto v = string(n, path);
    ok = v.has_value();
    if (v) {
      s.value = *v;
      s.source = n.Scalar().find("${") != std::string::npos ? n.Scalar() : "inline";
    }
    return s;
  }

  std::optional<bool> boolean(const YAML::Node& n, const std::string& path) {
    const auto v = scalar_of(n, path, "true or false");
    if (!v) {
      return std::nullopt;
    }
    if (*v == "true" || *v == "True" || *v == "TRUE") {
      return true;
    }
    if (*v == "false" || *v == "False" || *v == "FALSE") {
      return false;
    }
    fail(n, path, "expected true or false, got \"" + *v + "\"");
    return std::nullopt;
  }

  std::optional<int64_t> integer(const YAML::Node& n, const std::string& path, int64_t min,
                                 int64_t max) {
    const auto v = scalar_of(n, path, "a whole number");
    if (!v) {
      return std::nullopt;
    }
    const auto parsed = parse_int(*v);
    if (!parsed || *parsed < min || *parsed > max) {
      fail(n, path,
           "expected a whole number from " + std::to_string(min) + " to " + std::to_string(max) +
               ", got \"" + *v + "\"");
      return std::nullopt;
    }
    return parsed;
  }

  std::optional<double> fraction(const YAML::Node& n, const std::string& path) {
    const auto v = scalar_of(n, path, "a number from 0 to 1");
    if (!v) {
      return std::nullopt;
    }
    const auto parsed = parse_millionths(*v);
    if (!parsed || *parsed > 1'000'000) {
      fail(n, path, "expected a number from 0 to 1, got \"" + *v + "\"");
      return std::nullopt;
    }
    return static_cast<double>(*parsed) / 1e6;
  }

  std::optional<int64_t> dollars(const YAML::Node& n, const std::string& path) {
    const auto v = scalar_of(n, path, "an amount in US dollars");
    if (!v) {
      return std::nullopt;
    }
    const auto parsed = parse_millionths(*v);
    if (!parsed) {
      fail(n, path,
           "expected a non-negative amount in US dollars with at most 6 decimals, got \"" + *v +
               "\"");
    }
    return parsed;
  }

  std::optional<Millis> duration(const YAML::Node& n, const std::string& path) {
    const auto v = scalar_of(n, path, "a duration");
    if (!v) {
      return std::nullopt;
    }
    const auto parsed = parse_duration(*v);
    if (!parsed) {
      fail(n, path, "expected a duration such as 250ms, 30s, 5m or 1h, got \"" + *v + "\"");
    }
    return parsed;
  }

  std::optional<int64_t> size(const YAML::Node& n, const std::string& path) {
    const auto v = scalar_of(n, path, "a size");
    if (!v) {
      return std::nullopt;
    }
    const auto parsed = parse_size(*v);
    if (!parsed) {
      fail(n, path, "expected a size such as 512KiB, 8MiB or 1GiB, got \"" + *v + "\"");
    }
    return parsed;
  }

  // One of names; returns its index.
  std::optional<size_t> choice(const YAML::Node& n, const std::string& path,
                               const std::vector<std::string>& names) {
    const auto v = scalar_of(n, path, join_alternatives(names, " or "));
    if (!v) {
      return std::nullopt;
    }
    const auto it = std::find(names.begin(), names.end(), *v);
    if (it == names.end()) {
      std::string message = "expected " + join_alternatives(names, " or ") + ", got \"" + *v + "\"";
      const auto near = close_matches(*v, names, 1);
      if (!near.empty()) {
        message += " (did you mean \"" + near.front() + "\"?)";
      }
      fail(n, path, message);
      return std::nullopt;
    }
    return static_cast<size_t>(it - names.begin());
  }

  template <typename F> void each_item(const YAML::Node& n, const std::string& path, F&& f) {
    if (n.IsNull()) {
      return;
    }
    if (!n.IsSequence()) {
      fail(n, path, "expected a list");
      return;
    }
    for (size_t i = 0; i < n.size(); ++i) {
      f(n[i], item(path, i));
    }
  }

  std::vector<ModelRef> model_refs(const YAML::Node& n, const std::string& path) {
    std::vector<ModelRef> out;
    each_item(n, path, [&](const YAML::Node& v, const std::string& p) {
      if (auto s = string(v, p)) {
        out.push_back(ModelRef{*s, mark_of(v)});
      }
    });
    return out;
  }

  // YAML values as JSON text, for registry params sent upstream.
  std::optional<std::string> json_value(const YAML::Node& n, const std::string& path);

  const std::string& base_dir() const { return m_base_dir; }

private:
  std::optional<std::string> scalar_of(const YAML::Node& n, const std::string& path,
                                       const std::string& expected) {
    if (!n.IsScalar()) {
      fail(n, path, "expected " + expected);
      return std::nullopt;
    }
    return expand(n.Scalar(), n, path);
  }

  std::optional<std::string> expand(const std::string& raw, const YAML::Node& n,
                                    const std::string& path);
  std::optional<std::string> resolve_reference(std::string_view ref, const YAML::Node& n,
                                               const std::string& path);

  std::string m_file;
  std::string m_base_dir;
  const ConfigEnvironment& m_env;
  std::vector<ConfigError>& m_errors;
};

std::optional<std::string> Loader::expand(const std::string& raw, const YAML::Node& n,
                                          const std::string& path) {
  if (raw.find("${") == std::string::npos) {
    return raw;
  }
  std::string out;
  size_t i = 0;
  bool ok = true;
  while (i < raw.size()) {
    const size_t start = raw.find("${", i);
    if (start == std::string::npos) {
      out.append(raw, i, std::string::npos);
      break;
    }
    out.append(raw, i, start - i);
    const size_t end = raw.find('}', start);
    if (end == std::string::npos) {
      fail(n, path, "unterminated reference \"" + raw.substr(start) + "\" (expected ${...})");
      return std::nullopt;
    }
    const auto value =
        resolve_reference(std::string_view(raw).substr(start + 2, end - start - 2), n, path);
    if (value) {
      out.append(*value);
    } else {
      ok = false;
    }
    i = end + 1;
  }
  if (!ok) {
    return std::nullopt;
  }
  return out;
}

std::optional<std::string> Loader::resolve_reference(std::string_view ref, const YAML::Node& n,
                                                     const std::string& path) {
  const std::string written = "${" + std::string(ref) + "}";
  const size_t colon = ref.find(':');
  if (colon == std::string_view::npos) {
    fail(n, path, "reference " + written + " must be ${env:NAME}, ${file:PATH} or ${cred:NAME}");
    return std::nullopt;
  }
  const std::string_view kind = ref.substr(0, colon);
  std::string arg(ref.substr(colon + 1));
  if (kind == "env") {
    std::optional<std::string> fallback;
    if (const size_t dash = arg.find(":-"); dash != std::string::npos) {
      fallback = arg.substr(dash + 2);
      arg.resize(dash);
    }
    if (arg.empty()) {
      fail(n, path, "reference " + written + " names no variable");
      return std::nullopt;
    }
    if (auto v = m_env.getenv ? m_env.getenv(arg) : std::nullopt) {
      return v;
    }
    if (fallback) {
      return fallback;
    }
    fail(n, path,
         "environment variable " + arg + " is not set (referenced as " + written +
             "; write ${env:" + arg + ":-} to make it optional)");
    return std::nullopt;
  }
  std::string file;
  if (kind == "file") {
    file = arg;
    if (!file.empty() && file.front() != '/') {
      file = (std::filesystem::path(m_base_dir) / file).string();
    }
  } else if (kind == "cred") {
    if (!m_env.credentials_dir) {
      fail(n, path,
           "credential " + arg +
               " cannot be read: $CREDENTIALS_DIRECTORY is not set (systemd sets it for "
               "LoadCredential=)");
      return std::nullopt;
    }
    if (arg.empty() || arg.find('/') != std::string::npos) {
      fail(n, path, "reference " + written + " must name a credential, not a path");
      return std::nullopt;
    }
    file = *m_env.credentials_dir + "/" + arg;
  } else {
    fail(n, path,
         "unknown reference kind \"" + std::string(kind) +
             "\" (expected ${env:NAME}, ${file:PATH} or ${cred:NAME})");
    return std::nullopt;
  }
  std::string why;
  auto content = read_text_file(file, why);
  if (!content) {
    fail(n, path, written + " cannot be read: " + why);
    return std::nullopt;
  }
  // A file written by echo or an editor ends with a newline that is not part of the secret.
  while (!content->empty() && (content->back() == '\n' || content->back() == '\r')) {
    content->pop_back();
  }
  return content;
}

std::optional<std::string> Loader::json_value(const YAML::Node& n, const std::string& path) {
  std::string out;
  if (n.IsNull()) {
    return std::string("null");
  }
  if (n.IsScalar()) {
    const auto v = string(n, path);
    if (!v) {
      return std::nullopt;
    }
    // A plain (unquoted) scalar that reads as a number, boolean or null keeps that type.
    if (n.Tag() != "!") {
      if (*v == "true" || *v == "false" || *v == "null") {
        return *v;
      }
      char* end = nullptr;
      errno = 0;
      const double d = std::strtod(v->c_str(), &end);
      (void)d;
      if (!v->empty() && end == v->c_str() + v->size() && errno == 0 && v->front() != '.' &&
          v->find_first_of("xXnN") == std::string::npos) {
        return *v;
      }
    }
    append_json_string(out, *v);
    return out;
  }
  if (n.IsSequence()) {
    out.push_back('[');
    for (size_t i = 0; i < n.size(); ++i) {
      const auto v = json_value(n[i], item(path, i));
      if (!v) {
        return std::nullopt;
      }
      if (i > 0) {
        out.push_back(',');
      }
      out.append(*v);
    }
    out.push_back(']');
    return out;
  }
  if (n.IsMap()) {
    out.push_back('{');
    bool first = true;
    bool ok = true;
    each_key(
        n, path, {},
        [&](const std::string& key, const YAML::Node& v, const std::string& p, const YAML::Node&) {
          const auto j = json_value(v, p);
          if (!j) {
            ok = false;
            return;
          }
          if (!first) {
            out.push_back(',');
          }
          first = false;
          append_json_string(out, key);
          out.push_back(':');
          out.append(*j);
        });
    out.push_back('}');
    if (!ok) {
      return std::nullopt;
    }
    return out;
  }
  fail(n, path, "expected a value");
  return std::nullopt;
}

const std::vector<std::string> k_target_types = {"openai", "anthropic", "azure-openai", "mock"};
const std::vector<std::string> k_probe_kinds = {"models", "ollama", "vllm", "llamacpp", "none"};

bool valid_name(std::string_view name, bool allow_slash) {
  if (name.empty()) {
    return false;
  }
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || (allow_slash && c == '/');
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::optional<ListenAddress> parse_listen(std::string_view s) {
  ListenAddress out;
  std::string_view host;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    const size_t close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return std::nullopt;
    }
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    const size_t colon = s.rfind(':');
    if (colon == std::string_view::npos) {
      return std::nullopt;
    }
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return std::nullopt;
    }
  }
  const auto p = parse_int(port);
  if (host.empty() || !p || *p > 65535) {
    return std::nullopt;
  }
  out.host = std::string(host);
  out.port = static_cast<int>(*p);
  return out;
}

bool valid_base_url(std::string_view url) {
  std::string_view rest;
  if (starts_with(url, "http://")) {
    rest = url.substr(7);
  } else if (starts_with(url, "https://")) {
    rest = url.substr(8);
  } else {
    return false;
  }
  // No user:password@ either: credentials belong in api_keys, which are never printed.
  const std::string_view authority = rest.substr(0, rest.find('/'));
  return !rest.empty() && rest.front() != '/' && rest.find_first_of(" ?#") == std::string::npos &&
         authority.find('@') == std::string_view::npos;
}

void read_price(Loader& l, const YAML::Node& n, const std::string& path,
                std::optional<Price>& out) {
  if (!n.IsMap()) {
    l.fail(n, path, "expected {input: USD per 1M tokens, output: USD per 1M tokens}");
    return;
  }
  Price price;
  bool has_input = false;
  bool has_output = false;
  l.each_key(
      n, path, {"input", "output", "cached_input", "cache_write"},
      [&](const std::string& key, const YAML::Node& v, const std::string& p, const YAML::Node&) {
        const auto d = l.dollars(v, p);
        if (!d) {
          return;
        }
        if (key == "input") {
          price.input = *d;
          has_input = true;
        } else if (key == "output") {
          price.output = *d;
          has_output = true;
        } else if (key == "cached_input") {
          price.cached_input = *d;
        } else {
          price.cache_write = *d;
        }
      });
  if (!has_input || !has_output) {
    l.fail(n, path, "needs both input and output (USD per 1M tokens)");
    return;
  }
  out = price;
}

void read_mock(Loader& l, const YAML::Node& n, const std::string& path, MockSettings& out) {
  l.each_key(
      n, path, {"latency", "fail_rate"},
      [&](const std::string& key, const YAML::Node& v, const std::string& p, const YAML::Node&) {
        if (key == "latency") {
          if (auto d = l.duration(v, p)) {
            out.latency = *d;
          }
        } else if (auto f = l.fraction(v, p)) {
          out.fail_rate = *f;
        }
      });
}

void read_params(Loader& l, const YAML::Node& n, const std::string& path, std::vector<Param>& out) {
  l.each_key(
      n, path, {},
      [&](const std::string& key, const YAML::Node& v, const std::string& p, const YAML::Node&) {
        if (key == "model" || key == "stream" || key == "messages") {
          l.fail(v, p, "\"" + key + "\" cannot be a default parameter");
          return;
        }
        if (auto j = l.json_value(v, p)) {
          out.push_back(Param{key, *j});
        }
      });
}

// Reads a key shared by providers and custom models into endpoint settings; returns false when
// key is not one of them.
bool read_endpoint_key(Loader& l, const std::string& key, const YAML::Node& v, const std::string& p,
                       EndpointSettings& e) {
  if (key == "type") {
    if (auto i = l.choice(v, p, k_target_types)) {
      e.type = static_cast<TargetType>(*i);
    }
  } else if (key == "base_url" || key == "endpoint") {
    if (auto s = l.string(v, p)) {
      if (!valid_base_url(*s)) {
        l.fail(v, p,
               "expected an http:// or https:// URL such as http://127.0.0.1:8000/v1, with no "
               "query and no credentials (keys go in api_keys)");
      } else {
        e.base_url = *s;
        while (!e.base_url.empty() && e.base_url.back() == '/') {
          e.base_url.pop_back();
        }
      }
    }
  } else if (key == "timeout") {
    e.timeout = l.duration(v, p);
  } else if (key == "idle_timeout") {
    e.idle_timeout = l.duration(v, p);
  } else if (key == "probe") {
    if (auto i = l.choice(v, p, k_probe_kinds)) {
      e.probe = static_cast<ProbeKind>(*i);
    }
  } else if (key == "deployment") {
    if (auto s = l.string(v, p)) {
      e.deployment = *s;
    }
  } else if (key == "api_version") {
    if (auto s = l.string(v, p)) {
      e.api_version = *s;
    }
  } else if (key == "tls_verify") {
    if (auto b = l.boolean(v, p)) {
      e.tls_verify = *b;
    }
  } else if (key == "mock") {
    read_mock(l, v, p, e.mock);
  } else if (key == "params") {
    read_params(l, v, p, e.params);
  } else if (key == "responses") {
    if (auto b = l.boolean(v, p)) {
      e.responses = *b;
    }
  } else if (key == "max_output_tokens") {
    e.max_output_tokens = l.integer(v, p, 1, 100'000'000);
  } else if (key == "capabilities") {
    Capabilities caps;
    l.each_item(v, p, [&](const YAML::Node& c, const std::string& cp) {
      if (auto i = l.choice(c, cp, {"tools", "vision", "json_schema", "reasoning"})) {
        caps.add(k_capabilities[*i]);
      }
    });
    e.capabilities = caps;
  } else if (key == "max_concurrency") {
    e.max_concurrency = l.integer(v, p, 0, 100'000);
  } else if (key == "max_queue") {
    e.max_queue = l.integer(v, p, 0, 100'000);
  } else if (key == "queue_timeout") {
    e.queue_timeout = l.duration(v, p);
  } else {
    return false;
  }
  return true;
}

void read_api_keys(Loader& l, const YAML::Node& v, const std::string& p, std::vector<Secret>& out) {
  l.each_item(v, p, [&](const YAML::Node& k, const std::string& kp) {
    bool ok = false;
    Secret s = l.secret(k, kp, ok);
    // An optional reference that resolved to nothing means "no key", not an empty key.
    if (ok && !s.value.empty()) {
      out.push_back(std::move(s));
    }
  });
}

void check_endpoint(Loader& l, const YAML::Node& n, const std::string& path,
                    const EndpointSettings& e, bool has_url) {
  if (e.type != TargetType::mock && !has_url) {
    l.fail(n, path,
           e.type == TargetType::azure_openai
               ? "needs base_url (https://NAME.openai.azure.com)"
               : "needs a base_url (or endpoint) such as http://127.0.0.1:8000/v1, or type: mock");
  }
}

const std::vector<std::string> k_endpoint_keys = {"type",
                                                  "timeout",
                                                  "idle_timeout",
                                                  "probe",
                                                  "deployment",
                                                  "api_version",
                                                  "tls_verify",
                                                  "mock",
                                                  "params",
                                                  "responses",
                                                  "max_output_tokens",
                                                  "capabilities",
                                                  "max_concurrency",
                                                  "max_queue",
                                                  "queue_timeout"};

template <typename... Extra> std::vector<std::string> keys_with(Extra... extra) {
  std::vector<std::string> keys = k_endpoint_keys;
  (keys.emplace_back(extra), ...);
  return keys;
}

void read_providers(Loader& l, const YAML::Node& n, Config& c) {
  const auto known = keys_with("base_url", "api_keys", "models");
  l.each_key(
      n, "providers", {},
      [&](const std::string& name, const YAML::Node& pn, const std::string& path,
          const YAML::Node& key_node) {
        ProviderConfig p;
        p.name = name;
        p.mark = mark_of(key_node);
        if (!valid_name(name, false) || name == "custom" || name == "auto") {
          l.fail(key_node, path,
                 "a provider name is letters, digits, '-', '_' or '.', and not \"custom\" or "
                 "\"auto\"");
        }
        if (!pn.IsMap()) {
          l.fail(pn, path, "expected a mapping with at least a type");
          return;
        }
        bool has_type = false;
        bool has_url = false;
        l.each_key(pn, path, known,
                   [&](const std::string& key, const YAML::Node& v, const std::string& p2,
                       const YAML::Node&) {
                     if (key == "type") {
                       has_type = true;
                     }
                     if (key == "base_url") {
                       has_url = true;
                     }
                     if (read_endpoint_key(l, key, v, p2, p.endpoint)) {
                       return;
                     }
                     if (key == "api_keys") {
                       read_api_keys(l, v, p2, p.endpoint.api_keys);
                     } else if (key == "models") {
                       l.each_key(v, p2, {},
                                  [&](const std::string& model, const YAML::Node& mv,
                                      const std::string& mp, const YAML::Node&) {
                                    CatalogEntry entry;
                                    entry.name = model;
                                    l.each_key(mv, mp, {"context_window", "cost"},
                                               [&](const std::string& mk, const YAML::Node& mvv,
                                                   const std::string& mpp, const YAML::Node&) {
                                                 if (mk == "context_window") {
                                                   entry.context_window =
                                                       l.integer(mvv, mpp, 1, 100'000'000);
                                                 } else {
                                                   read_price(l, mvv, mpp, entry.cost);
                                                 }
                                               });
                                    p.models.push_back(std::move(entry));
                                  });
                     }
                   });
        if (!has_type) {
          l.fail(key_node, path, "needs a type: " + join_alternatives(k_target_types, " or "));
        }
        check_endpoint(l, key_node, path, p.endpoint, has_url);
        if (p.endpoint.type == TargetType::azure_openai && p.endpoint.api_version.empty()) {
          p.endpoint.api_version = "2024-10-21";
        }
        c.providers.push_back(std::move(p));
      });
}

struct CustomMarks {
  std::optional<SourceMark> provider;
  std::vector<std::string> own_endpoint_keys; // endpoint keys written that a provider would give
};

// One key of a custom model. ids: the ids so far, for duplicates.
void read_custom_key(Loader& l, const std::string& key, const YAML::Node& v, const std::string& p,
                     CustomModelConfig& m, CustomMarks& cm, std::set<std::string>& ids) {
  if (key == "type" || key == "endpoint" || key == "deployment" || key == "api_version" ||
      key == "tls_verify" || key == "probe" || key == "api_key") {
    cm.own_endpoint_keys.push_back(key);
  }
  if (read_endpoint_key(l, key, v, p, m.endpoint)) {
    return;
  }
  if (key == "id") {
    if (auto s = l.string(v, p)) {
      if (!valid_name(*s, true)) {
        l.fail(v, p, "an id is letters, digits, '-', '_', '.' or '/'");
      } else if (!ids.insert(*s).second) {
        l.fail(v, p, "duplicate id \"" + *s + "\"");
      }
      m.id = *s;
    }
  } else if (key == "display_name") {
    m.display_name = l.string(v, p).value_or("");
  } else if (key == "description") {
    m.description = l.string(v, p).value_or("");
  } else if (key == "provider") {
    m.provider = l.string(v, p).value_or("");
    cm.provider = mark_of(v);
  } else if (key == "model") {
    m.model = l.string(v, p).value_or("");
  } else if (key == "api_key") {
    bool ok = false;
    Secret s = l.secret(v, p, ok);
    if (ok && !s.value.empty()) {
      m.endpoint.api_keys.push_back(std::move(s));
    }
  } else if (key == "context_window") {
    m.context_window = l.integer(v, p, 1, 100'000'000);
  } else if (key == "cost") {
    read_price(l, v, p, m.cost);
  } else if (key == "fallback") {
    m.fallback = l.model_refs(v, p);
  }
}

// What a custom model needs once its keys are read: an id, a way to reach it, a model name.
void check_custom_model(Loader& l, const YAML::Node& mn, const std::string& path,
                        CustomModelConfig& m, bool has_type, bool has_url) {
  if (m.id.empty()) {
    l.fail(mn, path, "needs an id (clients address it as custom:<id>)");
  }
  if (m.provider.empty()) {
    if (!has_type && !has_url) {
      l.fail(mn, path, "needs an endpoint and a type, a provider, or type: mock");
    } else {
      check_endpoint(l, mn, path, m.endpoint, has_url);
    }
    if (m.endpoint.type == TargetType::azure_openai && m.endpoint.api_version.empty()) {
      m.endpoint.api_version = "2024-10-21";
    }
  }
  if (m.model.empty()) {
    if (m.endpoint.type == TargetType::mock && m.provider.empty()) {
      m.model = m.id;
    } else if (!m.id.empty()) {
      l.fail(mn, path, "needs model: the model name sent upstream");
    }
  }
}

void read_custom_models(Loader& l, const YAML::Node& n, Config& c,
                        std::vector<CustomMarks>& marks) {
  const auto known = keys_with("id", "display_name", "description", "provider", "endpoint", "model",
                               "api_key", "context_window", "cost", "fallback");
  std::set<std::string> ids;
  l.each_item(n, "custom_models", [&](const YAML::Node& mn, const std::string& path) {
    CustomModelConfig m;
    CustomMarks cm;
    m.mark = mark_of(mn);
    if (!mn.IsMap()) {
      l.fail(mn, path, "expected a mapping with at least an id");
      return;
    }
    bool has_url = false;
    bool has_type = false;
    l.each_key(
        mn, path, known,
        [&](const std::string& key, const YAML::Node& v, const std::string& p, const YAML::Node&) {
          has_url = has_url || key == "endpoint";
          has_type = has_type || key == "type";
          read_custom_key(l, key, v, p, m, cm, ids);
        });
    check_custom_model(l, mn, path, m, has_type, has_url);
    c.custom_models.push_back(std::move(m));
    marks.push_back(std::move(cm));
  });
}

// A custom model with a provider takes the provider's endpoint, keys and timeouts; its own
// params, timeouts and mock settings win where it sets them.
void inherit_providers(Loader& l, Config& c, const std::vector<CustomMarks>& marks) {
  for (size_t i = 0; i < c.custom_models.size(); ++i) {
    auto& m = c.custom_models[i];
    if (m.provider.empty()) {
      continue;
    }
    const std::string path = item("custom_models", i) + ".provider";
    const SourceMark at = marks[i].provider.value_or(m.mark);
    const auto it = std::find_if(c.providers.begin(), c.providers.end(),
                                 [&](const ProviderConfig& p) { return p.name == m.provider; });
    if (it == c.providers.end()) {
      std::vector<std::string> names;
      for (const auto& p : c.providers) {
        names.push_back(p.name);
      }
      std::string message = "no provider named \"" + m.provider + "\"";
      const auto near = close_matches(m.provider, names, 1);
      if (!near.empty()) {
        message += " (did you mean \"" + near.front() + "\"?)";
      }
      l.fail_at(at, path, message);
      continue;
    }
    for (const auto& own : marks[i].own_endpoint_keys) {
      l.fail_at(m.mark, item("custom_models", i) + "." + own,
                "comes from provider \"" + m.provider + "\"; set it there or drop provider");
    }
    EndpointSettings e = it->endpoint;
    if (m.endpoint.timeout) {
      e.timeout = m.endpoint.timeout;
    }
    if (m.endpoint.idle_timeout) {
      e.idle_timeout = m.endpoint.idle_timeout;
    }
    if (!m.endpoint.params.empty()) {
      e.params = m.endpoint.params;
    }
    if (m.endpoint.max_output_tokens) {
      e.max_output_tokens = m.endpoint.max_output_tokens;
    }
    // What a model can do and how many requests it takes are the model's own; the provider's
    // settings stand where the model sets none.
    if (m.endpoint.capabilities) {
      e.capabilities = m.endpoint.capabilities;
    }
    if (m.endpoint.max_concurrency) {
      e.max_concurrency = m.endpoint.max_concurrency;
      e.max_queue = m.endpoint.max_queue;
      e.queue_timeout = m.endpoint.queue_timeout;
    }
    if (m.endpoint.mock.latency.count() != 0 || m.endpoint.mock.fail_rate != 0.0) {
      e.mock = m.endpoint.mock;
    }
    m.endpoint = std::move(e);
  }
}

// A key of a mapping and how its value is read into a T. A section is a table of these: its
// keys are the ones the loader knows, so a key cannot be known and read by no branch.
template <typename T> struct KeyReader {
  const char* key;
  void (*read)(Loader& l, const YAML::Node& v, const std::string& p, T& out);
};

template <typename T, size_t N>
void read_keys(Loader& l, const YAML::Node& n, const std::string& path, T& out,
               const std::array<KeyReader<T>, N>& table) {
  std::vector<std::string> known;
  known.reserve(N);
  for (const auto& r : table) {
    known.emplace_back(r.key);
  }
  l.each_key(
      n, path, known,
      [&](const std::string& key, const YAML::Node& v, const std::string& p, const YAML::Node&) {
        for (const auto& r : table) {
          if (key == r.key) {
            r.read(l, v, p, out);
            return;
          }
        }
      });
}

void set_duration(Loader& l, const YAML::Node& v, const std::string& p, Millis& out) {
  if (auto d = l.duration(v, p)) {
    out = *d;
  }
}

void set_int(Loader& l, const YAML::Node& v, const std::string& p, int64_t min, int64_t max,
             int& out) {
  if (auto n = l.integer(v, p, min, max)) {
    out = static_cast<int>(*n);
  }
}

// A body or answer limit: a size of at least 1 KiB.
void set_limit(Loader& l, const YAML::Node& v, const std::string& p, int64_t& out) {
  if (auto n = l.size(v, p)) {
    if (*n < 1024) {
      l.fail(v, p, "must be at least 1KiB");
    } else {
      out = *n;
    }
  }
}

void set_model_ref(Loader& l, const YAML::Node& v, const std::string& p,
                   std::optional<ModelRef>& out) {
  if (auto s = l.string(v, p)) {
    out = ModelRef{*s, mark_of(v)};
  }
}

template <typename E>
void set_choice(Loader& l, const YAML::Node& v, const std::string& p,
                std::initializer_list<const char*> names, E& out) {
  std::vector<std::string> choices(names.begin(), names.end());
  if (auto i = l.choice(v, p, choices)) {
    out = static_cast<E>(*i);
  }
}

using L = Loader;
using N = YAML::Node;
using P = std::string;

const std::array<KeyReader<ServerConfig>, 7> k_server{{
    {"workers",
     [](L& l, const N& v, const P& p, ServerConfig& s) {
       if (v.IsScalar() && v.Scalar() == "auto") {
         s.workers = 0;
       } else {
         set_int(l, v, p, 1, 256, s.workers);
       }
     }},
    {"max_connections",
     [](L& l, const N& v, const P& p, ServerConfig& s) {
       set_int(l, v, p, 16, 1'000'000, s.max_connections);
     }},
    {"worker_threads",
     [](L& l, const N& v, const P& p, ServerConfig& s) {
       s.worker_threads_set = s.worker_threads_set || l.integer(v, p, 2, 65536).has_value();
     }},
    {"max_body_size",
     [](L& l, const N& v, const P& p, ServerConfig& s) { set_limit(l, v, p, s.max_body_size); }},
    {"max_answer_size",
     [](L& l, const N& v, const P& p, ServerConfig& s) { set_limit(l, v, p, s.max_answer_size); }},
    {"read_timeout",
     [](L& l, const N& v, const P& p, ServerConfig& s) { set_duration(l, v, p, s.read_timeout); }},
    {"request_timeout", [](L& l, const N& v, const P& p,
                           ServerConfig& s) { set_duration(l, v, p, s.request_timeout); }},
}};

const std::array<KeyReader<AuthConfig>, 2> k_auth{{
    {"client_keys",
     [](L& l, const N& v, const P& p, AuthConfig& a) { read_api_keys(l, v, p, a.client_keys); }},
    {"admin_key",
     [](L& l, const N& v, const P& p, AuthConfig& a) {
       bool ok = false;
       Secret s = l.secret(v, p, ok);
       if (ok && !s.value.empty()) {
         a.admin_key = std::move(s);
       }
     }},
}};

const std::array<KeyReader<RoutingConfig>, 9> k_routing{{
    {"auto",
     [](L& l, const N& v, const P& p, RoutingConfig& r) { r.auto_chain = l.model_refs(v, p); }},
    {"prefer",
     [](L& l, const N& v, const P& p, RoutingConfig& r) {
       set_choice(l, v, p, {"custom", "provider"}, r.prefer);
     }},
    {"fallback", [](L& l, const N& v, const P& p,
                    RoutingConfig& r) { r.fallback = l.boolean(v, p).value_or(true); }},
    {"reference_model", [](L& l, const N& v, const P& p,
                           RoutingConfig& r) { set_model_ref(l, v, p, r.reference_model); }},
    {"passthrough",
     [](L& l, const N& v, const P& p, RoutingConfig& r) { set_model_ref(l, v, p, r.passthrough); }},
    {"timeout",
     [](L& l, const N& v, const P& p, RoutingConfig& r) { set_duration(l, v, p, r.timeout); }},
    {"idle_timeout",
     [](L& l, const N& v, const P& p, RoutingConfig& r) { set_duration(l, v, p, r.idle_timeout); }},
    {"hedge_after",
     [](L& l, const N& v, const P& p, RoutingConfig& r) { set_duration(l, v, p, r.hedge_after); }},
    {"spill_after",
     [](L& l, const N& v, const P& p, RoutingConfig& r) { set_duration(l, v, p, r.spill_after); }},
}};

const std::array<KeyReader<HealthConfig>, 4> k_health_active{{
    {"interval", [](L& l, const N& v, const P& p,
                    HealthConfig& h) { set_duration(l, v, p, h.active_interval); }},
    {"timeout", [](L& l, const N& v, const P& p,
                   HealthConfig& h) { set_duration(l, v, p, h.active_timeout); }},
    {"unhealthy_threshold",
     [](L& l, const N& v, const P& p, HealthConfig& h) {
       set_int(l, v, p, 1, 1000, h.unhealthy_threshold);
     }},
    {"healthy_threshold", [](L& l, const N& v, const P& p,
                             HealthConfig& h) { set_int(l, v, p, 1, 1000, h.healthy_threshold); }},
}};

const std::array<KeyReader<HealthConfig>, 3> k_health_outlier{{
    {"consecutive_failures",
     [](L& l, const N& v, const P& p, HealthConfig& h) {
       set_int(l, v, p, 1, 1000, h.consecutive_failures);
     }},
    {"base_ejection_time", [](L& l, const N& v, const P& p,
                              HealthConfig& h) { set_duration(l, v, p, h.base_ejection_time); }},
    {"max_ejection_time", [](L& l, const N& v, const P& p,
                             HealthConfig& h) { set_duration(l, v, p, h.max_ejection_time); }},
}};

const std::array<KeyReader<HealthThresholds>, 2> k_health_thresholds{{
    {"success_rate_below",
     [](L& l, const N& v, const P& p, HealthThresholds& t) {
       if (auto f = l.fraction(v, p)) {
         t.success_rate_below = *f;
       }
     }},
    {"p95_latency_above", [](L& l, const N& v, const P& p,
                             HealthThresholds& t) { set_duration(l, v, p, t.p95_latency_above); }},
}};

const std::array<KeyReader<HealthConfig>, 6> k_health{{
    {"active",
     [](L& l, const N& v, const P& p, HealthConfig& h) { read_keys(l, v, p, h, k_health_active); }},
    {"outlier", [](L& l, const N& v, const P& p,
                   HealthConfig& h) { read_keys(l, v, p, h, k_health_outlier); }},
    {"window",
     [](L& l, const N& v, const P& p, HealthConfig& h) { set_duration(l, v, p, h.window); }},
    {"min_requests", [](L& l, const N& v, const P& p,
                        HealthConfig& h) { set_int(l, v, p, 1, 1'000'000, h.min_requests); }},
    {"degraded", [](L& l, const N& v, const P& p,
                    HealthConfig& h) { read_keys(l, v, p, h.degraded, k_health_thresholds); }},
    {"unhealthy", [](L& l, const N& v, const P& p,
                     HealthConfig& h) { read_keys(l, v, p, h.unhealthy, k_health_thresholds); }},
}};

const std::array<KeyReader<BudgetConfig>, 2> k_budget{{
    {"monthly_usd",
     [](L& l, const N& v, const P& p, BudgetConfig& b) { b.monthly_micros = l.dollars(v, p); }},
    {"daily_usd",
     [](L& l, const N& v, const P& p, BudgetConfig& b) { b.daily_micros = l.dollars(v, p); }},
}};

const std::array<KeyReader<CacheConfig>, 4> k_cache{{
    {"enabled", [](L& l, const N& v, const P& p,
                   CacheConfig& c) { c.enabled = l.boolean(v, p).value_or(false); }},
    {"ttl", [](L& l, const N& v, const P& p, CacheConfig& c) { set_duration(l, v, p, c.ttl); }},
    {"max_size", [](L& l, const N& v, const P& p,
                    CacheConfig& c) { c.max_size = l.size(v, p).value_or(c.max_size); }},
    {"when",
     [](L& l, const N& v, const P& p, CacheConfig& c) {
       set_choice(l, v, p, {"deterministic", "always", "header"}, c.when);
     }},
}};

// The redis section as read, before its required url is checked.
struct RedisSection {
  RedisConfig redis;
  bool has_url = false;
};

const std::array<KeyReader<RedisSection>, 4> k_redis{{
    {"url",
     [](L& l, const N& v, const P& p, RedisSection& r) {
       const auto s = l.string(v, p);
       if (!s) {
         return;
       }
       if (auto e = parse_redis_url(*s)) {
         r.redis.url = *s;
         r.redis.endpoint = *e;
         r.has_url = true;
       } else {
         l.fail(v, p,
                "expected redis://host:port/db or rediss://host:port/db, with no credentials "
                "(they go in redis.username and redis.password)");
       }
     }},
    {"username",
     [](L& l, const N& v, const P& p, RedisSection& r) {
       if (auto s = l.string(v, p)) {
         r.redis.username = *s;
       }
     }},
    {"password",
     [](L& l, const N& v, const P& p, RedisSection& r) {
       bool ok = false;
       r.redis.password = l.secret(v, p, ok);
     }},
    {"key_prefix",
     [](L& l, const N& v, const P& p, RedisSection& r) {
       const auto s = l.string(v, p);
       if (s && s->empty()) {
         l.fail(v, p, "key_prefix must not be empty: it keeps modelmux's keys apart");
       } else if (s) {
         r.redis.key_prefix = *s;
       }
     }},
}};

const std::array<KeyReader<LoggingConfig>, 2> k_logging{{
    {"level",
     [](L& l, const N& v, const P& p, LoggingConfig& g) {
       set_choice(l, v, p, {"debug", "info", "warn", "error"}, g.level);
     }},
    {"format",
     [](L& l, const N& v, const P& p, LoggingConfig& g) {
       set_choice(l, v, p, {"text", "json"}, g.format);
     }},
}};

// The whole file as read: the config, and what the checks across sections need.
struct TopLevel {
  Config& c;
  std::vector<CustomMarks> marks;
  SourceMark listen_mark;
};

const std::array<KeyReader<TopLevel>, 13> k_top_level{{
    {"listen",
     [](L& l, const N& v, const P& p, TopLevel& t) {
       t.listen_mark = mark_of(v);
       if (auto s = l.string(v, p)) {
         if (auto a = parse_listen(*s)) {
           t.c.listen = *a;
         } else {
           l.fail(v, p, "expected HOST:PORT such as 127.0.0.1:8080 or [::1]:8080");
         }
       }
     }},
    {"state_dir",
     [](L& l, const N& v, const P& p, TopLevel& t) {
       if (auto s = l.string(v, p)) {
         t.c.state_dir = *s;
       }
     }},
    {"server",
     [](L& l, const N& v, const P& p, TopLevel& t) { read_keys(l, v, p, t.c.server, k_server); }},
    {"auth",
     [](L& l, const N& v, const P& p, TopLevel& t) { read_keys(l, v, p, t.c.auth, k_auth); }},
    {"providers", [](L& l, const N& v, const P&, TopLevel& t) { read_providers(l, v, t.c); }},
    {"custom_models",
     [](L& l, const N& v, const P&, TopLevel& t) { read_custom_models(l, v, t.c, t.marks); }},
    {"aliases",
     [](L& l, const N& v, const P& p, TopLevel& t) {
       l.each_key(v, p, {},
                  [&](const std::string& name, const YAML::Node& vv, const std::string& pp,
                      const YAML::Node& kn) {
                    if (name.empty() || name.find(':') != std::string::npos || name == "auto") {
                      l.fail(kn, pp, "an alias name holds no ':' and is not \"auto\"");
                    }
                    if (auto s = l.string(vv, pp)) {
                      t.c.aliases.push_back(AliasConfig{name, ModelRef{*s, mark_of(vv)}});
                    }
                  });
     }},
    {"routing",
     [](L& l, const N& v, const P& p, TopLevel& t) { read_keys(l, v, p, t.c.routing, k_routing); }},
    {"health",
     [](L& l, const N& v, const P& p, TopLevel& t) { read_keys(l, v, p, t.c.health, k_health); }},
    {"budget",
     [](L& l, const N& v, const P& p, TopLevel& t) { read_keys(l, v, p, t.c.budget, k_budget); }},
    {"logging",
     [](L& l, const N& v, const P& p, TopLevel& t) { read_keys(l, v, p, t.c.logging, k_logging); }},
    {"cache",
     [](L& l, const N& v, const P& p, TopLevel& t) { read_keys(l, v, p, t.c.cache, k_cache); }},
    {"redis",
     [](L& l, const N& v, const P& p, TopLevel& t) {
       RedisSection section;
       read_keys(l, v, p, section, k_redis);
       if (section.has_url) {
         t.c.redis = std::move(section.redis);
       } else {
         l.fail(v, p, "redis needs a url");
       }
     }},
}};

// The rules that span sections, checked once every section is read.
void check_across_sections(Loader& l, const TopLevel& t) {
  const Config& c = t.c;
  if (c.routing.passthrough) {
    const auto& name = c.routing.passthrough->text;
    const bool known = std::any_of(c.providers.begin(), c.providers.end(),
                                   [&](const ProviderConfig& pc) { return pc.name == name; });
    if (!known) {
      l.fail_at(c.routing.passthrough->mark, "routing.passthrough",
                "no provider named \"" + name + "\" (passthrough names a provider)");
    }
  }
  // The rule serve applies before it binds, here so that check (ExecStartPre) refuses what serve
  // would refuse.
  if (!is_loopback_host(c.listen.host) && c.auth.client_keys.empty()) {
    l.fail_at(t.listen_mark, "listen",
              "is not a loopback address and auth.client_keys is empty: anyone on the network "
              "could spend your provider keys (set client keys, or listen on 127.0.0.1)");
  }
  if (c.health.max_ejection_time < c.health.base_ejection_time) {
    l.fail_at(SourceMark{}, "health.outlier.max_ejection_time",
              "must not be shorter than base_ejection_time");
  }
}

void read_top_level(Loader& l, const YAML::Node& root, Config& c) {
  TopLevel top{c, {}, {}};
  read_keys(l, root, "", top, k_top_level);
  inherit_providers(l, c, top.marks);
  check_across_sections(l, top);
}

} // namespace

std::optional<RedisEndpoint> parse_redis_url(std::string_view url) {
  RedisEndpoint e;
  if (url.starts_with("rediss://")) {
    e.tls = true;
    url.remove_prefix(9);
  } else if (url.starts_with("redis://")) {
    url.remove_prefix(8);
  } else {
    return std::nullopt;
  }
  const size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : url.substr(slash + 1);
  if (authority.empty() || authority.find_first_of("@?#") != std::string_view::npos ||
      path.find_first_of("?#") != std::string_view::npos) {
    return std::nullopt;
  }
  const size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']') == std::string_view::npos) {
    const auto port = parse_int(authority.substr(colon + 1));
    if (!port || *port < 1 || *port > 65535) {
      return std::nullopt;
    }
    e.port = static_cast<int>(*port);
    authority = authority.substr(0, colon);
  }
  if (authority.empty()) {
    return std::nullopt;
  }
  e.host = std::string(authority);
  if (!path.empty()) {
    const auto db = parse_int(path);
    if (!db || *db < 0 || *db > 1'000'000) {
      return std::nullopt;
    }
    e.db = static_cast<int>(*db);
  }
  return e;
}

ConfigLoad load_config_text(const std::string& text, const std::string& file,
                            const ConfigEnvironment& env) {
  ConfigLoad out;
  out.config.path = file;
  out.config.base_dir = std::filesystem::path(file).parent_path().string();
  if (out.config.base_dir.empty()) {
    out.config.base_dir = ".";
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    out.errors.push_back(
        ConfigError{file, e.mark.line + 1, e.mark.column + 1, "", "invalid YAML: " + e.msg});
    return out;
  }
  Loader loader(file, out.config.base_dir, env, out.errors);
  if (!root.IsNull() && !root.IsMap()) {
    loader.fail(root, "", "the config must be a mapping of keys to values");
    return out;
  }
  try {
    read_top_level(loader, root, out.config);
  } catch (const YAML::Exception& e) {
    out.errors.push_back(ConfigError{file, e.mark.line + 1, e.mark.column + 1, "", e.msg});
  }
  if (!out.config.state_dir.empty() && out.config.state_dir.front() != '/') {
    out.config.state_dir =
        (std::filesystem::path(out.config.base_dir) / out.config.state_dir).lexically_normal();
  }
  return out;
}

ConfigLoad load_config_file(const std::string& path, const ConfigEnvironment& env) {
  std::string why;
  const auto text = read_text_file(path, why);
  if (!text) {
    ConfigLoad out;
    out.errors.push_back(ConfigError{path, 0, 0, "", "cannot read the config: " + why});
    return out;
  }
  return load_config_text(*text, path, env);
}

} // namespace modelmux

namespace modelmux {

SlotLimits EndpointSettings::slot_limits() const {
  SlotLimits limits;
  limits.max_concurrency = max_concurrency.value_or(0);
  limits.max_queue = max_queue.value_or(limits.max_queue);
  limits.queue_timeout = queue_timeout.value_or(limits.queue_timeout);
  return limits;
}

} // namespace modelmux
