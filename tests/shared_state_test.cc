// The shared state's pure parts (SPEC §12), with no socket: the budget's shared counters, the
// redis: config, and what is written to Redis (cooldown messages, cached answers).
#include "modelmux/app.h"
#include "modelmux/response_cache.h"
#include "modelmux/shared_spend.h"
#include "modelmux/shared_state.h"

#include <doctest/doctest.h>

using namespace modelmux;

namespace {

constexpr int64_t k_dec3 = 1'796'256'000'000; // 2026-12-03T00:00:00Z
constexpr int64_t k_jan1 = 1'798'761'600'000; // 2027-01-01T00:00:00Z

} // namespace

TEST_CASE("shared spend is unknown until the store answers, then the fleet's total plus what "
          "this instance spent since") {
  SharedSpend s;
  s.add(k_dec3 + 1000, 250'000);
  CHECK_FALSE(s.month(k_dec3 + 2000)); // nothing heard from the store yet
  auto sent = s.take(k_dec3 + 2000);
  REQUIRE(sent.size() == 2);
  CHECK(sent[0].period == "day:2026-12-03");
  CHECK(sent[1].period == "month:2026-12");
  CHECK(sent[1].micros == 250'000);
  // The store added it to what the other instances spent: $5.25 in all.
  s.acknowledge("month:2026-12", 250'000, 5'250'000);
  s.acknowledge("day:2026-12-03", 250'000, 1'250'000);
  CHECK(s.month(k_dec3 + 3000) == 5'250'000);
  CHECK(s.day(k_dec3 + 3000) == 1'250'000);
  // Spent here since: counted at once, before the store hears of it.
  s.add(k_dec3 + 4000, 100'000);
  CHECK(s.month(k_dec3 + 4000) == 5'350'000);
  CHECK(s.unsent() == 100'000);
  // A day later the day is a new period, unknown until the store answers for it.
  CHECK_FALSE(s.day(k_dec3 + 86'400'000));
}

TEST_CASE("shared spend that could not be sent waits and is sent again: nothing is lost") {
  SharedSpend s;
  s.take(k_dec3);
  s.acknowledge("month:2026-12", 0, 1'000'000);
  s.add(k_dec3 + 10, 300'000);
  auto sent = s.take(k_dec3 + 20);
  // The link went down: the increments come back.
  for (const auto& inc : sent) {
    s.restore(inc.period, inc.micros);
  }
  CHECK(s.unsent() == 300'000);
  CHECK(s.month(k_dec3 + 30) == 1'300'000); // still counted here
  s.add(k_dec3 + 40, 200'000);
  sent = s.take(k_dec3 + 50);
  int64_t month_sent = 0;
  for (const auto& inc : sent) {
    if (inc.period == "month:2026-12") {
      month_sent = inc.micros;
    }
  }
  CHECK(month_sent == 500'000); // both, in one increment
  s.acknowledge("month:2026-12", 500'000, 1'500'000);
  CHECK(s.unsent() == 0);
  CHECK(s.month(k_dec3 + 60) == 1'500'000);
}

TEST_CASE("shared spend of a past month is still sent after the month turns, then forgotten") {
  SharedSpend s;
  s.add(k_jan1 - 1000, 700'000); // the last second of December
  const auto sent = s.take(k_jan1 + 1000);
  bool december = false;
  for (const auto& inc : sent) {
    december = december || (inc.period == "month:2026-12" && inc.micros == 700'000);
  }
  CHECK(december);
  s.acknowledge("month:2026-12", 700'000, 9'000'000);
  s.acknowledge("month:2027-01", 0, 0);
  CHECK(s.month(k_jan1 + 2000) == 0); // January's view, not December's late answer
  for (const auto& inc : s.take(k_jan1 + 3000)) {
    CHECK(inc.period != "month:2026-12");
  }
}

TEST_CASE("redis URLs: host, port and database, credentials and other schemes refused") {
  const auto plain = parse_redis_url("redis://10.0.0.5:6380/2");
  REQUIRE(plain);
  CHECK(plain->host == "10.0.0.5");
  CHECK(plain->port == 6380);
  CHECK(plain->db == 2);
  CHECK_FALSE(plain->tls);
  const auto tls = parse_redis_url("rediss://cache.internal");
  REQUIRE(tls);
  CHECK(tls->tls);
  CHECK(tls->port == 6379);
  CHECK(tls->db == 0);
  CHECK_FALSE(parse_redis_url("redis://:hunter2@host:6379/0"));
  CHECK_FALSE(parse_redis_url("http://host:6379"));
  CHECK_FALSE(parse_redis_url("redis://host:99999"));
  CHECK_FALSE(parse_redis_url("redis://host/x"));
  CHECK_FALSE(parse_redis_url("redis://"));
}

TEST_CASE("the redis: section takes a password from the environment and refuses a URL with one") {
  ConfigEnvironment env;
  env.getenv = [](const std::string& name) -> std::optional<std::string> {
    if (name == "REDIS_PASSWORD") {
      return "redis-secret-7781";
    }
    return std::nullopt;
  };
  auto load = load_snapshot_text(R"(
custom_models: [{id: demo, type: mock}]
redis:
  url: redis://127.0.0.1:6379/1
  password: "${env:REDIS_PASSWORD}"
  key_prefix: "team-a:"
)",
                                 "inline.yaml", env);
  REQUIRE(load.errors.empty());
  const auto& redis = load.snapshot->config->redis;
  REQUIRE(redis);
  CHECK(redis->password.value == "redis-secret-7781");
  CHECK(redis->key_prefix == "team-a:");
  CHECK(redis->endpoint.db == 1);

  load = load_snapshot_text(R"(
custom_models: [{id: demo, type: mock}]
redis: {url: "redis://:redis-secret-7781@127.0.0.1:6379/0"}
)",
                            "inline.yaml", env);
  REQUIRE_FALSE(load.errors.empty());
  CHECK(load.errors[0].message.find("no credentials") != std::string::npos);
  for (const auto& e : load.errors) {
    CHECK(e.message.find("redis-secret-7781") == std::string::npos);
  }
}

TEST_CASE("a cooldown message names the key by fingerprint and reads back, junk does not") {
  const SharedCooldown c{"openai", "gpt-4o", key_fingerprint("sk-live-abc"), 1'796'342'460'000};
  const auto message = encode_cooldown(c);
  CHECK(message.find("sk-live-abc") == std::string::npos);
  const auto back = decode_cooldown(message);
  REQUIRE(back);
  CHECK(back->entry == "openai");
  CHECK(back->model == "gpt-4o");
  CHECK(back->key_id == c.key_id);
  CHECK(back->until_ms == c.until_ms);
  CHECK(key_fingerprint("sk-live-abc") != key_fingerprint("sk-live-abd"));
  CHECK_FALSE(decode_cooldown("openai\tgpt-4o\tshort\t1"));
  CHECK_FALSE(decode_cooldown("no tabs at all"));
  CHECK_FALSE(decode_cooldown("openai\tm\t0123456789abcdef\t-5"));
}

TEST_CASE("a cached answer written for a shared store reads back whole, anything else does not") {
  CachedAnswer a;
  a.target = "custom:local";
  a.body = "{\"id\":\"c\",\n\"choices\":[]}";
  a.cost_micros = 1234;
  a.usage = TokenUsage{100, 20, 5, 1, true};
  const auto back = decode_cached_answer(encode_cached_answer(a));
  REQUIRE(back);
  CHECK(back->target == a.target);
  CHECK(back->body == a.body);
  CHECK(back->cost_micros == 1234);
  CHECK(back->usage.input_tokens == 100);
  CHECK(back->usage.cache_write_tokens == 1);
  CHECK(back->usage.reported);
  CHECK_FALSE(decode_cached_answer(""));
  CHECK_FALSE(decode_cached_answer("modelmux-answer-1\ncustom:x\n1 2 3\n{}"));
  CHECK_FALSE(decode_cached_answer("modelmux-answer-2\ncustom:x\n1 2 3 4 5 1\n{}"));
  CHECK_FALSE(decode_cached_answer("modelmux-answer-1\ncustom:x\n1 2 3 4 5 1\n"));
}
