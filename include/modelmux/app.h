// The App owns what a running modelmux shares across requests: the current config snapshot
// (config, registry, upstream pools) swapped atomically on reload, and
// the log. One App, passed by reference; no singletons.
#pragma once

#include "modelmux/config.h"
#include "modelmux/gateway_metrics.h"
#include "modelmux/health.h"
#include "modelmux/log.h"
#include "modelmux/registry.h"
#include "modelmux/response_store.h"
#include "modelmux/router.h"
#include "modelmux/runtime_models.h"
#include "modelmux/shared_state.h"
#include "modelmux/status.h"
#include "modelmux/upstream.h"
#include "modelmux/usage_log.h"

#include <atomic>
#include <condition_variable>
#include <memory>
#include <vector>

namespace modelmux {

// The prober's blocking clients (modelmux/blocking_client.h): named here, not included, so the
// data plane, which includes this header, never compiles cpp-httplib.
class ClientPool;

// Everything a request needs from one config load; requests in flight keep theirs alive.
struct Snapshot {
  std::shared_ptr<const Config> config;
  std::shared_ptr<const Registry> registry;
  std::vector<std::shared_ptr<ClientPool>> pools; // by registry target index: the prober's
  std::vector<UpstreamOrigin> origins;            // by registry target index
  // By registry target index: the targets each entry stands for and their health (a custom
  // model one, a provider one per model). Kept across reloads for entries that keep their name.
  std::vector<std::shared_ptr<HealthGroup>> health;
  // By registry target index: its concurrency slots and queue, likewise kept across reloads.
  std::vector<std::shared_ptr<TargetSlots>> slots;
  // routing.reference_model's price, for savings; none when it is not set.
  std::optional<Price> reference_price;
};

// Every target known now, by its one name, with its registry entry and health: what /health,
// /metrics, /api/status and the status page list. A provider no request has used yet is listed
// by its probes alone, as "<provider>:*".
struct TargetView {
  std::string name;
  const Target* entry = nullptr;
  std::shared_ptr<const TargetHealth> health;
};
std::vector<TargetView> target_views(const Snapshot& snapshot);

struct SnapshotLoad {
  std::shared_ptr<const Snapshot> snapshot; // null when errors is not empty
  std::vector<ConfigError> errors;
};

// Loads, validates and resolves a config into a snapshot, reporting every error at once.
SnapshotLoad load_snapshot_file(const std::string& path, const ConfigEnvironment& env);
SnapshotLoad load_snapshot_text(const std::string& text, const std::string& file,
                                const ConfigEnvironment& env);
// A snapshot of a config already loaded and valid on its own.
SnapshotLoad snapshot_of(Config config);

class App {
public:
  App(std::shared_ptr<const Snapshot> snapshot, Log& log);
  ~App();

  std::shared_ptr<const Snapshot> snapshot() const { return m_snapshot.load(); }
  // Counts the snapshots published: an event loop keeps its own copy of the snapshot and loads
  // it again only when this moved (an atomic shared_ptr load takes a lock bit on a cache line
  // every worker shares, twice per request otherwise).
  uint64_t snapshot_generation() const { return m_generation.load(std::memory_order_acquire); }
  // Publishes a new config; targets that keep their name keep their health.
  void replace_snapshot(std::shared_ptr<const Snapshot> snapshot);

  Log& log() { return m_log; }
  // The conversations behind the Responses API's previous_response_id.
  ResponseStore& responses() { return m_responses; }
  GatewayMetrics& metrics() { return m_metrics; }
  // The response cache (SPEC §11); used only while the config enables it.
  CacheStore& cache() { return m_cache; }
  // The cache's time: the steady clock, plus what a test moved it on by (time is injected, so
  // a test of ttl expiry waits for nothing).
  std::chrono::steady_clock::time_point cache_now() const {
    return std::chrono::steady_clock::now() +
           std::chrono::nanoseconds(m_cache_clock_advance_ns.load(std::memory_order_relaxed));
  }
  void advance_cache_clock(std::chrono::nanoseconds by) { m_cache_clock_advance_ns += by.count(); }
  // A SIGHUP: a new config swapped in (with the runtime models), or one refused.
  void reload(std::shared_ptr<const Snapshot> snapshot);
  void reload_failed() { m_metrics.config_reload(false); }
  // GET /metrics.
  std::string metrics_text() const;

