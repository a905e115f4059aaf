// How one attempt at a target ended: the vocabulary health, metrics, the usage log and the
// proxy share. A leaf: it names no network library.
#pragma once

#include <string_view>

namespace modelmux {

enum class Outcome {
  ok,
  connect_error,
  timeout,
  reset,
  http_4xx,
  http_429,
  http_5xx,
  idle,
  malformed,
  truncated,
};

std::string_view to_string(Outcome outcome);
// The outcome an upstream's HTTP status stands for.
Outcome outcome_from(int status);

} // namespace modelmux
