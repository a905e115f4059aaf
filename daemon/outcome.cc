// Attempt outcomes.
#include "modelmux/outcome.h"

namespace modelmux {

std::string_view to_string(Outcome outcome) {
  switch (outcome) {
  case Outcome::ok:
    return "ok";
  case Outcome::connect_error:
    return "connect_error";
  case Outcome::timeout:
    return "timeout";
  case Outcome::reset:
    return "reset";
  case Outcome::http_4xx:
    return "http_4xx";
  case Outcome::http_429:
    return "http_429";
  case Outcome::http_5xx:
    return "http_5xx";
  case Outcome::idle:
    return "idle";
  case Outcome::malformed:
    return "malformed";
  case Outcome::truncated:
    return "truncated";
  }
  return "ok";
}

Outcome outcome_from(int status) {
  if (status == 429) {
    return Outcome::http_429;
  }
  if (status >= 500) {
    return Outcome::http_5xx; // Anthropic's 529 "overloaded" included
  }
  if (status >= 400) {
    return Outcome::http_4xx;
  }
  if (status >= 200 && status < 300) {
    return Outcome::ok;
  }
  // A redirect or an informational status is not an answer modelmux can relay.
  return Outcome::http_5xx;
}

} // namespace modelmux
