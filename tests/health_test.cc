// Target health with the time passed in: ejection and its growth, recovery, probes, 429
// cool-downs per key, Retry-After, and the windowed verdict.
#include "modelmux/health.h"

#include <doctest/doctest.h>

using namespace modelmux;
using namespace std::chrono_literals;

namespace {

using Clock = TargetHealth::Clock;

HealthConfig config() {
  HealthConfig c;
  c.consecutive_failures = 3;
  c.base_ejection_time = 30s;
  c.max_ejection_time = 70s;
  c.window = 5min;
  c.min_requests = 10;
  c.unhealthy_threshold = 3;
  c.healthy_threshold = 2;
  return c;
}

const Clock::time_point t0 = Clock::time_point(1000h);

void fail(TargetHealth& h, int times, Clock::time_point at) {
  for (int i = 0; i < times; ++i) {
    h.record_attempt(Outcome::http_5xx, 10ms, at);
  }
}

} // namespace

TEST_CASE("consecutive failures eject a target, and it is back when the ejection ends") {
  TargetHealth h(config(), 0);
  fail(h, 2, t0);
  CHECK(h.usable(t0));
  h.record_attempt(Outcome::reset, 10ms, t0);
  CHECK_FALSE(h.usable(t0));
  const auto r = h.report(t0);
  CHECK(r.state == TargetState::ejected);
  CHECK(r.reason == "3 consecutive failures (last: reset), ejected for 30s");
  CHECK(r.ejected_until == t0 + 30s);
  CHECK_FALSE(h.usable(t0 + 29s));
  CHECK(h.usable(t0 + 30s));
  // Counters were reset: two more failures do not eject it again.
  fail(h, 2, t0 + 31s);
  CHECK(h.usable(t0 + 31s));
}

TEST_CASE("each ejection lasts base_ejection_time times the ejections, up to the maximum") {
  TargetHealth h(config(), 0);
  fail(h, 3, t0);
  CHECK(h.report(t0).ejected_until == t0 + 30s);
  fail(h, 3, t0 + 30s);
  CHECK(h.report(t0 + 30s).ejected_until == t0 + 90s); // 2 x 30s
  fail(h, 3, t0 + 90s);
  CHECK(h.report(t0 + 90s).ejected_until == t0 + 160s); // 3 x 30s, capped at 70s
}

TEST_CASE("a success between failures resets the count: only consecutive failures eject") {
  TargetHealth h(config(), 0);
  fail(h, 2, t0);
  h.record_attempt(Outcome::ok, 10ms, t0);
  fail(h, 2, t0);
  CHECK(h.usable(t0));
}

TEST_CASE("a client's 4xx and a 429 never count against a target") {
  TargetHealth h(config(), 0);
  for (int i = 0; i < 10; ++i) {
    h.record_attempt(Outcome::http_4xx, 10ms, t0);
    h.record_attempt(Outcome::http_429, 10ms, t0);
  }
  CHECK(h.usable(t0));
  CHECK(h.report(t0).attempts == 0);
}

TEST_CASE("every stream failure counts: idle, malformed, truncated") {
  for (const auto outcome : {Outcome::idle, Outcome::malformed, Outcome::truncated,
                             Outcome::timeout, Outcome::connect_error}) {
    TargetHealth h(config(), 0);
    for (int i = 0; i < 3; ++i) {
      h.record_attempt(outcome, 10ms, t0);
    }
    CHECK(h.report(t0).state == TargetState::ejected);
  }
}

TEST_CASE("failed probes make a target unhealthy, passing ones bring it back") {
  TargetHealth h(config(), 0);
  CHECK_FALSE(h.record_probe(false, "connection refused", t0));
  CHECK_FALSE(h.record_probe(false, "connection refused", t0 + 30s));
  CHECK(h.usable(t0 + 30s));
  CHECK(h.record_probe(false, "connection refused", t0 + 60s)); // the verdict changed
  CHECK_FALSE(h.usable(t0 + 60s));
  CHECK(h.report(t0 + 60s).reason == "3 failed health probes (last: connection refused)");
  CHECK_FALSE(h.record_probe(true, "HTTP 200", t0 + 90s));
  CHECK_FALSE(h.usable(t0 + 90s));
  CHECK(h.record_probe(true, "HTTP 200", t0 + 120s));
  CHECK(h.usable(t0 + 120s));
  CHECK(h.report(t0 + 120s).state == TargetState::healthy);
}

TEST_CASE("a passing probe ends an ejection early") {
  TargetHealth h(config(), 0);
  fail(h, 3, t0);
  CHECK_FALSE(h.usable(t0 + 1s));
  h.record_probe(true, "HTTP 200", t0 + 2s);
  CHECK(h.usable(t0 + 2s));
}

