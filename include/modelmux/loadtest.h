// `modelmux loadtest` (SPEC §1): N requests at concurrency C through a running daemon, then
// what a user deciding whether to move traffic asks — did everything succeed, how fast was it
// at the median and the tail, how many tokens a second, how often did modelmux fall back or
// spill, what did it cost. The figures are computed here from per-request results (pure, unit
// tested); the requests are sent by run_loadtest in cli.cc's fashion, with cpp-httplib.
#pragma once

#include "modelmux/cli.h"

#include <array>
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace modelmux {

// One request's end, as the client saw it.
struct LoadtestResult {
  int status = 0;        // 0: no HTTP answer (connection refused, reset, timed out)
  bool complete = false; // a 2xx whose body (or stream, to its terminal event) was whole
  std::string error;     // why not, when not
  double latency_ms = 0;
  double ttfb_ms = 0; // to the first byte of the body (a stream's first event)
  int64_t output_tokens = 0;
  std::string target;   // x-modelmux-target
  int attempts = 0;     // x-modelmux-attempts
  bool spilled = false; // x-modelmux-skipped named a busy target
};

struct LoadtestPlan {
  std::string url; // the daemon, http://host:port
  std::string model;
  std::string route = "chat"; // chat | messages | responses
  bool stream = false;
  int requests = 100;
  int concurrency = 10;
};

struct LoadtestSummary {
  LoadtestPlan plan;
  int succeeded = 0;
  int failed = 0;
  std::map<std::string, int> statuses; // "200", "503", "error" (no HTTP answer)
  std::map<std::string, int> served_by;
  std::array<double, 3> latency_ms{}; // p50, p95, p99 of every request
  std::array<double, 3> ttfb_ms{};
  int64_t output_tokens = 0;
  int fallbacks = 0; // requests that took more than one attempt
  int spills = 0;    // requests that skipped a busy target
  double wall_seconds = 0;
  std::optional<double> cost_usd;        // the daemon's own accounting, when it could be read
  std::vector<std::string> first_errors; // a few, for the user to see why
};

LoadtestSummary summarize(const LoadtestPlan& plan, const std::vector<LoadtestResult>& results,
                          double wall_seconds);
std::string loadtest_text(const LoadtestSummary& s);
std::string loadtest_json(const LoadtestSummary& s);

// The request body for plan's route ("" for an unknown route).
std::string loadtest_body(const LoadtestPlan& plan, int index);
// "/v1/chat/completions" and so on; "" for an unknown route.
std::string loadtest_path(std::string_view route);

int run_loadtest(const CliArgs& args, std::ostream& out, std::ostream& err);

} // namespace modelmux
