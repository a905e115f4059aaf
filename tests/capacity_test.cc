// Routing by load and by capability, the pure parts (SPEC §10): a target's slots and queue, the
// spill decision with injected time, what a request needs, and the router's capability skips.
// No sockets.
#include "fake_upstream.h"
#include "modelmux/capability.h"
#include "modelmux/router.h"
#include "modelmux/target_slots.h"

#include <doctest/doctest.h>
#include <simdjson.h>

using namespace modelmux;
using namespace std::chrono_literals;

namespace {

using Clock = TargetSlots::Clock;

SlotLimits limits(int max_concurrency, int max_queue = 64) {
  SlotLimits l;
  l.max_concurrency = max_concurrency;
  l.max_queue = max_queue;
  return l;
}

Capabilities needs_of(ApiRoute route, const std::string& json) {
  simdjson::dom::parser parser;
  const simdjson::padded_string padded(json);
  simdjson::dom::element root;
  REQUIRE_FALSE(parser.parse(padded).get(root));
  return needed_capabilities(route, root);
}

Capabilities set_of(std::initializer_list<Capability> cs) {
  Capabilities out;
  for (const auto c : cs) {
    out.add(c);
  }
  return out;
}

} // namespace

TEST_CASE("a target with max_concurrency grants that many slots, then queues in arrival order") {
  TargetSlots slots(limits(2));
  const auto t0 = Clock::time_point{} + 1h;
  std::vector<int> woken;
  CHECK(slots.acquire(t0, 0ms, [] {}).decision == TargetSlots::Decision::granted);
  CHECK(slots.acquire(t0, 0ms, [] {}).decision == TargetSlots::Decision::granted);
  auto third = slots.acquire(t0, 0ms, [&] { woken.push_back(3); });
  auto fourth = slots.acquire(t0, 0ms, [&] { woken.push_back(4); });
  CHECK(third.decision == TargetSlots::Decision::queued);
  CHECK(fourth.decision == TargetSlots::Decision::queued);
  CHECK(slots.view().in_use == 2);
  CHECK(slots.view().queued == 2);

  slots.release(100ms);
  CHECK(woken == std::vector<int>{3});
  CHECK(slots.leave(third.waiter)); // it holds the slot that was given back
  CHECK(slots.view().in_use == 2);
  CHECK(slots.view().queued == 1);
  slots.release(100ms);
  CHECK(woken == std::vector<int>{3, 4});
  CHECK(slots.leave(fourth.waiter));
  slots.release(100ms);
  slots.release(100ms);
  CHECK(slots.view().in_use == 0);
}

TEST_CASE("a newcomer never takes a freed slot ahead of a waiter") {
  TargetSlots slots(limits(1));
  const auto t0 = Clock::time_point{} + 1h;
  CHECK(slots.acquire(t0, 0ms, [] {}).decision == TargetSlots::Decision::granted);
  bool woken = false;
  auto waiter = slots.acquire(t0, 0ms, [&] { woken = true; });
  slots.release(10ms); // the slot passes to the waiter before it even runs
  CHECK(woken);
  CHECK(slots.acquire(t0, 0ms, [] {}).decision == TargetSlots::Decision::queued);
  CHECK_FALSE(slots.try_acquire());
}

TEST_CASE("a full queue turns a request away as busy, and a waiter that times out leaves it") {
  TargetSlots slots(limits(1, 1));
  const auto t0 = Clock::time_point{} + 1h;
  CHECK(slots.acquire(t0, 0ms, [] {}).decision == TargetSlots::Decision::granted);
  auto waiter = slots.acquire(t0, 0ms, [] {});
  CHECK(waiter.decision == TargetSlots::Decision::queued);
  CHECK(slots.acquire(t0, 0ms, [] {}).decision == TargetSlots::Decision::full);

  CHECK_FALSE(slots.leave(waiter.waiter)); // timed out: no slot, out of the queue
  CHECK(slots.view().queued == 0);
  CHECK(slots.acquire(t0, 0ms, [] {}).decision == TargetSlots::Decision::queued);
}

TEST_CASE("a target without max_concurrency never queues") {
  TargetSlots slots(limits(0));
  const auto t0 = Clock::time_point{} + 1h;
  for (int i = 0; i < 1000; ++i) {
    REQUIRE(slots.acquire(t0, 1ms, [] {}).decision == TargetSlots::Decision::granted);
  }
  CHECK(slots.try_acquire());
}

TEST_CASE("the expected wait of the k-th waiter is ceil(k / slots) recent service times") {
  TargetSlots slots(limits(4));
  CHECK_FALSE(slots.expected_wait(1)); // nothing served yet: unknown
  slots.acquire(Clock::time_point{}, 0ms, [] {});
  slots.release(200ms);
  CHECK(slots.expected_wait(1) == 200ms);
  CHECK(slots.expected_wait(4) == 200ms);
  CHECK(slots.expected_wait(5) == 400ms);
  CHECK(slots.expected_wait(9) == 600ms);
}

