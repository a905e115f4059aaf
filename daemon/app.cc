// Snapshot loading and the App.
#include "modelmux/app.h"

#include "modelmux/blocking_client.h"
#include "modelmux/router.h"
#include "modelmux/status.h"

#include <algorithm>

namespace modelmux {

namespace {

SnapshotLoad finish_load(ConfigLoad load) {
  SnapshotLoad out;
  out.errors = std::move(load.errors);
  auto registry = build_registry(load.config);
  // Names the config refers to are checked even when other parts failed, so one run of
  // `modelmux check` lists everything to fix.
  auto ref_errors = check_model_references(load.config, *registry);
  out.errors.insert(out.errors.end(), ref_errors.begin(), ref_errors.end());
  if (!out.errors.empty()) {
    return out;
  }
  auto snapshot = std::make_shared<Snapshot>();
  snapshot->config = std::make_shared<const Config>(std::move(load.config));
  snapshot->registry = std::move(registry);
  for (const auto& t : snapshot->registry->targets()) {
    snapshot->pools.push_back(std::make_shared<ClientPool>(t));
    snapshot->origins.push_back(origin_of(t.endpoint));
    std::vector<std::string> catalog;
    for (const auto& entry : t.catalog) {
      catalog.push_back(entry.name);
    }
    snapshot->health.push_back(std::make_shared<HealthGroup>(
        t.name, !t.is_custom, snapshot->config->health, t.endpoint.api_keys.size(), catalog));
    snapshot->slots.push_back(std::make_shared<TargetSlots>(t.endpoint.slot_limits()));
  }
  if (const auto& ref = snapshot->config->routing.reference_model) {
    if (const auto route = resolve_route(*snapshot->registry, ref->text); route) {
      snapshot->reference_price = route->chain.front().cost;
    }
  }
  out.snapshot = std::move(snapshot);
  return out;
}

} // namespace

std::vector<TargetView> target_views(const Snapshot& snapshot) {
  std::vector<TargetView> out;
  for (const auto& t : snapshot.registry->targets()) {
    const auto& group = *snapshot.health[t.index];
    const auto members = group.members();
    if (members.empty()) {
      // Shares the group's lifetime: the snapshot holds the group.
      out.push_back(
          {t.name + ":*", &t,
           std::shared_ptr<const TargetHealth>(snapshot.health[t.index], &group.endpoint())});
    }
    for (const auto& m : members) {
      out.push_back({m.target, &t, m.health});
    }
  }
  return out;
}

SnapshotLoad snapshot_of(Config config) {
  ConfigLoad load;
  load.config = std::move(config);
  return finish_load(std::move(load));
}

SnapshotLoad load_snapshot_file(const std::string& path, const ConfigEnvironment& env) {
  auto load = load_config_file(path, env);
  if (!load.ok() && load.errors.front().line == 0) {
    return SnapshotLoad{nullptr, std::move(load.errors)}; // the file itself could not be read
  }
  return finish_load(std::move(load));
}

SnapshotLoad load_snapshot_text(const std::string& text, const std::string& file,
                                const ConfigEnvironment& env) {
  return finish_load(load_config_text(text, file, env));
}

App::App(std::shared_ptr<const Snapshot> snapshot, Log& log)
    : m_snapshot(std::move(snapshot)), m_log(log),
      m_start_time_seconds(
          static_cast<double>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count()) /
          1000.0) {
  const auto& logging = m_snapshot.load()->config->logging;
  m_log.configure(logging.level, logging.format);
  const auto& cache = m_snapshot.load()->config->cache;
  m_cache.configure(cache.enabled ? static_cast<size_t>(cache.max_size) : 0, cache.ttl);
}

App::~App() {
  m_usage_log.reset(); // writes what is queued
}

Status App::open_usage_log(const std::string& path) {
  const auto read = read_usage_log(path, [this](const UsageRecord& r) { add_to_stats(r, false); });
  if (read.skipped > 0) {
    m_log.warn("usage_log_lines_skipped",
               {{"path", path}, {"lines", std::to_string(read.skipped), true}});
  }
  auto opened =
      UsageLog::open(path, m_log, [this](const UsageRecord& r) { add_to_stats(r, true); });
  if (!opened) {
    return opened.error();
  }
  m_usage_log = std::move(opened.value());
  return ok();
}

