// The response cache's pure parts (SPEC §11): canonical JSON, the key, when a request is cached,
// and the in-memory store's TTL and least-recently-used eviction, with injected time.
#include "modelmux/response_cache.h"

#include <doctest/doctest.h>
#include <simdjson.h>

using namespace modelmux;
using namespace std::chrono_literals;

namespace {

std::string canonical(std::string_view body) {
  const auto c = canonical_json(body, {"stream", "stream_options"});
  REQUIRE_MESSAGE(c, body);
  return c.value();
}

CacheUse use_of(CacheWhen when, std::string_view header, const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  REQUIRE_FALSE(parser.parse(json).get(root));
  return cache_use(when, header, root);
}

std::shared_ptr<const CachedAnswer> answer(size_t bytes, std::string target = "custom:a") {
  auto a = std::make_shared<CachedAnswer>();
  a->body = std::string(bytes, 'x');
  a->target = std::move(target);
  return a;
}

} // namespace

TEST_CASE("canonical JSON sorts keys at every depth and drops whitespace") {
  CHECK(canonical(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0})") ==
        canonical(
            "{ \"temperature\" : 0,\n \"messages\" : [ { \"content\":\"hi\", \"role\":\"user\" } ],"
            " \"model\":\"m\" }"));
  CHECK(canonical(R"({"b":{"y":1,"x":2},"a":[3,{"d":4,"c":5}]})") ==
        R"({"a":[3,{"c":5,"d":4}],"b":{"x":2,"y":1}})");
}

TEST_CASE("canonical JSON writes strings one way, whatever escapes the client used") {
  CHECK(canonical(R"({"model":"m","content":"caf\u00e9 \u0041\/"})") ==
        canonical(R"({"model":"m","content":"café A/"})"));
  CHECK(canonical(R"({"k":"a\"b\\c\n"})") == R"({"k":"a\"b\\c\n"})");
  // Keys too: "mod\u0065l" is "model".
  CHECK(canonical(R"({"mod\u0065l":"m"})") == canonical(R"({"model":"m"})"));
}

TEST_CASE("canonical JSON keeps numbers as written and leaves stream options out") {
  CHECK(canonical(R"({"temperature":0.0,"n":1})") == R"({"n":1,"temperature":0.0})");
  CHECK(canonical(R"({"temperature":0.0})") != canonical(R"({"temperature":0})"));
  CHECK(canonical(R"({"model":"m","stream":true,"stream_options":{"include_usage":true}})") ==
        canonical(R"({"model":"m"})"));
  // Only at the top level: a nested "stream" is part of the request.
  CHECK(canonical(R"({"tools":[{"stream":true}]})") == R"({"tools":[{"stream":true}]})");
  CHECK_FALSE(canonical_json("[1,2]"));
  CHECK_FALSE(canonical_json("{\"a\":"));
}

TEST_CASE("canonical JSON refuses what is not JSON rather than writing it out") {
  CHECK_FALSE(canonical_json(R"({"n":05})"));   // a leading zero
  CHECK_FALSE(canonical_json(R"({"n":1.})"));   // no digit after the point
  CHECK_FALSE(canonical_json(R"({"b":tru})"));  // a cut literal
  CHECK_FALSE(canonical_json(R"({"a":1} {})")); // more after the object
  CHECK(canonical(R"({"b":true,"c":null,"n":-1.5e3})") == R"({"b":true,"c":null,"n":-1.5e3})");
}

TEST_CASE("the cache key depends on the route, the target chain and the request, nothing else") {
  const std::string body = canonical(R"({"model":"m","messages":[]})");
  const auto key = cache_key(ApiRoute::chat_completions, {"custom:a", "openai:gpt-4o"}, body);
  CHECK(key.size() == 64);
  CHECK(key == cache_key(ApiRoute::chat_completions, {"custom:a", "openai:gpt-4o"}, body));
  CHECK(key != cache_key(ApiRoute::messages, {"custom:a", "openai:gpt-4o"}, body));
  CHECK(key != cache_key(ApiRoute::chat_completions, {"custom:a"}, body));
  CHECK(key != cache_key(ApiRoute::chat_completions, {"custom:a", "openai:gpt-4o"},
                         canonical(R"({"model":"m","messages":[1]})")));
}