TEST_CASE("spill_after below one service time sends every request past the limit on at once") {
  TargetSlots slots(limits(4));
  const auto t0 = Clock::time_point{} + 1h;
  slots.acquire(t0, 0ms, [] {});
  slots.release(200ms); // one answer took 200 ms
  for (int i = 0; i < 4; ++i) {
    REQUIRE(slots.acquire(t0, 100ms, [] {}).decision == TargetSlots::Decision::granted);
  }
  CHECK(slots.acquire(t0, 100ms, [] {}).decision == TargetSlots::Decision::spill);
  CHECK(slots.view().queued == 0);
}

TEST_CASE("spill_after lets the first waiters queue while their expected wait fits the budget") {
  TargetSlots slots(limits(4));
  const auto t0 = Clock::time_point{} + 1h;
  slots.acquire(t0, 0ms, [] {});
  slots.release(200ms);
  for (int i = 0; i < 4; ++i) {
    slots.acquire(t0, 500ms, [] {});
  }
  // Waiters 1..8 expect 200 or 400 ms; the 9th would wait 600 ms, past 500 ms.
  for (int k = 1; k <= 8; ++k) {
    REQUIRE(slots.acquire(t0, 500ms, [] {}).decision == TargetSlots::Decision::queued);
  }
  CHECK(slots.acquire(t0, 500ms, [] {}).decision == TargetSlots::Decision::spill);
}

TEST_CASE(
    "before any answer the expected wait is unknown, so spill_after spills rather than queue") {
  TargetSlots slots(limits(1));
  const auto t0 = Clock::time_point{} + 1h;
  slots.acquire(t0, 0ms, [] {});
  CHECK(slots.acquire(t0, 10s, [] {}).decision == TargetSlots::Decision::spill);
  CHECK(slots.acquire(t0, 0ms, [] {}).decision == TargetSlots::Decision::queued);
}

TEST_CASE("the service time follows recent answers") {
  TargetSlots slots(limits(1));
  for (int i = 0; i < 50; ++i) {
    slots.acquire(Clock::time_point{}, 0ms, [] {});
    slots.release(1000ms);
  }
  for (int i = 0; i < 50; ++i) {
    slots.acquire(Clock::time_point{}, 0ms, [] {});
    slots.release(100ms);
  }
  REQUIRE(slots.view().service_time);
  CHECK(*slots.view().service_time < 110ms);
}

TEST_CASE("a reload that raises the limit wakes the waiters that now fit") {
  TargetSlots slots(limits(1));
  const auto t0 = Clock::time_point{} + 1h;
  slots.acquire(t0, 0ms, [] {});
  int woken = 0;
  auto a = slots.acquire(t0, 0ms, [&] { ++woken; });
  auto b = slots.acquire(t0, 0ms, [&] { ++woken; });
  slots.configure(limits(3));
  CHECK(woken == 2);
  CHECK(slots.leave(a.waiter));
  CHECK(slots.leave(b.waiter));
  CHECK(slots.view().in_use == 3);
}

TEST_CASE("a slot lease gives its slot back once, whatever ends it") {
  auto slots = std::make_shared<TargetSlots>(limits(1));
  {
    REQUIRE(slots->try_acquire());
    SlotLease lease(slots, Clock::now());
    SlotLease moved = std::move(lease);
    CHECK(slots->view().in_use == 1);
  }
  CHECK(slots->view().in_use == 0);
  REQUIRE(slots->try_acquire());
  SlotLease lease(slots, Clock::now());
  lease.release();
  lease.release();
  CHECK(slots->view().in_use == 0);
}

TEST_CASE("a request needs tools when it offers a non-empty tools list") {
  CHECK(needs_of(ApiRoute::chat_completions,
                 R"({"model":"m","messages":[],"tools":[{"type":"function"}]})") ==
        set_of({Capability::tools}));
  CHECK(needs_of(ApiRoute::chat_completions, R"({"model":"m","messages":[],"tools":[]})").empty());
  CHECK(needs_of(ApiRoute::messages, R"({"model":"m","messages":[],"tools":[{"name":"x"}]})") ==
        set_of({Capability::tools}));
}

TEST_CASE("a request needs vision when an image is among its inputs, on all three routes") {
  CHECK(needs_of(ApiRoute::chat_completions,
                 R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"},
                 {"type":"image_url","image_url":{"url":"data:image/png;base64,AA"}}]}]})") ==
        set_of({Capability::vision}));
  CHECK(needs_of(ApiRoute::messages,
                 R"({"model":"m","messages":[{"role":"user","content":[{"type":"tool_result",
                 "content":[{"type":"image","source":{}}]}]}]})") == set_of({Capability::vision}));
  CHECK(needs_of(ApiRoute::responses,
                 R"({"model":"m","input":[{"role":"user","content":[{"type":"input_image",
                 "image_url":"https://x/y.png"}]}]})") == set_of({Capability::vision}));
  CHECK(needs_of(ApiRoute::chat_completions,
                 R"({"model":"m","messages":[{"role":"user","content":"an image_url"}]})")
            .empty());
}

