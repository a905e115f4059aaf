// The attempt engine with the time passed in and no socket: fallback, 429 key rotation, client
// errors, first-byte deadlines, the request's deadline, hedging and its races, drain, a stream's
// idle window and truncation, and the budget's admission of steps.
#include "modelmux/attempt_engine.h"

#include <doctest/doctest.h>
#include <string>
#include <vector>

using namespace modelmux;
using namespace std::chrono_literals;

namespace {

using Clock = AttemptEngine::Clock;
using Kind = AttemptEngine::Action::Kind;

const Clock::time_point t0 = Clock::time_point(1000h);

// Labels are string literals: the engine keeps a view of each.
AttemptStep step(std::string_view label, size_t keys = 1) {
  AttemptStep s;
  s.label = label;
  s.keys = keys;
  s.first_byte_timeout = 10s;
  s.idle_timeout = 5s;
  return s;
}

AttemptEngine::Options options(bool stream = false, std::chrono::milliseconds hedge_after = 0ms,
                               Clock::time_point deadline = t0 + 60s) {
  AttemptEngine::Options o;
  o.deadline = deadline;
  o.hedge_after = hedge_after;
  o.stream = stream;
  return o;
}

// The actions pending, each as a line a reader can check: "open #1 b key 0", "record a http_5xx
// counted", "cancel #0", "serve #1", ...
std::vector<std::string> actions(AttemptEngine& e, const std::vector<AttemptStep>& steps) {
  std::vector<std::string> out;
  while (auto a = e.next_action()) {
    const std::string id = "#" + std::to_string(a->id);
    const std::string label(steps[a->step].label);
    switch (a->kind) {
    case Kind::open:
      out.push_back("open " + id + " " + label + " key " + std::to_string(a->key_try) +
                    (a->hedge ? " hedge" : "") + (a->raced ? " raced" : ""));
      break;
    case Kind::cancel:
      out.push_back("cancel " + id);
      break;
    case Kind::record:
      out.push_back("record " + label + " " + std::string(to_string(a->outcome)) +
                    (a->counted ? " counted" : "") + ": " + a->detail);
      break;
    case Kind::serve:
      out.push_back("serve " + id);
      break;
    case Kind::deliver:
      out.push_back("deliver " + id);
      break;
    case Kind::commit:
      out.push_back("commit " + id);
      break;
    case Kind::fail:
      out.push_back("fail");
      break;
    }
  }
  return out;
}

using Lines = std::vector<std::string>;

} // namespace

TEST_CASE("a failing target falls back to the next, and the answer that serves is delivered") {
  const std::vector<AttemptStep> steps{step("a"), step("b")};
  AttemptEngine e(steps, options());
  e.start(t0);
  CHECK(actions(e, steps) == Lines{"open #0 a key 0"});
  e.head(0, 502, t0 + 1ms);
  CHECK(actions(e, steps) ==
        Lines{"cancel #0", "record a http_5xx counted: HTTP 502", "open #1 b key 0"});
  e.head(1, 200, t0 + 2ms);
  CHECK(actions(e, steps) == Lines{"serve #1"});
  CHECK_FALSE(e.over());
  e.answered(1, Outcome::ok, "HTTP 200", t0 + 3ms);
  CHECK(actions(e, steps) == Lines{"record b ok counted: HTTP 200", "deliver #1"});
  CHECK(e.over());
}

TEST_CASE("when every target fails the request fails, after one attempt at each") {
  const std::vector<AttemptStep> steps{step("a"), step("b")};
  AttemptEngine e(steps, options());
  e.start(t0);
  e.failed(0, Outcome::connect_error, "connection refused", t0);
  e.failed(1, Outcome::reset, "reset", t0);
  CHECK(actions(e, steps) ==
        Lines{"open #0 a key 0", "cancel #0", "record a connect_error counted: connection refused",
              "open #1 b key 0", "cancel #1", "record b reset counted: reset", "fail"});
  CHECK(e.over());
}

TEST_CASE("a 429 moves to the target's next key before it counts, and on every key counts once") {
  const std::vector<AttemptStep> steps{step("a", 3), step("b")};
  AttemptEngine e(steps, options());
  e.start(t0);
  e.head(0, 429, t0);
  e.head(1, 429, t0);
  CHECK(actions(e, steps) ==
        Lines{"open #0 a key 0", "cancel #0", "open #1 a key 1", "cancel #1", "open #2 a key 2"});
  e.head(2, 429, t0);
  CHECK(actions(e, steps) == Lines{"cancel #2",
                                   "record a http_429 counted: HTTP 429 on every key, cooling down",
                                   "open #3 b key 0"});
}

