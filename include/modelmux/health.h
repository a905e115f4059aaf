// Target health, in Envoy's vocabulary (STYLE.md): outlier ejection learned from real traffic,
// active probe verdicts, 429 cool-downs per key, and the state a target is judged to be in over
// a sliding window. Pure logic with the time passed in, so every rule is tested without a
// clock; one mutex per target, taken once per attempt, never per byte.
#pragma once

#include "modelmux/config.h"
#include "modelmux/outcome.h"
#include "modelmux/shared_state.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

namespace modelmux {

enum class TargetState { healthy, degraded, unhealthy, ejected };
std::string_view to_string(TargetState state);

struct HealthReport {
  TargetState state = TargetState::healthy;
  std::string reason; // empty when healthy
  std::optional<std::chrono::steady_clock::time_point> ejected_until;
  std::optional<double> success_rate; // over the window; none without attempts
  std::optional<int64_t> p95_latency_ms;
  size_t attempts = 0; // in the window
};

// How long a 429 asks to wait: Retry-After as seconds or an HTTP date, or retry-after-ms (as
// OpenAI sends). nullopt when the answer says nothing usable.
std::optional<std::chrono::milliseconds> retry_after(const std::string& retry_after_header,
                                                     const std::string& retry_after_ms_header,
                                                     std::chrono::system_clock::time_point now);

// A 429 with no usable Retry-After cools its key down for this long.
inline constexpr std::chrono::seconds k_default_cool_down{5};

struct NamedReport {
  std::string target;
  HealthReport report;
};

// "ok" when every target is healthy, "down" when none can serve, else "degraded".
std::string_view health_status(const std::vector<NamedReport>& reports);

// GET /health: {"status": "ok"|"degraded"|"down", "targets": [{"target", "state", "reason",
// "ejected_until" (UTC, ISO 8601), "success_rate", "p95_latency_ms"}]}. "down" when no target
// can serve, "degraded" when any is not healthy. steady_now and system_now are the same instant.
// With shared state (SPEC §12), "redis": {"state": "connecting"|"up"|"down", "url", "since",
// "why", "unsent_usd", "dropped"}: an instance whose Redis is down still serves, so it does not
// change "status".
std::string health_json(const std::vector<NamedReport>& reports,
                        std::chrono::steady_clock::time_point steady_now,
                        std::chrono::system_clock::time_point system_now,
                        const SharedStatus* shared = nullptr);

class TargetHealth {
public:
  using Clock = std::chrono::steady_clock;

  TargetHealth(const HealthConfig& config, size_t key_count);

  // A reload may change the thresholds and the number of keys; history is kept.
  void reconfigure(const HealthConfig& config, size_t key_count);

  // One attempt's outcome and its time to first byte. A client's 4xx says nothing about the
  // target and a 429 is a cool-down (cool_key), so neither counts as success or failure.
  void record_attempt(Outcome outcome, std::chrono::milliseconds latency, Clock::time_point now);
  // One active probe. unhealthy_threshold failures in a row make the target unhealthy,
  // healthy_threshold passes bring it back; a pass also ends an ejection early. True when this
  // probe changed the probe verdict (for a log line on the change, not on every probe).
  bool record_probe(bool passed, const std::string& detail, Clock::time_point now);

  // The key to use now: the first one not cooling down. nullopt when every key is cooling.
  // A target without keys has one implicit key, index 0.
  std::optional<size_t> key_for(Clock::time_point now) const;
  void cool_key(size_t key, Clock::time_point until);

  // Context windows the server reported (vLLM's max_model_len per model; llama.cpp's n_ctx for
  // whatever it serves, model ""). Replaces what an earlier probe learned.
  void learn_context_windows(std::vector<std::pair<std::string, int64_t>> windows);
  std::optional<int64_t> learned_context_window(std::string_view model) const;

  // Whether the router should send it traffic while another target can serve.
  bool usable(Clock::time_point now) const;
  HealthReport report(Clock::time_point now) const;

