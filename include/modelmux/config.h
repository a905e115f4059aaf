// The configuration: plain structs with their defaults written inline, immutable once loaded, and
// the loader that reads them from YAML. The loader validates the whole file and reports every
// problem at once as FILE:LINE:COL: path: message. References such as ${env:NAME}, ${file:PATH}
// and ${cred:NAME} are resolved here; one that cannot be resolved is an error, never "".
#pragma once

#include "modelmux/capability.h"
#include "modelmux/log.h"
#include "modelmux/target_slots.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace modelmux {

using Millis = std::chrono::milliseconds;

enum class TargetType { openai, anthropic, azure_openai, mock };
enum class ProbeKind { models, ollama, vllm, llamacpp, none };
enum class Prefer { custom, provider };

std::string_view to_string(TargetType type);
std::string_view to_string(ProbeKind probe);

// Where a value was written, for errors found after parsing (e.g. a fallback naming nothing).
struct SourceMark {
  int line = 0;
  int column = 0;
};

// A string the user wrote that names a model; kept with its position.
struct ModelRef {
  std::string text;
  SourceMark mark;
};

// A credential. value is the resolved secret; source is how the config wrote it (for example
// "${env:OPENAI_API_KEY}", or "inline"), which is all that is ever printed.
struct Secret {
  std::string value;
  std::string source;
};

// Prices in millionths of a US dollar per 1M tokens (2.50 USD/1M tokens = 2'500'000).
struct Price {
  int64_t input = 0;
  int64_t output = 0;
  std::optional<int64_t> cached_input;
  std::optional<int64_t> cache_write;
};

struct MockSettings {
  Millis latency{0};
  double fail_rate = 0.0;
};

// A default request field: name and its value as JSON text.
struct Param {
  std::string key;
  std::string json;
};

struct CatalogEntry {
  std::string name;
  std::optional<int64_t> context_window;
  std::optional<Price> cost;
};

// Settings shared by providers and custom models: how to reach and talk to one endpoint.
struct EndpointSettings {
  TargetType type = TargetType::openai;
  std::string base_url;
  std::vector<Secret> api_keys;
  std::optional<Millis> timeout;
  std::optional<Millis> idle_timeout;
  ProbeKind probe = ProbeKind::models;
  std::string deployment;  // azure-openai
  std::string api_version; // azure-openai
  bool tls_verify = true;
  MockSettings mock;
  std::vector<Param> params;
  // Speaks /v1/responses itself (SPEC §4a); otherwise modelmux translates Responses requests.
  bool responses = false;
  // A request asking for more output tokens is clamped to this, on every route.
  std::optional<int64_t> max_output_tokens;
  // What the target can do (SPEC §10); unset means everything. A request needing what it lacks
  // skips it.
  std::optional<Capabilities> capabilities;
  // Requests in flight at once, the queue for a slot and the longest wait in it (SPEC §10).
  std::optional<int> max_concurrency; // unset or 0: unbounded
  std::optional<int> max_queue;
  std::optional<Millis> queue_timeout;

  // The slot limits these settings give, with the defaults filled in.
  SlotLimits slot_limits() const;
};

struct ProviderConfig {
  std::string name;
  EndpointSettings endpoint;
  std::vector<CatalogEntry> models;
  SourceMark mark;
};

struct CustomModelConfig {
  std::string id;
  std::string display_name;
  std::string description;
  std::string provider; // when set, endpoint settings come from that provider
  EndpointSettings endpoint;
  std::string model; // the name sent upstream
  std::optional<int64_t> context_window;
  std::optional<Price> cost;
  std::vector<ModelRef> fallback;
  SourceMark mark;
  bool from_api = false; // registered through the admin API, not written in the config file
};

struct AliasConfig {
  std::string name;
  ModelRef target;
};

struct ListenAddress {
  std::string host = "127.0.0.1";
  int port = 8080;
};

struct ServerConfig {
  // Event loops; 0 is one per core.
  int workers = 0;
  // Client connections held open at once; past it, new ones wait in the listen backlog.
  int max_connections = 10000;
  // The thread-per-connection server's pool size: read and ignored since the event loops
  // replaced it, so older configs still load (true when one set it, for a warning).
  bool worker_threads_set = false;
  int64_t max_body_size = 8 * 1024 * 1024;
  // The largest whole (not streamed) answer read from an upstream; a bigger one is a failed
  // attempt, so a hostile or broken upstream cannot make modelmux buffer without limit.
  int64_t max_answer_size = 64 * 1024 * 1024;
  // Longest a client may take to send a whole request (line, headers, body) from its first byte.
  Millis read_timeout = std::chrono::seconds(30);
  Millis request_timeout = std::chrono::minutes(10);
};