TEST_CASE("a 429 on the second key serves from the third without an attempt on the list") {
  const std::vector<AttemptStep> steps{step("a", 3)};
  AttemptEngine e(steps, options());
  e.start(t0);
  e.head(0, 429, t0);
  e.head(1, 200, t0);
  e.answered(1, Outcome::ok, "HTTP 200", t0);
  CHECK(actions(e, steps) == Lines{"open #0 a key 0", "cancel #0", "open #1 a key 1", "serve #1",
                                   "record a ok counted: HTTP 200", "deliver #1"});
}

TEST_CASE("a target whose every key is cooling down counts as a 429 and the chain moves on") {
  const std::vector<AttemptStep> steps{step("a"), step("b")};
  AttemptEngine e(steps, options());
  e.start(t0);
  e.not_sent(0, AttemptEngine::NotSent::keys_cooling, t0);
  CHECK(actions(e, steps) == Lines{"open #0 a key 0",
                                   "record a http_429 counted: HTTP 429, cooling down",
                                   "open #1 b key 0"});
}

TEST_CASE("a busy or untranslatable target is skipped without an attempt") {
  const std::vector<AttemptStep> steps{step("a"), step("b"), step("c")};
  AttemptEngine e(steps, options());
  e.start(t0);
  e.not_sent(0, AttemptEngine::NotSent::busy, t0);
  e.not_sent(1, AttemptEngine::NotSent::untranslatable, t0);
  CHECK(actions(e, steps) == Lines{"open #0 a key 0", "open #1 b key 0", "open #2 c key 0"});
}

TEST_CASE("a client error is the answer: served as it is, never fallen back from") {
  const std::vector<AttemptStep> steps{step("a"), step("b")};
  for (const bool stream : {false, true}) {
    AttemptEngine e(steps, options(stream));
    e.start(t0);
    e.head(0, 400, t0);
    e.answered(0, Outcome::http_4xx, "HTTP 400", t0);
    CHECK(actions(e, steps) == Lines{"open #0 a key 0", "serve #0",
                                     "record a http_4xx counted: HTTP 400", "deliver #0"});
    CHECK(e.over());
  }
}

TEST_CASE("an answer that breaks off while it is read moves on to the next target") {
  const std::vector<AttemptStep> steps{step("a"), step("b")};
  AttemptEngine e(steps, options());
  e.start(t0);
  e.head(0, 200, t0);
  e.answered(0, Outcome::malformed, "not JSON", t0);
  CHECK(actions(e, steps) == Lines{"open #0 a key 0", "serve #0",
                                   "record a malformed counted: not JSON", "cancel #0",
                                   "open #1 b key 0"});
  CHECK_FALSE(e.over());
}

TEST_CASE("a first byte overdue times the attempt out at its deadline, by the clock given") {
  const std::vector<AttemptStep> steps{step("a"), step("b")};
  AttemptEngine e(steps, options());
  e.start(t0);
  actions(e, steps);
  REQUIRE(e.next_timer() == t0 + 10s);
  e.tick(t0 + 9999ms);
  CHECK(actions(e, steps).empty());
  e.tick(t0 + 10s);
  CHECK(actions(e, steps) ==
        Lines{"cancel #0", "record a timeout counted: no first byte in time", "open #1 b key 0"});
  CHECK(e.next_timer() == t0 + 20s);
  // What the transport says of the cancelled one afterwards changes nothing.
  e.failed(0, Outcome::reset, "cancelled", t0 + 10s);
  e.head(0, 200, t0 + 10s);
  CHECK(actions(e, steps).empty());
}

TEST_CASE("no attempt starts once the request's deadline has passed, and none outlives it") {
  const std::vector<AttemptStep> steps{step("a"), step("b")};
  AttemptEngine e(steps, options(false, 0ms, t0 + 3s));
  e.start(t0);
  CHECK(e.next_timer() == t0 + 3s); // the first byte is due by the request's deadline
  e.failed(0, Outcome::connect_error, "refused", t0 + 3s);
  CHECK(actions(e, steps) ==
        Lines{"open #0 a key 0", "cancel #0", "record a connect_error counted: refused", "fail"});
}