TEST_CASE("a request needs json_schema for structured output and reasoning when it asks to think") {
  CHECK(needs_of(ApiRoute::chat_completions,
                 R"({"model":"m","messages":[],"response_format":{"type":"json_schema"}})") ==
        set_of({Capability::json_schema}));
  CHECK(needs_of(ApiRoute::chat_completions,
                 R"({"model":"m","messages":[],"response_format":{"type":"json_object"}})")
            .empty());
  CHECK(needs_of(ApiRoute::responses,
                 R"({"model":"m","input":"x","text":{"format":{"type":"json_schema"}},
                 "reasoning":{"effort":"high"}})") ==
        set_of({Capability::json_schema, Capability::reasoning}));
  CHECK(needs_of(ApiRoute::responses, R"({"model":"m","input":"x","reasoning":{"effort":"none"}})")
            .empty());
  CHECK(needs_of(
            ApiRoute::messages,
            R"({"model":"m","messages":[],"thinking":{"type":"enabled","budget_tokens":1024}})") ==
        set_of({Capability::reasoning}));
  CHECK(needs_of(ApiRoute::chat_completions,
                 R"({"model":"m","messages":[],"reasoning_effort":"low"})") ==
        set_of({Capability::reasoning}));
  CHECK(needs_of(ApiRoute::embeddings, R"({"model":"m","input":"x","tools":[1]})").empty());
}

TEST_CASE("the router skips targets lacking a capability the request needs, and says why") {
  const auto s = testing::load_test_snapshot(R"(
custom_models:
  - id: small
    endpoint: http://127.0.0.1:9/v1
    model: s
    capabilities: [tools]
    fallback: [big]
  - id: big
    endpoint: http://127.0.0.1:9/v1
    model: b
)");
  RouteOptions options;
  options.needs = set_of({Capability::vision});
  const auto route = resolve_route(*s->registry, "custom:small", options);
  REQUIRE(route);
  REQUIRE(route->chain.size() == 1);
  CHECK(route->chain[0].label == "custom:big");
  REQUIRE(route->skipped.size() == 1);
  CHECK(route->skipped[0].label == "custom:small");
  CHECK(route->skipped[0].reason == "lacks vision");

  options.needs = set_of({Capability::tools});
  CHECK(resolve_route(*s->registry, "custom:small", options)->chain.size() == 2);
}

TEST_CASE("a request whose need no target of its chain has is a 400 naming the capability") {
  const auto s = testing::load_test_snapshot(R"(
custom_models:
  - id: small
    endpoint: http://127.0.0.1:9/v1
    model: s
    capabilities: [tools]
)");
  RouteOptions options;
  options.needs = set_of({Capability::vision, Capability::tools});
  const auto route = resolve_route(*s->registry, "custom:small", options);
  REQUIRE_FALSE(route);
  CHECK(route.error().kind == ErrorKind::invalid_request);
  CHECK(route.error().message.find("needs tools, vision") != std::string::npos);
  CHECK(route.error().message.find("custom:small") != std::string::npos);
}

TEST_CASE("capabilities and slot limits load from the config, a custom model inherits its "
          "provider's unless it sets its own") {
  const auto s = testing::load_test_snapshot(R"(
providers:
  ollama:
    type: openai
    base_url: http://127.0.0.1:11434/v1
    capabilities: [tools]
    max_concurrency: 2
custom_models:
  - id: local
    provider: ollama
    model: llama
  - id: vision
    provider: ollama
    model: llava
    capabilities: [vision, tools]
    max_concurrency: 4
    max_queue: 8
    queue_timeout: 500ms
routing:
  spill_after: 300ms
)");
  const auto* local = s->registry->custom("local");
  const auto* vision = s->registry->custom("vision");
  REQUIRE(local);
  REQUIRE(vision);
  CHECK(local->endpoint.capabilities == set_of({Capability::tools}));
  CHECK(local->endpoint.slot_limits().max_concurrency == 2);
  CHECK(vision->endpoint.capabilities == set_of({Capability::vision, Capability::tools}));
  const auto l = vision->endpoint.slot_limits();
  CHECK(l.max_concurrency == 4);
  CHECK(l.max_queue == 8);
  CHECK(l.queue_timeout == 500ms);
  CHECK(s->config->routing.spill_after == 300ms);
}

TEST_CASE("an unknown capability is a config error naming the ones there are") {
  ConfigEnvironment env;
  env.getenv = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  const auto load = load_snapshot_text(R"(
custom_models:
  - id: m
    endpoint: http://127.0.0.1:9/v1
    capabilities: [tools, telepathy]
)",
                                       "t.yaml", env);
  REQUIRE_FALSE(load.errors.empty());
  CHECK(load.errors[0].path == "custom_models[0].capabilities[1]");
  CHECK(load.errors[0].message.find("json_schema") != std::string::npos);
}
