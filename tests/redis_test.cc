// Several instances sharing one Redis (SPEC §12), over loopback: a real redis-server on an
// ephemeral port and two modelmux instances in this process against it. One budget between them,
// a 429 one saw cooling the key on the other, a cache hit and a previous_response_id across
// them, and Redis killed and started again under load with no request failed and the spend
// reconciled.
#include "fake_upstream.h"
#include "redis_server.h"

#include <atomic>

using namespace modelmux;
using namespace modelmux::testing;

namespace {

int64_t utc_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// An upstream whose every answer costs $1 at $1 per million input tokens.
FakeUpstream::Handler dollar_answers() {
  return [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"id":"c","object":"chat.completion","created":1,"model":"m","choices":[)"
                    R"({"index":0,"message":{"role":"assistant","content":"ok"},)"
                    R"("finish_reason":"stop"}],"usage":{"prompt_tokens":1000000,)"
                    R"("completion_tokens":0,"total_tokens":1000000}})",
                    "application/json");
  };
}

const char* k_fleet = R"(
custom_models:
  - {id: local, endpoint: "{url}", model: m, probe: none, cost: {input: 1.0, output: 0.0}}
  - {id: free, type: mock}
redis: {url: "{redis}", key_prefix: "fleet:"}
)";

std::string month_key() {
  return "fleet:spend:month:" + rfc3339_utc(utc_now_ms()).substr(0, 7);
}

int post_status(TestDaemon& d, const std::string& path, const std::string& body,
                std::string* out = nullptr) {
  auto c = d.client();
  const auto r = c.Post(path, body, "application/json");
  if (!r) {
    return 0;
  }
  if (out != nullptr) {
    *out = r->body;
  }
  return r->status;
}

bool redis_up(TestDaemon& d) {
  const auto* shared = d.app().shared();
  return shared != nullptr && shared->status().state == SharedStatus::State::up;
}

} // namespace

TEST_CASE("two instances sharing a Redis hold one budget between them") {
  RedisServer redis(dead_port());
  FakeUpstream upstream(dollar_answers());
  const auto yaml = fill(std::string(k_fleet) + "budget: {monthly_usd: 2.5}\n",
                         {{"url", upstream.base_url()}, {"redis", redis.url()}});
  TestDaemon a(yaml);
  TestDaemon b(yaml);
  REQUIRE(eventually([&] { return redis_up(a) && redis_up(b); }));

  CHECK(post_status(a, "/v1/chat/completions", chat_body("custom:local")) == 200);
  CHECK(post_status(a, "/v1/chat/completions", chat_body("custom:local")) == 200);
  // A's $2 reaches Redis, and B learns the fleet's total from it.
  REQUIRE(eventually([&] { return redis.command({"GET", month_key()}) == "2000000"; }));
  REQUIRE(eventually(
      [&] { return b.app().shared()->spend().month(utc_now_ms()).value_or(0) >= 2'000'000; }));
  // $2 of $2.50: B may still spend, and its $1 takes the fleet to $3.
  CHECK(post_status(b, "/v1/chat/completions", chat_body("custom:local")) == 200);
  REQUIRE(eventually([&] { return redis.command({"GET", month_key()}) == "3000000"; }));
  REQUIRE(eventually(
      [&] { return a.app().shared()->spend().month(utc_now_ms()).value_or(0) >= 3'000'000; }));
  // Now neither may: A spent $2 of its own, under the cap alone, and still says no.
  std::string body;
  CHECK(post_status(a, "/v1/chat/completions", chat_body("custom:local"), &body) == 429);
  CHECK(error_message(body).find("budget") != std::string::npos);
  CHECK(post_status(b, "/v1/chat/completions", chat_body("custom:local")) == 429);
  // Free targets still serve.
  CHECK(post_status(a, "/v1/chat/completions", chat_body("custom:free")) == 200);
  CHECK(upstream.request_count() == 3);
}

TEST_CASE("an instance that stops cleanly has sent all it spent") {
  RedisServer redis(dead_port());
  FakeUpstream upstream(dollar_answers());
  const auto yaml = fill(k_fleet, {{"url", upstream.base_url()}, {"redis", redis.url()}});
  {
    TestDaemon a(yaml);
    REQUIRE(eventually([&] { return redis_up(a); }));
    for (int i = 0; i < 3; ++i) {
      CHECK(post_status(a, "/v1/chat/completions", chat_body("custom:local")) == 200);
    }
  } // stopped at once, within the 100 ms between two sends
  CHECK(redis.command({"GET", month_key()}) == "3000000");
}

