// Usage records: cost to the micro-dollar, the JSON line and reading it back, sums, and the
// usage log's writer and reader.
#include "modelmux/usage_log.h"

#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>

using namespace modelmux;

namespace {

UsageRecord record(std::string id, std::string target, int64_t in, int64_t out, int64_t cost) {
  UsageRecord r;
  r.ts_ms = 1763737445123;
  r.request_id = std::move(id);
  r.route = "/v1/chat/completions";
  r.model = "code";
  r.target = std::move(target);
  r.attempts = 1;
  r.status = 200;
  r.input_tokens = in;
  r.output_tokens = out;
  r.cost_micros = cost;
  r.reference_cost_micros = cost * 10;
  return r;
}

std::string temp_dir(const char* name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("modelmux-" + std::string(name) + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir.string();
}

} // namespace

TEST_CASE("cost is priced per token type and rounded to the micro-dollar once per request") {
  Price gpt4o{2500000, 10000000, 1250000, std::nullopt}; // $2.50 / $10.00, cached $1.25 per 1M
  TokenUsage u;
  u.input_tokens = 1000; // not cached
  u.cache_read_tokens = 2000;
  u.output_tokens = 500;
  // 1000 x 2.5 + 2000 x 1.25 + 500 x 10 = 2500 + 2500 + 5000 = 10000 micro-dollars
  CHECK(cost_micros(gpt4o, u) == 10000);
  Price no_cache_price{3000000, 15000000, std::nullopt, std::nullopt};
  u.cache_write_tokens = 100; // priced as input without a cache_write price
  CHECK(cost_micros(no_cache_price, u) == 3000 + 6000 + 300 + 7500);
  TokenUsage one;
  one.input_tokens = 1;
  CHECK(cost_micros(Price{2500000, 0, {}, {}}, one) == 3); // 2.5 rounds half up
  CHECK(cost_micros(Price{400000, 0, {}, {}}, one) == 0);  // 0.4 rounds down
}

TEST_CASE("timestamps are written as RFC 3339 UTC with milliseconds, leap days and all") {
  CHECK(rfc3339_utc(0) == "1970-01-01T00:00:00.000Z");
  CHECK(rfc3339_utc(951782400000) == "2000-02-29T00:00:00.000Z");
  CHECK(rfc3339_utc(1709164800999) == "2024-02-29T00:00:00.999Z");
  CHECK(rfc3339_utc(1796384147123) == "2026-12-04T11:35:47.123Z");
  CHECK(rfc3339_utc(253402300799999) == "9999-12-31T23:59:59.999Z");
}

TEST_CASE("a usage record survives its JSON line exactly, money included") {
  auto r = record("req-1", "custom:local", 1200, 300, 1234567);
  r.cached_tokens = 1000;
  r.cache_write_tokens = 50;
  r.estimated = true;
  r.stream = true;
  r.latency_ms = 812.5;
  r.ttft_ms = 120.25;
  r.failed_targets = {"openai", "custom:other"};
  const auto line = to_json_line(r);
  CHECK(line.back() == '\n');
  CHECK(line.find(R"("ts":"2025-11-21T15:04:05.123Z")") != std::string::npos);
  CHECK(line.find(R"("cost_usd":1.234567,"reference_cost_usd":12.345670)") != std::string::npos);
  const auto back = parse_usage_line(line);
  REQUIRE(back);
  CHECK(back->ts_ms == r.ts_ms);
  CHECK(back->request_id == "req-1");
  CHECK(back->target == "custom:local");
  CHECK(back->input_tokens == 1200);
  CHECK(back->cached_tokens == 1000);
  CHECK(back->cache_write_tokens == 50);
  CHECK(back->estimated);
  CHECK(back->stream);
  CHECK(back->cost_micros == 1234567);
  CHECK(back->reference_cost_micros == 12345670);
  CHECK(back->latency_ms == 812.5);
  CHECK(back->failed_targets == r.failed_targets);
  CHECK_FALSE(parse_usage_line(line.substr(0, line.size() / 2)));
  CHECK_FALSE(parse_usage_line("not json\n"));
}

TEST_CASE("totals count requests, failures and fallbacks, and savings are reference minus cost") {
  UsageTotals t;
  t.add(record("a", "custom:x", 10, 5, 100));
  auto failed = record("b", "", 0, 0, 0);
  failed.status = 502;
  failed.failed_targets = {"custom:x", "openai"};
  t.add(failed);
  CHECK(t.requests == 2);
  CHECK(t.succeeded == 1);
  CHECK(t.failed == 1);
  CHECK(t.fallbacks == 1); // from custom:x to openai; openai was the last
  CHECK(t.cost_micros == 100);
  CHECK(t.savings_micros() == 900);
  CHECK(usd_from_micros(1250000) == "1.250000");
  CHECK(usd_from_micros(-5) == "-0.000005");
}

TEST_CASE("the usage log writes every appended record and reads them back after a restart") {
  const auto dir = temp_dir("usage-log");
  const auto path = dir + "/usage.jsonl";
  Log log([](std::string_view) {});
  int seen_by_callback = 0;
  {
    auto opened = UsageLog::open(path, log, [&](const UsageRecord&) { ++seen_by_callback; });
    REQUIRE(opened);
    auto& usage = *opened.value();
    for (int i = 0; i < 1000; ++i) {
      usage.append(record("r" + std::to_string(i), "custom:x", i, 1, i));
    }
    usage.flush();
    CHECK(seen_by_callback == 1000);
    usage.append(record("last", "custom:x", 1, 1, 1)); // written by the clean shutdown
  }
  // A crash mid-write leaves a torn last line; reading skips it.
  std::ofstream(path, std::ios::app) << R"({"ts":"2025-11-21T15:04:05.123Z","request_id":"to)";
  int64_t cost = 0;
  std::vector<std::string> ids;
  const auto read = read_usage_log(path, [&](const UsageRecord& r) {
    cost += r.cost_micros;
    ids.push_back(r.request_id);
  });
  CHECK(read.records == 1001);
  CHECK(read.skipped == 1);
  CHECK(ids.front() == "r0");
  CHECK(ids.back() == "last");
  CHECK(cost == 999 * 1000 / 2 + 1);
  {
    auto reopened = UsageLog::open(path, log);
    REQUIRE(reopened);
    reopened.value()->append(record("after-restart", "custom:x", 1, 1, 1));
  }
  ids.clear();
  const auto again =
      read_usage_log(path, [&](const UsageRecord& r) { ids.push_back(r.request_id); });
  CHECK(again.records == 1002);
  CHECK(again.skipped == 1);
  CHECK(ids.back() == "after-restart");
  std::filesystem::remove_all(dir);
}