TEST_CASE("deterministic caching takes temperature 0 or a seed, the header opts in and out") {
  const auto when = CacheWhen::deterministic;
  CHECK(use_of(when, "", R"({"temperature":0})") == CacheUse::use);
  CHECK(use_of(when, "", R"({"temperature":0.0})") == CacheUse::use);
  CHECK(use_of(when, "", R"({"seed":42,"temperature":0.7})") == CacheUse::use);
  CHECK(use_of(when, "", R"({"temperature":0.7})") == CacheUse::bypass);
  CHECK(use_of(when, "", R"({})") == CacheUse::bypass);
  CHECK(use_of(when, "", R"({"seed":null})") == CacheUse::bypass);
  CHECK(use_of(when, "use", R"({"temperature":0.7})") == CacheUse::use);
  CHECK(use_of(when, "bypass", R"({"temperature":0})") == CacheUse::bypass);
  CHECK(use_of(CacheWhen::always, "", R"({"temperature":1})") == CacheUse::use);
  CHECK(use_of(CacheWhen::always, "bypass", R"({})") == CacheUse::bypass);
  CHECK(use_of(CacheWhen::header, "", R"({"temperature":0})") == CacheUse::bypass);
  CHECK(use_of(CacheWhen::header, "use", R"({})") == CacheUse::use);
}

TEST_CASE("a cached answer expires after its ttl") {
  MemoryCache cache(1 << 20, 10s);
  const auto t0 = CacheStore::Clock::time_point{} + 1h;
  cache.put("k", answer(10), t0);
  CHECK(cache.get("k", t0 + 9s) != nullptr);
  CHECK(cache.get("k", t0 + 10s) == nullptr);
  CHECK(cache.stats().entries == 0);
  CHECK(cache.stats().bytes == 0);
}

TEST_CASE("the cache stays within max_size by evicting the least recently used answers") {
  const size_t one = answer(1000)->bytes() + 2 * 1 + 200; // an entry, with room for its bookkeeping
  MemoryCache cache(3 * one, 1h);
  const auto t0 = CacheStore::Clock::time_point{} + 1h;
  cache.put("a", answer(1000), t0);
  cache.put("b", answer(1000), t0);
  cache.put("c", answer(1000), t0);
  REQUIRE(cache.stats().entries == 3);
  CHECK(cache.get("a", t0) != nullptr); // a is now the most recently used
  cache.put("d", answer(1000), t0);
  CHECK(cache.stats().entries == 3);
  CHECK(cache.stats().bytes <= 3 * one);
  CHECK(cache.get("b", t0) == nullptr); // the least recently used left
  CHECK(cache.get("a", t0) != nullptr);
  CHECK(cache.get("c", t0) != nullptr);
  CHECK(cache.get("d", t0) != nullptr);
  // An answer bigger than the whole cache is not stored (and evicts nothing).
  cache.put("huge", answer(10 * one), t0);
  CHECK(cache.get("huge", t0) == nullptr);
  CHECK(cache.stats().entries == 3);
  // A smaller limit on reload evicts down to it.
  cache.configure(one, 1h);
  CHECK(cache.stats().entries == 1);
}

TEST_CASE("storing under a key again replaces the answer and its size") {
  MemoryCache cache(1 << 20, 1h);
  const auto t0 = CacheStore::Clock::time_point{} + 1h;
  cache.put("k", answer(100, "custom:a"), t0);
  const auto before = cache.stats().bytes;
  cache.put("k", answer(300, "custom:b"), t0);
  CHECK(cache.stats().entries == 1);
  CHECK(cache.stats().bytes == before + 200);
  CHECK(cache.get("k", t0)->target == "custom:b");
}