TEST_CASE("a 429 one instance saw cools the same key on the other") {
  RedisServer redis(dead_port());
  std::atomic<int> limited_calls{0};
  FakeUpstream limited([&](const httplib::Request&, httplib::Response& res) {
    ++limited_calls;
    res.status = 429;
    res.set_header("retry-after", "60");
    res.set_content(R"({"error":{"message":"slow down","type":"rate_limit_error"}})",
                    "application/json");
  });
  FakeUpstream backup(good_handler());
  const auto yaml = fill(
      R"(
providers:
  limited: {type: openai, base_url: "{limited}", api_keys: [sk-fleet-shared-key-1], probe: none}
  backup: {type: openai, base_url: "{backup}", probe: none}
routing:
  auto: [limited:m, backup:m]
redis: {url: "{redis}", key_prefix: "fleet:"}
)",
      {{"limited", limited.base_url()}, {"backup", backup.base_url()}, {"redis", redis.url()}});
  TestDaemon a(yaml);
  TestDaemon b(yaml);
  REQUIRE(eventually([&] { return redis_up(a) && redis_up(b); }));

  auto ca = a.client();
  auto r = ca.Post("/v1/chat/completions", chat_body("auto"), "application/json");
  REQUIRE(r);
  CHECK(header(r, "x-modelmux-target") == "backup:m");
  CHECK(limited_calls == 1);
  // B hears of it: its only key for limited:m is cooling, though B never called limited.
  const auto snapshot = b.app().snapshot();
  const Target* entry = nullptr;
  for (const auto& t : snapshot->registry->targets()) {
    if (t.name == "limited") {
      entry = &t;
    }
  }
  REQUIRE(entry != nullptr);
  REQUIRE(eventually([&] {
    return !snapshot->health[entry->index]->member_for("m").health->key_for(
        std::chrono::steady_clock::now());
  }));
  auto cb = b.client();
  r = cb.Post("/v1/chat/completions", chat_body("auto"), "application/json");
  REQUIRE(r);
  CHECK(header(r, "x-modelmux-target") == "backup:m");
  CHECK(header(r, "x-modelmux-attempts") == "1");
  CHECK(limited_calls == 1); // B did not hammer the key A saw limited
  // The key itself is never in Redis, only its fingerprint in a message.
  CHECK(redis.command({"KEYS", "*sk-fleet*"}) == "0");
}

TEST_CASE("an answer one instance cached is a hit on the other") {
  RedisServer redis(dead_port());
  FakeUpstream upstream(dollar_answers());
  const auto yaml = fill(std::string(k_fleet) + "cache: {enabled: true, when: always}\n",
                         {{"url", upstream.base_url()}, {"redis", redis.url()}});
  TestDaemon a(yaml);
  TestDaemon b(yaml);
  REQUIRE(eventually([&] { return redis_up(a) && redis_up(b); }));
  auto ca = a.client();
  auto r = ca.Post("/v1/chat/completions", chat_body("custom:local"), "application/json");
  REQUIRE(r);
  CHECK(header(r, "x-modelmux-cache") == "miss");
  REQUIRE(eventually([&] { return redis.command({"KEYS", "fleet:cache:*"}) == "1"; }));
  auto cb = b.client();
  r = cb.Post("/v1/chat/completions", chat_body("custom:local"), "application/json");
  REQUIRE(r);
  CHECK(header(r, "x-modelmux-cache") == "hit");
  CHECK(r->body.find(R"("prompt_tokens":1000000)") != std::string::npos);
  CHECK(upstream.request_count() == 1);
  // The hit is B's now too: asked again, B answers from its own memory.
  r = cb.Post("/v1/chat/completions", chat_body("custom:local"), "application/json");
  CHECK(header(r, "x-modelmux-cache") == "hit");
}