void App::record_usage(UsageRecord record) {
  if (m_usage_log) {
    m_usage_log->append(std::move(record));
  } else {
    add_to_stats(record, true);
  }
}

void App::flush_usage() {
  if (m_usage_log) {
    m_usage_log->flush();
  }
}

void App::add_to_stats(const UsageRecord& record, bool live) {
  const auto snapshot = m_snapshot.load();
  if (live) {
    if (auto* shared = m_shared.load(); shared != nullptr && record.cost_micros > 0) {
      shared->spend().add(record.ts_ms, record.cost_micros);
    }
    const Target* served = target_of_record(*snapshot->registry, record.target);
    const std::string_view provider =
        served != nullptr ? otel_provider_name(served->endpoint.type) : "none";
    m_metrics.observe(record, provider, snapshot->reference_price.has_value());
  }
  {
    std::lock_guard lock(m_stats_mutex);
    m_stats.add(record);
    m_history.add(record, *snapshot->registry);
    ++m_stats_records;
    // Only this thread (the usage writer, or the restore at start) writes the spend.
    const int64_t month = utc_month_index(record.ts_ms);
    if (month > m_month_index) {
      m_month_index = month;
      m_month_spend = 0;
    }
    if (month == m_month_index) {
      m_month_spend += record.cost_micros;
    }
    const int64_t day = utc_day_index(record.ts_ms);
    if (day > m_day_index) {
      m_day_index = day;
      m_day_spend = 0;
    }
    if (day == m_day_index) {
      m_day_spend += record.cost_micros;
    }
  }
  m_stats_changed.notify_all();
}

bool App::wait_for_usage(size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock lock(m_stats_mutex);
  return m_stats_changed.wait_for(lock, timeout, [&] { return m_stats_records >= n; });
}

std::optional<std::string> App::usage_json(std::string_view period) const {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  std::lock_guard lock(m_stats_mutex);
  return m_stats.usage_json(period, now);
}

void App::replace_snapshot(std::shared_ptr<const Snapshot> snapshot) {
  std::lock_guard lock(m_publish_mutex);
  publish(std::move(snapshot));
}

void App::reload(std::shared_ptr<const Snapshot> snapshot) {
  {
    std::lock_guard lock(m_publish_mutex);
    publish(with_runtime_models(std::move(snapshot)));
  }
  m_metrics.config_reload(true);
}

void App::publish(std::shared_ptr<const Snapshot> snapshot) {
  const auto& logging = snapshot->config->logging;
  m_log.configure(logging.level, logging.format);
  const auto& cache = snapshot->config->cache;
  m_cache.configure(cache.enabled ? static_cast<size_t>(cache.max_size) : 0, cache.ttl);
  const auto old = m_snapshot.load();
  auto next = std::make_shared<Snapshot>(*snapshot);
  for (const auto& t : next->registry->targets()) {
    for (const auto& o : old->registry->targets()) {
      if (o.name == t.name) {
        next->health[t.index] = old->health[o.index];
        next->health[t.index]->reconfigure(next->config->health, t.endpoint.api_keys.size());
        next->slots[t.index] = old->slots[o.index];
        next->slots[t.index]->configure(t.endpoint.slot_limits());
        break;
      }
    }
  }
  m_snapshot.store(std::move(next));
  m_generation.fetch_add(1, std::memory_order_release);
}

} // namespace modelmux