TEST_CASE("a 429 cools one key, the next key serves, all keys cooling makes the target wait") {
  TargetHealth h(config(), 2);
  CHECK(h.key_for(t0) == 0u);
  h.cool_key(0, t0 + 20s);
  CHECK(h.key_for(t0) == 1u);
  CHECK(h.usable(t0));
  h.cool_key(1, t0 + 10s);
  CHECK_FALSE(h.key_for(t0));
  CHECK_FALSE(h.usable(t0));
  const auto r = h.report(t0);
  CHECK(r.state == TargetState::degraded);
  CHECK(r.reason == "rate limited (429) for another 10s");
  CHECK(h.key_for(t0 + 10s) == 1u);
  CHECK(h.key_for(t0 + 20s) == 0u);
}

TEST_CASE("Retry-After is read as seconds, as an HTTP date, or as retry-after-ms") {
  const auto now = std::chrono::system_clock::from_time_t(1445412480); // 2015-10-21 07:28:00
  CHECK(retry_after("7", "", now) == 7000ms);
  CHECK(retry_after("", "1500", now) == 1500ms);
  CHECK(retry_after("Wed, 21 Oct 2015 07:28:30 GMT", "", now) == 30000ms);
  CHECK(retry_after("Wed, 21 Oct 2015 07:27:00 GMT", "", now) == 0ms);
  CHECK_FALSE(retry_after("soon", "", now));
  CHECK_FALSE(retry_after("", "", now));
}

TEST_CASE("the state is judged over the window by success rate and p95 latency") {
  auto c = config();
  c.consecutive_failures = 1000; // judge by rate only
  TargetHealth h(c, 0);
  for (int i = 0; i < 9; ++i) {
    h.record_attempt(Outcome::http_5xx, 10ms, t0);
  }
  CHECK(h.report(t0).state == TargetState::healthy); // under min_requests: no verdict
  for (int i = 0; i < 11; ++i) {
    h.record_attempt(Outcome::ok, 10ms, t0 + 1s);
  }
  auto r = h.report(t0 + 1s);
  CHECK(r.state == TargetState::unhealthy); // 11/20 = 55%
  CHECK(r.reason == "success rate 55.0% over the last 20 attempts");
  CHECK_FALSE(h.usable(t0 + 1s));
  // The failures leave the window; the successes remain.
  r = h.report(t0 + 5min + 500ms);
  CHECK(r.attempts == 11);
  CHECK(r.state == TargetState::healthy);
  CHECK(r.success_rate == 1.0);

  TargetHealth slow(c, 0);
  for (int i = 0; i < 20; ++i) {
    slow.record_attempt(Outcome::ok, i < 18 ? 100ms : 6000ms, t0);
  }
  r = slow.report(t0);
  CHECK(r.p95_latency_ms == 6000);
  CHECK(r.state == TargetState::degraded);
  CHECK(r.reason == "p95 time to first byte 6000 ms");
  CHECK(slow.usable(t0)); // degraded still serves
}

TEST_CASE("a provider's targets are its models, bounded: past the limit they share (other)") {
  HealthConfig config;
  HealthGroup group("ollama", true, config, 1, {"llama3.1"});
  REQUIRE(group.members().size() == 1);
  CHECK(group.members()[0].target == "ollama:llama3.1");
  CHECK(group.member_for("qwen").target == "ollama:qwen");
  CHECK(group.member_for("qwen").health == group.member_for("qwen").health); // made once
  for (int i = 0; i < 100; ++i) {
    group.member_for("client-text-" + std::to_string(i));
  }
  CHECK(group.members().size() == HealthGroup::k_max_models + 1);
  CHECK(group.member_for("one-more").target == "ollama:(other)");
  CHECK(group.member_for("qwen").target == "ollama:qwen"); // admitted before the limit: its own
  HealthGroup custom("custom:local", false, config, 1);
  CHECK(custom.member_for("anything").target == "custom:local");
}

TEST_CASE("a probe of the server reaches every model of it, and models made later inherit it") {
  using namespace std::chrono_literals;
  HealthConfig config;
  config.unhealthy_threshold = 1;
  HealthGroup group("vllm", true, config, 1, {"a"});
  const auto t0 = TargetHealth::Clock::time_point{} + 1h;
  group.record_probe(false, "connection refused", t0);
  CHECK(group.member_for("a").health->report(t0).state == TargetState::unhealthy);
  CHECK(group.member_for("b").health->report(t0).state == TargetState::unhealthy);
  // One model's failures are its own.
  HealthGroup other("anthropic", true, config, 1);
  for (int i = 0; i < config.consecutive_failures; ++i) {
    other.member_for("claude-opus").health->record_attempt(Outcome::http_5xx, 10ms, t0);
  }
  CHECK(other.member_for("claude-opus").health->report(t0).state == TargetState::ejected);
  CHECK(other.member_for("claude-haiku").health->report(t0).state == TargetState::healthy);
}
