// Target health: ejection, probes, cool-downs and the windowed verdict.
#include "modelmux/health.h"

#include "modelmux/json.h"
#include "modelmux/text.h"
#include "modelmux/usage.h"

#include <algorithm>
#include <cmath>
#include <ctime>

namespace modelmux {

namespace {

// Past this many attempts in the window, the oldest are forgotten early: the verdict needs a
// rate and a p95, not every attempt of a busy hour.
constexpr size_t k_max_samples = 4096;
// The p95 of all but a tiny window is recomputed at most this often: the router asks for the
// verdict on every request.
constexpr auto k_p95_refresh = std::chrono::seconds(1);

std::string seconds_text(std::chrono::milliseconds d) {
  return std::to_string((d.count() + 999) / 1000) + "s";
}

bool is_failure(Outcome outcome) {
  return outcome != Outcome::ok && outcome != Outcome::http_4xx && outcome != Outcome::http_429;
}

} // namespace

std::string_view to_string(TargetState state) {
  switch (state) {
  case TargetState::healthy:
    return "healthy";
  case TargetState::degraded:
    return "degraded";
  case TargetState::unhealthy:
    return "unhealthy";
  case TargetState::ejected:
    return "ejected";
  }
  return "healthy";
}

std::optional<std::chrono::milliseconds> retry_after(const std::string& header,
                                                     const std::string& ms_header,
                                                     std::chrono::system_clock::time_point now) {
  if (!ms_header.empty()) {
    if (const auto ms = parse_int(ms_header); ms && *ms >= 0) {
      return std::chrono::milliseconds(*ms);
    }
  }
  if (header.empty()) {
    return std::nullopt;
  }
  if (const auto seconds = parse_int(header); seconds) {
    return *seconds >= 0 ? std::optional(std::chrono::milliseconds(*seconds * 1000)) : std::nullopt;
  }
  // An HTTP date: "Wed, 21 Oct 2015 07:28:00 GMT".
  std::tm tm{};
  const char* end = strptime(header.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr) {
    return std::nullopt;
  }
  const auto at = std::chrono::system_clock::from_time_t(timegm(&tm));
  return std::max(std::chrono::milliseconds(0),
                  std::chrono::duration_cast<std::chrono::milliseconds>(at - now));
}

std::string_view health_status(const std::vector<NamedReport>& reports) {
  size_t healthy = 0;
  size_t out_of_service = 0;
  for (const auto& r : reports) {
    healthy += r.report.state == TargetState::healthy;
    out_of_service +=
        r.report.state == TargetState::ejected || r.report.state == TargetState::unhealthy;
  }
  return healthy == reports.size() ? "ok" : out_of_service == reports.size() ? "down" : "degraded";
}

std::string health_json(const std::vector<NamedReport>& reports,
                        std::chrono::steady_clock::time_point steady_now,
                        std::chrono::system_clock::time_point system_now,
                        const SharedStatus* shared) {
  const std::string_view status = health_status(reports);
  std::string out;
  JsonWriter w(out);
  w.begin_object().field("status", status).key("targets").begin_array();
  for (const auto& [target, r] : reports) {
    w.begin_object().field("target", std::string_view(target)).field("state", to_string(r.state));
    w.key("reason");
    if (r.reason.empty()) {
      w.null();
    } else {
      w.value(std::string_view(r.reason));
    }
    w.key("ejected_until");
    if (r.ejected_until) {
      const auto at = system_now + std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                       *r.ejected_until - steady_now);
      const std::time_t t = std::chrono::system_clock::to_time_t(at);
      std::tm tm{};
      gmtime_r(&t, &tm);
      char iso[32];
      std::strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
      w.value(std::string_view(iso));
    } else {
      w.null();
    }
    w.key("success_rate");
    if (r.success_rate) {
      w.value(std::round(*r.success_rate * 10000.0) / 10000.0);
    } else {
      w.null();
    }
    w.key("p95_latency_ms");
    if (r.p95_latency_ms) {
      w.value(*r.p95_latency_ms);
    } else {
      w.null();
    }
    w.end_object();
  }
  w.end_array();
  if (shared != nullptr) {
    w.key("redis").begin_object();
    w.field("state", state_name(shared->state)).field("url", std::string_view(shared->url));
    w.field("since", std::string_view(rfc3339_utc(shared->since_ms)));
    w.key("why");
    if (shared->why.empty()) {
      w.null();
    } else {
      w.value(std::string_view(shared->why));
    }
    w.key("unsent_usd").raw(usd_from_micros(shared->unsent_micros));
    w.field("dropped", shared->dropped).end_object();
  }
  w.end_object();
  return out;
}