namespace modelmux {

BudgetState App::budget(const BudgetConfig& limits, int64_t now_ms) const {
  if (!limits.monthly_micros && !limits.daily_micros) {
    return {};
  }
  int64_t month = utc_month_index(now_ms) == m_month_index ? m_month_spend.load() : 0;
  int64_t day = utc_day_index(now_ms) == m_day_index ? m_day_spend.load() : 0;
  // With shared state, the fleet's spend as last heard plus this instance's since; never less
  // than this instance's own (a Redis that lost its data must not reopen a spent budget).
  if (auto* shared = m_shared.load()) {
    month = std::max(month, shared->spend().month(now_ms).value_or(0));
    day = std::max(day, shared->spend().day(now_ms).value_or(0));
  }
  return judge_budget(limits, month, day);
}

void App::attach_shared(SharedState* shared) {
  m_shared.store(shared);
  if (shared != nullptr) {
    shared->on_cooldown([this](const SharedCooldown& c) { apply_shared_cooldown(c); });
  }
}

void App::apply_shared_cooldown(const SharedCooldown& cooldown) {
  const auto snapshot = m_snapshot.load();
  for (const auto& t : snapshot->registry->targets()) {
    if (t.name != cooldown.entry) {
      continue;
    }
    const size_t keys = std::max<size_t>(1, t.endpoint.api_keys.size());
    for (size_t k = 0; k < keys; ++k) {
      const std::string_view key =
          t.endpoint.api_keys.empty() ? std::string_view() : t.endpoint.api_keys[k].value;
      if (key_fingerprint(key) != cooldown.key_id) {
        continue;
      }
      const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
      const auto until =
          std::chrono::steady_clock::now() +
          std::chrono::milliseconds(std::max<int64_t>(0, cooldown.until_ms - now_ms));
      snapshot->health[t.index]->member_for(cooldown.model).health->cool_key(k, until);
      return;
    }
  }
}

void App::share_cooldown(const RouteStep& step, size_t key,
                         std::chrono::steady_clock::time_point until) {
  auto* shared = m_shared.load();
  if (shared == nullptr || step.target == nullptr) {
    return;
  }
  const auto& keys = step.target->endpoint.api_keys;
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        until - std::chrono::steady_clock::now())
                        .count();
  shared->publish_cooldown(SharedCooldown{
      step.target->name, step.target->is_custom ? "" : step.upstream_model,
      key_fingerprint(key < keys.size() ? std::string_view(keys[key].value) : std::string_view()),
      now_ms + std::max<int64_t>(0, left)});
}

std::string App::metrics_text() const {
  const auto snapshot = m_snapshot.load();
  ScrapeGauges gauges;
  const auto now = std::chrono::steady_clock::now();
  for (const auto& v : target_views(*snapshot)) {
    gauges.target_states.emplace_back(v.name, static_cast<int>(v.health->report(now).state));
  }
  for (const auto& t : snapshot->registry->targets()) {
    if (t.endpoint.max_concurrency.value_or(0) > 0) {
      gauges.queue_depths.emplace_back(t.name, snapshot->slots[t.index]->view().queued);
    }
  }
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  gauges.budget_remaining_micros = budget(snapshot->config->budget, now_ms).remaining_micros;
  gauges.start_time_seconds = m_start_time_seconds;
  if (snapshot->config->cache.enabled) {
    gauges.cache = m_cache.stats();
  }
  read_process_gauges(gauges);
  return render_exposition(m_metrics.collect(gauges));
}

std::string App::status_json(std::string_view health_json) const {
  const auto snapshot = m_snapshot.load();
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  StatusInputs in;
  in.version = MODELMUX_VERSION;
  in.now_ms = now;
  in.uptime_seconds = static_cast<double>(now) / 1000.0 - m_start_time_seconds;
  in.registry = snapshot->registry.get();
  for (const auto& v : target_views(*snapshot)) {
    in.targets.emplace_back(v.name, v.entry);
  }
  in.budget = &snapshot->config->budget;
  for (const auto& t : snapshot->registry->targets()) {
    if (t.endpoint.max_concurrency.value_or(0) > 0) {
      in.slots.emplace(&t, snapshot->slots[t.index]->view());
    }
  }
  in.spills = m_metrics.spills_by_target();
  if (snapshot->config->cache.enabled) {
    in.cache = m_cache.stats();
    in.cache_max_bytes = snapshot->config->cache.max_size;
  }
  in.health_json = health_json;
  std::lock_guard lock(m_stats_mutex);
  in.all = m_stats.totals();
  for (const auto& [model, t] : m_stats.by_model("month", now)) {
    in.month += t;
  }
  for (const auto& [model, t] : m_stats.by_model("day", now)) {
    in.today += t;
  }
  return modelmux::status_json(in, m_history);
}