TEST_CASE("a hedge races the next target once the first is slow, the first to answer wins") {
  const std::vector<AttemptStep> steps{step("slow"), step("fast"), step("spare")};
  AttemptEngine e(steps, options(false, 50ms));
  e.start(t0);
  CHECK(actions(e, steps) == Lines{"open #0 slow key 0 raced"});
  CHECK(e.next_timer() == t0 + 50ms);
  e.tick(t0 + 49ms);
  CHECK(actions(e, steps).empty());
  e.tick(t0 + 50ms);
  CHECK(actions(e, steps) == Lines{"open #1 fast key 0 hedge raced"});
  e.head(1, 200, t0 + 60ms);
  CHECK(actions(e, steps) ==
        Lines{"cancel #0", "record slow timeout: raced and lost to fast", "serve #1"});
  e.answered(1, Outcome::ok, "HTTP 200", t0 + 61ms);
  CHECK(actions(e, steps) == Lines{"record fast ok counted: HTTP 200", "deliver #1"});
}

TEST_CASE("no hedge starts when the first target answers within hedge_after") {
  const std::vector<AttemptStep> steps{step("quick"), step("spare")};
  AttemptEngine e(steps, options(false, 50ms));
  e.start(t0);
  e.head(0, 200, t0 + 10ms);
  e.tick(t0 + 50ms);
  CHECK(actions(e, steps) == Lines{"open #0 quick key 0 raced", "serve #0"});
  CHECK_FALSE(e.next_timer());
}

TEST_CASE("a racer that fails leaves the race to the other, and the chain resumes after both") {
  const std::vector<AttemptStep> steps{step("slow"), step("failing"), step("last")};
  AttemptEngine e(steps, options(false, 50ms));
  e.start(t0);
  e.tick(t0 + 50ms);
  e.head(1, 503, t0 + 60ms);
  CHECK(actions(e, steps) == Lines{"open #0 slow key 0 raced", "open #1 failing key 0 hedge raced",
                                   "cancel #1", "record failing http_5xx counted: HTTP 503"});
  e.failed(0, Outcome::reset, "reset", t0 + 70ms);
  CHECK(actions(e, steps) ==
        Lines{"cancel #0", "record slow reset counted: reset", "open #2 last key 0"});
}

TEST_CASE("a hedge with no slot free leaves its target in the chain for later") {
  const std::vector<AttemptStep> steps{step("slow"), step("busy")};
  AttemptEngine e(steps, options(false, 50ms));
  e.start(t0);
  e.tick(t0 + 50ms);
  e.not_sent(1, AttemptEngine::NotSent::busy, t0 + 50ms);
  e.failed(0, Outcome::timeout, "no first byte", t0 + 10s);
  CHECK(actions(e, steps) == Lines{"open #0 slow key 0 raced", "open #1 busy key 0 hedge raced",
                                   "cancel #0", "record slow timeout counted: no first byte",
                                   "open #2 busy key 0"});
}

TEST_CASE("a racer gets one key: its 429 counts as its failure") {
  const std::vector<AttemptStep> steps{step("slow", 2), step("other", 2)};
  AttemptEngine e(steps, options(false, 50ms));
  e.start(t0);
  e.tick(t0 + 50ms);
  e.head(1, 429, t0 + 51ms);
  CHECK(actions(e, steps) == Lines{"open #0 slow key 0 raced", "open #1 other key 0 hedge raced",
                                   "cancel #1",
                                   "record other http_429 counted: HTTP 429, cooling down"});
}

TEST_CASE("a mock or a target next to one is never hedged") {
  std::vector<AttemptStep> steps{step("a"), step("mock")};
  steps[1].hedgeable = false;
  AttemptEngine e(steps, options(false, 50ms));
  e.start(t0);
  CHECK(actions(e, steps) == Lines{"open #0 a key 0"});
  CHECK(e.next_timer() == t0 + 10s);
}

TEST_CASE("a draining daemon starts no hedge but still falls back") {
  const std::vector<AttemptStep> steps{step("slow"), step("next")};
  AttemptEngine e(steps, options(false, 50ms));
  e.start(t0);
  e.drain();
  e.tick(t0 + 50ms);
  CHECK(actions(e, steps) == Lines{"open #0 slow key 0 raced"});
  e.failed(0, Outcome::reset, "reset", t0 + 60ms);
  CHECK(actions(e, steps) ==
        Lines{"cancel #0", "record slow reset counted: reset", "open #1 next key 0"});
}