TargetHealth::TargetHealth(const HealthConfig& config, size_t key_count) {
  reconfigure(config, key_count);
}

void TargetHealth::reconfigure(const HealthConfig& config, size_t key_count) {
  std::lock_guard lock(m_mutex);
  m_config = config;
  m_key_cooling_until.resize(std::max<size_t>(1, key_count));
}

void TargetHealth::record_attempt(Outcome outcome, std::chrono::milliseconds latency,
                                  Clock::time_point now) {
  if (outcome == Outcome::http_4xx || outcome == Outcome::http_429) {
    return;
  }
  std::lock_guard lock(m_mutex);
  const bool failed = is_failure(outcome);
  m_samples.push_back(Sample{now, !failed, latency.count()});
  m_samples_ok += failed ? 0 : 1;
  if (m_samples.size() > k_max_samples) {
    m_samples_ok -= m_samples.front().ok ? 1 : 0;
    m_samples.pop_front();
  }
  m_p95_dirty = true;
  if (!failed) {
    m_consecutive_failures = 0;
    if (!m_ejected_until && m_times_ejected > 0) {
      --m_times_ejected; // a target that serves again earns back its shorter ejections
    }
    return;
  }
  if (m_ejected_until && now < *m_ejected_until) {
    return; // an attempt already under way when it was ejected
  }
  if (++m_consecutive_failures < m_config.consecutive_failures) {
    return;
  }
  ++m_times_ejected;
  const auto duration = std::min<std::chrono::milliseconds>(
      m_config.base_ejection_time * m_times_ejected, m_config.max_ejection_time);
  m_ejected_until = now + duration;
  m_ejection_reason = std::to_string(m_consecutive_failures) +
                      " consecutive failures (last: " + std::string(to_string(outcome)) +
                      "), ejected for " + seconds_text(duration);
  m_consecutive_failures = 0;
}

bool TargetHealth::record_probe(bool passed, const std::string& detail, Clock::time_point now) {
  std::lock_guard lock(m_mutex);
  m_probe_detail = detail;
  const bool was_unhealthy = m_probe_unhealthy;
  if (passed) {
    m_probe_failures = 0;
    ++m_probe_passes;
    if (m_probe_unhealthy && m_probe_passes >= m_config.healthy_threshold) {
      m_probe_unhealthy = false;
    }
    if (m_ejected_until && now < *m_ejected_until) {
      m_ejected_until.reset(); // the target answers again: back early
      m_consecutive_failures = 0;
    }
  } else {
    m_probe_passes = 0;
    if (++m_probe_failures >= m_config.unhealthy_threshold) {
      m_probe_unhealthy = true;
    }
  }
  return was_unhealthy != m_probe_unhealthy;
}

std::optional<size_t> TargetHealth::key_for(Clock::time_point now) const {
  std::lock_guard lock(m_mutex);
  for (size_t i = 0; i < m_key_cooling_until.size(); ++i) {
    if (m_key_cooling_until[i] <= now) {
      return i;
    }
  }
  return std::nullopt;
}

void TargetHealth::cool_key(size_t key, Clock::time_point until) {
  std::lock_guard lock(m_mutex);
  if (key < m_key_cooling_until.size()) {
    m_key_cooling_until[key] = std::max(m_key_cooling_until[key], until);
  }
}