  // Reads the usage log's past records into the in-memory sums, then appends every new record
  // to it. Without a usage log, records only reach the sums.
  Status open_usage_log(const std::string& path);
  // Loads the models registered through the admin API (state_dir/models.yaml) and serves them
  // from now on, across reloads.
  Status open_runtime_models(const std::string& state_dir);
  // The snapshot with the runtime models added; a config-file model of the same id wins.
  std::shared_ptr<const Snapshot> with_runtime_models(std::shared_ptr<const Snapshot> snapshot);
  // Admin API: register (a custom_models entry as JSON) and remove; each swaps in a snapshot.
  Result<std::string> register_model(std::string_view json_body);
  Result<bool> remove_model(const std::string& id);

  // A finished request: to the usage log (on its writer thread) and the sums.
  void record_usage(UsageRecord record);
  // Blocks until every record so far is written and summed.
  void flush_usage();
  // Blocks until n records in all have been summed (or timeout); false on timeout.
  bool wait_for_usage(size_t n, std::chrono::milliseconds timeout);
  std::optional<std::string> usage_json(std::string_view period) const;
  std::string monitoring_json(std::string_view health_status,
                              const std::vector<std::string>& issues) const;
  // GET /api/status, with GET /health's body embedded.
  std::string status_json(std::string_view health_json) const;
  // This month's and today's spend (UTC) against limits. Lock-free: the request path asks, with
  // its own snapshot's budget.
  BudgetState budget(const BudgetConfig& limits, int64_t now_ms) const;

  // The state shared with other instances through Redis (SPEC §12), or null. Attached before
  // serving and detached before it goes away (the Server owns it).
  void attach_shared(SharedState* shared);
  SharedState* shared() const { return m_shared.load(); }
  // A cooldown another instance saw: the key it names cools here too.
  void apply_shared_cooldown(const SharedCooldown& cooldown);
  // A 429 cooled a key here: the other instances hear of it.
  void share_cooldown(const RouteStep& step, size_t key,
                      std::chrono::steady_clock::time_point until);

private:
  SnapshotLoad merge_runtime_models(const Snapshot& snapshot);
  // Swaps in snapshot; the caller holds m_publish_mutex.
  void publish(std::shared_ptr<const Snapshot> snapshot);
  // live: a request of this run (counted in metrics too), not one restored from the log.
  void add_to_stats(const UsageRecord& record, bool live);

  std::atomic<std::shared_ptr<const Snapshot>> m_snapshot;
  std::atomic<uint64_t> m_generation{0};
  Log& m_log;
  MemoryResponseStore m_responses;
  MemoryCache m_cache{0, std::chrono::milliseconds(0)};
  std::atomic<SharedState*> m_shared{nullptr};
  std::atomic<int64_t> m_cache_clock_advance_ns{0};
  GatewayMetrics m_metrics;
  double m_start_time_seconds;
  // One change of the published snapshot at a time — a reload, an admin registration or
  // removal — each computed from the one before, so none can overwrite another's.
  std::mutex m_publish_mutex;
  std::mutex m_runtime_mutex; // the runtime models' file and list
  RuntimeModels m_runtime;
  mutable std::mutex m_stats_mutex;
  std::condition_variable m_stats_changed;
  UsageStats m_stats;
  TrafficHistory m_history; // for the status page
  size_t m_stats_records = 0;
  // Spend in the current month and day, with the period it belongs to; a request in a later
  // period sees zero.
  std::atomic<int64_t> m_month_index{0};
  std::atomic<int64_t> m_month_spend{0};
  std::atomic<int64_t> m_day_index{0};
  std::atomic<int64_t> m_day_spend{0};
  std::unique_ptr<UsageLog> m_usage_log; // declared last: its writer thread uses the sums
};

} // namespace modelmux