TEST_CASE("a transport that served the attempt itself ends the request, one that did not goes on") {
  const std::vector<AttemptStep> steps{step("mock-a"), step("mock-b")};
  AttemptEngine e(steps, options());
  e.start(t0);
  e.concluded(0, false, t0);
  e.concluded(1, true, t0);
  CHECK(actions(e, steps) == Lines{"open #0 mock-a key 0", "open #1 mock-b key 0"});
  CHECK(e.over());
}

TEST_CASE("a stream wins by its first output, not by its head, and then is watched for silence") {
  const std::vector<AttemptStep> steps{step("a"), step("b")};
  AttemptEngine e(steps, options(true, 0ms, t0 + 30s));
  e.start(t0);
  e.head(0, 200, t0 + 1ms);
  CHECK(actions(e, steps) == Lines{"open #0 a key 0"}); // a head alone decides nothing
  e.first_output(0, t0 + 2ms);
  CHECK(actions(e, steps) == Lines{"record a ok: HTTP 200", "commit #0"});
  CHECK(e.committed());
  CHECK(e.stream_read_deadline() == t0 + 2ms + 5s);
  e.stream_bytes(t0 + 4s);
  CHECK(e.stream_read_deadline() == t0 + 9s);
  CHECK_FALSE(e.stream_timed_out(t0 + 8s));
  CHECK(e.stream_timed_out(t0 + 9s) == Outcome::idle);
  e.stream_bytes(t0 + 28s);
  CHECK(e.stream_read_deadline() == t0 + 30s); // the request's deadline comes first
  CHECK(e.stream_timed_out(t0 + 30s) == Outcome::timeout);
}

TEST_CASE("a stream that ends before its first output is truncated and falls back") {
  const std::vector<AttemptStep> steps{step("a"), step("b")};
  AttemptEngine e(steps, options(true));
  e.start(t0);
  e.head(0, 200, t0);
  e.failed(0, AttemptEngine::stream_outcome(false, std::nullopt), "ended early", t0);
  CHECK(actions(e, steps) == Lines{"open #0 a key 0", "cancel #0",
                                   "record a truncated counted: ended early", "open #1 b key 0"});
}

TEST_CASE("a committed stream settles as ok only when complete") {
  CHECK(AttemptEngine::stream_outcome(true, std::nullopt) == Outcome::ok);
  CHECK(AttemptEngine::stream_outcome(false, std::nullopt) == Outcome::truncated);
  CHECK(AttemptEngine::stream_outcome(false, Outcome::idle) == Outcome::idle);
  CHECK(AttemptEngine::stream_outcome(true, Outcome::malformed) == Outcome::malformed);
}

TEST_CASE("over budget only free targets are admitted, and an untranslatable one is named") {
  const std::vector<StepTraits> traits{{.priced = true, .compatible = true},
                                       {.priced = false, .compatible = false},
                                       {.priced = false, .compatible = true}};
  const auto within = admit_steps(traits, false);
  CHECK(within.steps == std::vector<size_t>{0, 2});
  CHECK_FALSE(within.priced_skipped);
  CHECK(within.first_incompatible == 1);
  const auto over = admit_steps(traits, true);
  CHECK(over.steps == std::vector<size_t>{2});
  CHECK(over.priced_skipped);
}

TEST_CASE("the time to first byte and the hedge run from when the request is sent, not from a "
          "wait for a slot") {
  const std::vector<AttemptStep> steps{step("queued"), step("spare")};
  AttemptEngine e(steps, options(false, 50ms));
  e.start(t0);
  actions(e, steps);
  CHECK(e.sent(0, t0 + 2s) == t0 + 12s); // two seconds in the target's queue
  CHECK(e.next_timer() == t0 + 2s + 50ms);
  e.tick(t0 + 1s + 50ms);
  CHECK(actions(e, steps).empty());
  e.tick(t0 + 2s + 50ms);
  CHECK(actions(e, steps) == Lines{"open #1 spare key 0 hedge raced"});
  CHECK(e.first_byte_deadline(0) == t0 + 12s);
}