std::optional<TargetHealth::Clock::time_point>
TargetHealth::cooling_until(Clock::time_point now) const {
  Clock::time_point soonest = Clock::time_point::max();
  for (const auto until : m_key_cooling_until) {
    if (until <= now) {
      return std::nullopt;
    }
    soonest = std::min(soonest, until);
  }
  return soonest;
}

void TargetHealth::learn_context_windows(std::vector<std::pair<std::string, int64_t>> windows) {
  std::lock_guard lock(m_mutex);
  m_context_windows = std::move(windows);
}

std::optional<int64_t> TargetHealth::learned_context_window(std::string_view model) const {
  std::lock_guard lock(m_mutex);
  for (const auto& [name, window] : m_context_windows) {
    if (name == model || name.empty()) {
      return window;
    }
  }
  return std::nullopt;
}

bool TargetHealth::usable(Clock::time_point now) const {
  std::lock_guard lock(m_mutex);
  const auto verdict = judge(now);
  return verdict.state != TargetState::ejected && verdict.state != TargetState::unhealthy &&
         !cooling_until(now);
}

HealthReport TargetHealth::report(Clock::time_point now) const {
  std::lock_guard lock(m_mutex);
  auto r = judge(now);
  if (r.state == TargetState::healthy) {
    if (const auto until = cooling_until(now)) {
      r.state = TargetState::degraded;
      r.reason = "rate limited (429) for another " +
                 seconds_text(std::chrono::duration_cast<std::chrono::milliseconds>(*until - now));
    }
  }
  return r;
}

void TargetHealth::prune(Clock::time_point now) const {
  const auto oldest = now - m_config.window;
  while (!m_samples.empty() && m_samples.front().at < oldest) {
    m_samples_ok -= m_samples.front().ok ? 1 : 0;
    m_samples.pop_front();
    m_p95_dirty = true;
  }
}

HealthReport TargetHealth::judge(Clock::time_point now) const {
  HealthReport r;
  prune(now);
  r.attempts = m_samples.size();
  if (!m_samples.empty()) {
    // Kept as samples come and go: a scan of the window here cost every request up to 4096 steps.
    r.success_rate = static_cast<double>(m_samples_ok) / static_cast<double>(m_samples.size());
    if (m_p95_dirty && (m_samples.size() <= 32 || now - m_p95_at >= k_p95_refresh)) {
      std::vector<int64_t> latencies;
      latencies.reserve(m_samples.size());
      for (const auto& s : m_samples) {
        latencies.push_back(s.latency_ms);
      }
      const size_t at = (latencies.size() * 95 + 99) / 100 - 1;
      std::nth_element(latencies.begin(), latencies.begin() + static_cast<ptrdiff_t>(at),
                       latencies.end());
      m_p95_ms = latencies[at];
      m_p95_at = now;
      m_p95_dirty = false;
    }
    r.p95_latency_ms = m_p95_ms;
  }
  if (m_ejected_until) {
    if (now < *m_ejected_until) {
      r.state = TargetState::ejected;
      r.reason = m_ejection_reason;
      r.ejected_until = m_ejected_until;
      return r;
    }
    m_ejected_until.reset(); // its time is up: back, with the failure count reset
    m_consecutive_failures = 0;
  }
  if (m_probe_unhealthy) {
    r.state = TargetState::unhealthy;
    r.reason =
        std::to_string(m_probe_failures) + " failed health probes (last: " + m_probe_detail + ")";
    return r;
  }
  if (r.attempts < static_cast<size_t>(m_config.min_requests) || !r.success_rate) {
    return r;
  }
  const auto verdict = [&](const HealthThresholds& t, TargetState state) {
    if (*r.success_rate < t.success_rate_below) {
      char rate[32];
      std::snprintf(rate, sizeof rate, "%.1f%%", *r.success_rate * 100.0);
      r.state = state;
      r.reason = "success rate " + std::string(rate) + " over the last " +
                 std::to_string(r.attempts) + " attempts";
      return true;
    }
    if (r.p95_latency_ms && *r.p95_latency_ms > t.p95_latency_above.count()) {
      r.state = state;
      r.reason = "p95 time to first byte " + std::to_string(*r.p95_latency_ms) + " ms";
      return true;
    }
    return false;
  };
  if (!verdict(m_config.unhealthy, TargetState::unhealthy)) {
    verdict(m_config.degraded, TargetState::degraded);
  }
  return r;
}