std::string App::monitoring_json(std::string_view health_status,
                                 const std::vector<std::string>& issues) const {
  std::lock_guard lock(m_stats_mutex);
  return m_stats.monitoring_json(health_status, issues);
}

} // namespace modelmux

namespace modelmux {

Status App::open_runtime_models(const std::string& state_dir) {
  auto opened = RuntimeModels::open(state_dir);
  if (!opened) {
    return opened.error();
  }
  {
    std::lock_guard lock(m_runtime_mutex);
    m_runtime = std::move(opened.value());
  }
  std::lock_guard lock(m_publish_mutex);
  publish(with_runtime_models(snapshot()));
  return ok();
}

SnapshotLoad App::merge_runtime_models(const Snapshot& snapshot) {
  Config config = *snapshot.config;
  std::erase_if(config.custom_models, [](const CustomModelConfig& m) { return m.from_api; });
  std::vector<CustomModelConfig> runtime;
  {
    std::lock_guard lock(m_runtime_mutex);
    runtime = m_runtime.entries();
  }
  for (auto& m : runtime) {
    const bool clash = std::any_of(config.custom_models.begin(), config.custom_models.end(),
                                   [&](const CustomModelConfig& c) { return c.id == m.id; });
    if (clash) {
      m_log.warn("runtime_model_shadowed",
                 {{"model", "custom:" + m.id},
                  {"reason", "the config file defines the same id, and wins"}});
      continue;
    }
    config.custom_models.push_back(std::move(m));
  }
  return snapshot_of(std::move(config));
}

std::shared_ptr<const Snapshot> App::with_runtime_models(std::shared_ptr<const Snapshot> snapshot) {
  {
    std::lock_guard lock(m_runtime_mutex);
    const bool any_from_api =
        std::any_of(snapshot->config->custom_models.begin(), snapshot->config->custom_models.end(),
                    [](const CustomModelConfig& m) { return m.from_api; });
    if (m_runtime.size() == 0 && !any_from_api) {
      return snapshot;
    }
  }
  auto merged = merge_runtime_models(*snapshot);
  if (!merged.snapshot) {
    for (const auto& e : merged.errors) {
      m_log.error("runtime_models_refused", {{"error", to_string(e)}});
    }
    return snapshot;
  }
  return merged.snapshot;
}

Result<std::string> App::register_model(std::string_view json_body) {
  std::lock_guard publishing(m_publish_mutex);
  Result<std::string> id = make_error(ErrorKind::internal, "");
  {
    std::lock_guard lock(m_runtime_mutex);
    id = m_runtime.add(json_body, *snapshot()->config);
  }
  if (!id) {
    return id;
  }
  // Checked with the whole config (its fallbacks must name real models) before it serves.
  auto merged = merge_runtime_models(*snapshot());
  if (!merged.snapshot) {
    std::lock_guard lock(m_runtime_mutex);
    (void)m_runtime.remove(id.value());
    std::string message;
    for (const auto& e : merged.errors) {
      message += (message.empty() ? "" : "; ") + e.path + ": " + e.message;
    }
    return make_error(ErrorKind::invalid_request, message);
  }
  publish(merged.snapshot);
  m_log.info("model_registered", {{"model", "custom:" + id.value()}});
  return id;
}

Result<bool> App::remove_model(const std::string& id) {
  std::lock_guard publishing(m_publish_mutex);
  Result<bool> removed = false;
  {
    std::lock_guard lock(m_runtime_mutex);
    removed = m_runtime.remove(id);
  }
  if (removed && removed.value()) {
    publish(with_runtime_models(snapshot()));
    m_log.info("model_removed", {{"model", "custom:" + id}});
  }
  return removed;
}

} // namespace modelmux