struct AuthConfig {
  std::vector<Secret> client_keys;
  std::optional<Secret> admin_key;
};

struct RoutingConfig {
  std::vector<ModelRef> auto_chain;
  Prefer prefer = Prefer::custom;
  bool fallback = true;
  std::optional<ModelRef> reference_model;
  std::optional<ModelRef> passthrough;
  Millis timeout = std::chrono::seconds(60);
  Millis idle_timeout = std::chrono::seconds(30);
  Millis hedge_after{0};
  // >0: a request whose expected wait for a slot at a busy target is longer moves on at once.
  Millis spill_after{0};
};

struct HealthThresholds {
  double success_rate_below = 0.0;
  Millis p95_latency_above{0};
};

struct HealthConfig {
  Millis active_interval = std::chrono::seconds(30);
  Millis active_timeout = std::chrono::seconds(5);
  int unhealthy_threshold = 3;
  int healthy_threshold = 2;
  int consecutive_failures = 3;
  Millis base_ejection_time = std::chrono::seconds(30);
  Millis max_ejection_time = std::chrono::minutes(5);
  Millis window = std::chrono::minutes(5);
  int min_requests = 10;
  HealthThresholds degraded{0.90, std::chrono::seconds(5)};
  HealthThresholds unhealthy{0.80, std::chrono::seconds(10)};
};

struct BudgetConfig {
  std::optional<int64_t> monthly_micros; // millionths of a USD
  std::optional<int64_t> daily_micros;
};

// The exact response cache (SPEC §11).
enum class CacheWhen { deterministic, always, header };
struct CacheConfig {
  bool enabled = false;
  Millis ttl = std::chrono::hours(1);
  int64_t max_size = 256LL * 1024 * 1024;
  CacheWhen when = CacheWhen::deterministic;
};

// Shared state for several instances (SPEC §12): where the Redis (or Valkey) server is.
struct RedisEndpoint {
  bool tls = false; // rediss://
  std::string host;
  int port = 6379;
  int db = 0;
};
// redis://host[:port][/db] or rediss://...; nullopt for anything else, credentials included
// (they go in redis.username and redis.password, so the URL can be shown).
std::optional<RedisEndpoint> parse_redis_url(std::string_view url);

struct RedisConfig {
  std::string url; // as written: shown on /health and /api/status
  RedisEndpoint endpoint;
  std::string username; // optional (Redis 6 ACL user)
  Secret password;      // optional; from ${env:} or ${cred:}, never shown
  std::string key_prefix = "modelmux:";
};

struct LoggingConfig {
  LogLevel level = LogLevel::info;
  LogFormat format = LogFormat::text;
};

struct Config {
  std::string path;     // the file it was read from
  std::string base_dir; // relative paths in the file are relative to this directory
  ListenAddress listen;
  std::string state_dir = "./state";
  ServerConfig server;
  AuthConfig auth;
  std::vector<ProviderConfig> providers;
  std::vector<CustomModelConfig> custom_models;
  std::vector<AliasConfig> aliases;
  RoutingConfig routing;
  HealthConfig health;
  BudgetConfig budget;
  LoggingConfig logging;
  CacheConfig cache;
  std::optional<RedisConfig> redis; // absent: this instance keeps its state to itself
};

struct ConfigError {
  std::string file;
  int line = 0;   // 1-based; 0 when the problem has no position (e.g. the file is missing)
  int column = 0; // 1-based
  std::string path;
  std::string message;
};

// "FILE:LINE:COL: path: message".
std::string to_string(const ConfigError& e);

// What ${env:}, ${file:} and ${cred:} read; tests inject their own.
struct ConfigEnvironment {
  std::function<std::optional<std::string>(const std::string&)> getenv;
  std::optional<std::string> credentials_dir; // $CREDENTIALS_DIRECTORY
  static ConfigEnvironment process();
};

struct ConfigLoad {
  Config config;
  std::vector<ConfigError> errors;
  bool ok() const { return errors.empty(); }
};

// Reads and validates a config file. Never throws.
ConfigLoad load_config_file(const std::string& path, const ConfigEnvironment& env);
// Same for text already in memory; file names the source in errors and anchors relative paths.
ConfigLoad load_config_text(const std::string& text, const std::string& file,
                            const ConfigEnvironment& env);

// Parses "250ms", "30s", "5m", "1h" (and "0").
std::optional<Millis> parse_duration(std::string_view s);
// Parses "8MiB", "512KiB", "1GiB", "100B" or a plain byte count.
std::optional<int64_t> parse_size(std::string_view s);

bool is_loopback_host(std::string_view host);

} // namespace modelmux