TEST_CASE("a conversation begun on one instance continues on the other") {
  RedisServer redis(dead_port());
  FakeUpstream upstream(good_handler());
  const auto yaml = fill(k_fleet, {{"url", upstream.base_url()}, {"redis", redis.url()}});
  TestDaemon a(yaml);
  TestDaemon b(yaml);
  REQUIRE(eventually([&] { return redis_up(a) && redis_up(b); }));
  std::string first;
  REQUIRE(post_status(a, "/v1/responses", R"({"model":"custom:free","input":"my name is Ada"})",
                      &first) == 200);
  const size_t at = first.find(R"("id":"resp_)");
  REQUIRE(at != std::string::npos);
  const std::string id = first.substr(at + 6, first.find('"', at + 6) - at - 6);
  REQUIRE(eventually([&] { return redis.command({"EXISTS", "fleet:resp:" + id}) == "1"; }));
  std::string second;
  CHECK(
      post_status(b, "/v1/responses",
                  R"({"model":"custom:free","input":"what is my name?","previous_response_id":")" +
                      id + R"("})",
                  &second) == 200);
  // The mock echoes the last user message; the conversation B rebuilt had A's turn in it.
  CHECK(second.find("what is my name?") != std::string::npos);
  std::string unknown;
  CHECK(post_status(b, "/v1/responses",
                    R"({"model":"custom:free","input":"x","previous_response_id":"resp_nope"})",
                    &unknown) == 400);
}

TEST_CASE("Redis killed and started again under load: no request fails and the spend is "
          "reconciled") {
  RedisServer redis(dead_port(), /*persist=*/true);
  FakeUpstream upstream(dollar_answers());
  const auto yaml = fill(k_fleet, {{"url", upstream.base_url()}, {"redis", redis.url()}});
  TestDaemon a(yaml);
  TestDaemon b(yaml);
  REQUIRE(eventually([&] { return redis_up(a) && redis_up(b); }));

  std::atomic<bool> stop{false};
  std::atomic<int> served{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> clients;
  for (TestDaemon* d : {&a, &b, &a, &b}) {
    clients.emplace_back([&, d] {
      auto c = d->client();
      while (!stop) {
        const auto r =
            c.Post("/v1/chat/completions", chat_body("custom:local"), "application/json");
        (r && r->status == 200 ? served : failed)++;
      }
    });
  }
  REQUIRE(eventually([&] { return served >= 50; }));
  redis.kill();
  REQUIRE(eventually([&] { return !redis_up(a) && !redis_up(b); }));
  const int at_outage = served;
  REQUIRE(eventually([&] { return served >= at_outage + 100; })); // serving on, alone
  // Each says so on /health, and still says it is ok.
  auto health = a.client().Get("/health");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(health->body.find(R"("redis":{"state":"down")") != std::string::npos);
  CHECK(a.app().shared()->status().unsent_micros > 0);
  // modelmux status says so too.
  const auto text = status_text(a.app().status_json(health->body));
  REQUIRE(text);
  CHECK(text.value().find("redis      down (" + redis.url() + ")") != std::string::npos);
  redis.start();
  REQUIRE(eventually([&] { return redis_up(a) && redis_up(b); }));
  const int at_return = served;
  REQUIRE(eventually([&] { return served >= at_return + 50; }));
  stop = true;
  for (auto& t : clients) {
    t.join();
  }
  CHECK(failed == 0);
  // Every dollar either instance spent reaches Redis once it is back: what waited during the
  // outage included. (An increment whose answer was lost with the connection is sent again,
  // so the total may be over by that, never under.)
  a.app().flush_usage();
  b.app().flush_usage();
  const int64_t expected = static_cast<int64_t>(served) * 1'000'000;
  CHECK(eventually([&] {
    const auto total = redis.command({"GET", month_key()});
    return total && std::stoll(*total) >= expected;
  }));
  const int64_t total = std::stoll(redis.command({"GET", month_key()}).value_or("0"));
  CHECK(total <= expected + 4'000'000);
  MESSAGE("outage: " << at_outage << " requests before Redis was killed, " << at_return - at_outage
                     << " while it was down, " << served - at_return << " after; " << failed.load()
                     << " failed; spend in Redis $" << total / 1e6 << " for $" << expected / 1e6
                     << " served");
  CHECK(eventually([&] {
    return a.app().shared()->status().unsent_micros == 0 &&
           b.app().shared()->status().unsent_micros == 0;
  }));
  const auto lines = a.log_lines();
  CHECK(std::count_if(lines.begin(), lines.end(), [](const std::string& l) {
          return l.find("event=redis_down") != std::string::npos;
        }) == 1); // said once per outage
}
