// The App owns what a running modelmux shares across requests: the current config snapshot
// (config, registry, upstream pools) swapped atomically on reload, the stream relay threads and
// the log. One App, passed by reference; no singletons.
#pragma once

#include "modelmux/config.h"
#include "modelmux/elastic_pool.h"
#include "modelmux/health.h"
#include "modelmux/log.h"
#include "modelmux/registry.h"
#include "modelmux/upstream.h"

#include <atomic>
#include <memory>
#include <vector>

namespace modelmux {

// Everything a request needs from one config load; requests in flight keep theirs alive.
struct Snapshot {
  std::shared_ptr<const Config> config;
  std::shared_ptr<const Registry> registry;
  std::vector<std::shared_ptr<ClientPool>> pools; // by target index
  // By target index. Kept across reloads for targets that keep their name.
  std::vector<std::shared_ptr<TargetHealth>> health;
};

struct SnapshotLoad {
  std::shared_ptr<const Snapshot> snapshot; // null when errors is not empty
  std::vector<ConfigError> errors;
};

// Loads, validates and resolves a config into a snapshot, reporting every error at once.
SnapshotLoad load_snapshot_file(const std::string& path, const ConfigEnvironment& env);
SnapshotLoad load_snapshot_text(const std::string& text, const std::string& file,
                                const ConfigEnvironment& env);

class App {
public:
  App(std::shared_ptr<const Snapshot> snapshot, Log& log);
  ~App();

  std::shared_ptr<const Snapshot> snapshot() const { return m_snapshot.load(); }
  // Publishes a new config; targets that keep their name keep their health.
  void replace_snapshot(std::shared_ptr<const Snapshot> snapshot);

  Log& log() { return m_log; }
  ElasticPool& relay() { return m_relay; }

private:
  std::atomic<std::shared_ptr<const Snapshot>> m_snapshot;
  Log& m_log;
  ElasticPool m_relay;
};

} // namespace modelmux