  // Takes the probe verdict and learned context windows of endpoint, the health that active
  // probes of the same server feed, for a target made after those probes.
  void adopt_probe_state(const TargetHealth& endpoint);

private:
  struct Sample {
    Clock::time_point at;
    bool ok;
    int64_t latency_ms;
  };

  void prune(Clock::time_point now) const;
  std::optional<Clock::time_point> cooling_until(Clock::time_point now) const;
  HealthReport judge(Clock::time_point now) const;

  mutable std::mutex m_mutex;
  HealthConfig m_config;
  // Judging the state prunes the window and ends ejections whose time is up, so these change
  // under const reads (always with the mutex held).
  mutable std::deque<Sample> m_samples; // attempts in the window, oldest first
  mutable size_t m_samples_ok = 0;      // how many of them succeeded
  mutable bool m_p95_dirty = false;
  mutable int64_t m_p95_ms = 0;
  mutable Clock::time_point m_p95_at;
  mutable int m_consecutive_failures = 0;
  int m_times_ejected = 0;
  mutable std::optional<Clock::time_point> m_ejected_until;
  std::string m_ejection_reason;
  int m_probe_failures = 0;
  int m_probe_passes = 0;
  bool m_probe_unhealthy = false;
  std::string m_probe_detail;
  std::vector<Clock::time_point> m_key_cooling_until;
  std::vector<std::pair<std::string, int64_t>> m_context_windows;
};

// The targets one registry entry stands for, with their health (SPEC §3). A custom model is one
// target, custom:<id>. A provider is one target per upstream model, <provider>:<model>, made on
// first use: one overloaded model (Anthropic's 529 is per model) ejects that model, not its
// provider. Models named in client text are bounded: past k_max_models, the rest share
// <provider>:(other). Active probes test the server, so their verdict and the context windows
// they learn reach every model of it.
class HealthGroup {
public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t k_max_models = 64;

  struct Member {
    std::string target; // its one name
    std::shared_ptr<TargetHealth> health;
    std::string model; // the upstream model it was made for ("" for a custom model's)
  };

  // name: the registry entry's ("custom:local", "openai"); per_model for a provider, whose
  // catalog models are made at once.
  HealthGroup(std::string name, bool per_model, const HealthConfig& config, size_t key_count,
              const std::vector<std::string>& known_models = {});

  // The member (target name and health) for upstream model: found, or made on first use (a
  // custom model has only one).
  Member member_for(std::string_view model);
  // Every target made so far, in the order made.
  std::vector<Member> members() const;
  // The server's own health, as probes see it: for a provider no model has used yet.
  const TargetHealth& endpoint() const { return m_endpoint; }

  bool record_probe(bool passed, const std::string& detail, Clock::time_point now);
  void learn_context_windows(const std::vector<std::pair<std::string, int64_t>>& windows);
  std::optional<int64_t> learned_context_window(std::string_view model) const;
  // What the server says its model can do (Ollama's /api/show), for a target whose config does
  // not say; nullopt until a probe learned it.
  void learn_capabilities(Capabilities capabilities) {
    m_learned_capabilities.store(static_cast<int>(capabilities.bits));
  }
  std::optional<Capabilities> learned_capabilities() const {
    const int bits = m_learned_capabilities.load();
    return bits < 0 ? std::nullopt : std::optional(Capabilities{static_cast<unsigned>(bits)});
  }
  void reconfigure(const HealthConfig& config, size_t key_count);

private:
  Member make(std::string target, std::string model);
  // The member made for model, or null; with m_mutex held.
  const Member* find(std::string_view model) const;

  std::string m_name;
  bool m_per_model;
  HealthConfig m_config;
  size_t m_key_count;
  TargetHealth m_endpoint;
  std::atomic<int> m_learned_capabilities{-1};
  mutable std::shared_mutex m_mutex;
  std::vector<Member> m_members; // at most k_max_models + 1: a scan is cheaper than a map
};

} // namespace modelmux