void TargetHealth::adopt_probe_state(const TargetHealth& endpoint) {
  int failures = 0;
  int passes = 0;
  bool unhealthy = false;
  std::string detail;
  std::vector<std::pair<std::string, int64_t>> windows;
  {
    std::lock_guard lock(endpoint.m_mutex);
    failures = endpoint.m_probe_failures;
    passes = endpoint.m_probe_passes;
    unhealthy = endpoint.m_probe_unhealthy;
    detail = endpoint.m_probe_detail;
    windows = endpoint.m_context_windows;
  }
  std::lock_guard lock(m_mutex);
  m_probe_failures = failures;
  m_probe_passes = passes;
  m_probe_unhealthy = unhealthy;
  m_probe_detail = std::move(detail);
  m_context_windows = std::move(windows);
}

HealthGroup::HealthGroup(std::string name, bool per_model, const HealthConfig& config,
                         size_t key_count, const std::vector<std::string>& known_models)
    : m_name(std::move(name)), m_per_model(per_model), m_config(config), m_key_count(key_count),
      m_endpoint(config, key_count) {
  if (!m_per_model) {
    m_members.push_back(make(m_name, {}));
    return;
  }
  for (const auto& model : known_models) {
    if (m_members.size() < k_max_models) {
      m_members.push_back(make(m_name + ":" + model, model));
    }
  }
}

HealthGroup::Member HealthGroup::make(std::string target, std::string model) {
  auto health = std::make_shared<TargetHealth>(m_config, m_key_count);
  health->adopt_probe_state(m_endpoint);
  return Member{std::move(target), std::move(health), std::move(model)};
}

const HealthGroup::Member* HealthGroup::find(std::string_view model) const {
  for (const auto& m : m_members) {
    if (m.model == model) {
      return &m;
    }
  }
  return nullptr;
}

HealthGroup::Member HealthGroup::member_for(std::string_view model) {
  if (!m_per_model) {
    return m_members.front(); // made once, never changed: no lock
  }
  {
    std::shared_lock lock(m_mutex);
    if (const auto* m = find(model)) {
      return *m;
    }
  }
  std::unique_lock lock(m_mutex);
  if (const auto* m = find(model)) {
    return *m;
  }
  if (m_members.size() >= k_max_models) {
    // Client text names models without end; the rest share one target. It is found by its
    // name, not by a model: it stands for every model past the limit.
    for (const auto& m : m_members) {
      if (m.target == m_name + ":(other)") {
        return m;
      }
    }
    m_members.push_back(make(m_name + ":(other)", "\n(other)"));
    return m_members.back();
  }
  m_members.push_back(make(m_name + ":" + std::string(model), std::string(model)));
  return m_members.back();
}

std::vector<HealthGroup::Member> HealthGroup::members() const {
  std::shared_lock lock(m_mutex);
  return m_members;
}

bool HealthGroup::record_probe(bool passed, const std::string& detail, Clock::time_point now) {
  const bool changed = m_endpoint.record_probe(passed, detail, now);
  for (const auto& m : members()) {
    m.health->record_probe(passed, detail, now);
  }
  return changed;
}

void HealthGroup::learn_context_windows(
    const std::vector<std::pair<std::string, int64_t>>& windows) {
  m_endpoint.learn_context_windows(windows);
  for (const auto& m : members()) {
    m.health->learn_context_windows(windows);
  }
}

std::optional<int64_t> HealthGroup::learned_context_window(std::string_view model) const {
  return m_endpoint.learned_context_window(model);
}

void HealthGroup::reconfigure(const HealthConfig& config, size_t key_count) {
  m_endpoint.reconfigure(config, key_count);
  std::unique_lock lock(m_mutex);
  m_config = config;
  m_key_count = key_count;
  for (const auto& m : m_members) {
    m.health->reconfigure(config, key_count);
  }
}

} // namespace modelmux
