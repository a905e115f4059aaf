// The shared vocabulary: usage as each protocol reports it, stop reasons, thinking budgets.
#include "modelmux/translation/vocabulary.h"

#include "translation/dom.h"

#include <algorithm>

namespace modelmux {

using namespace dom;

// ---- usage ----

// A count an upstream reports, kept within what one request can use: never negative, and at
// most a billion, so sums and costs (tokens x micro-dollars per 1M) stay far inside 64 bits
// whatever a broken or hostile upstream sends.
int64_t sane_count(int64_t n) {
  constexpr int64_t k_max_tokens = 1'000'000'000;
  return std::clamp<int64_t>(n, 0, k_max_tokens);
}

void read_openai_usage(const object& usage, TokenUsage& out) {
  const int64_t prompt = int_of(usage, "prompt_tokens", -1);
  const int64_t completion = int_of(usage, "completion_tokens", -1);
  if (prompt < 0 && completion < 0) {
    return;
  }
  int64_t cached = 0;
  if (const auto details = object_of(usage, "prompt_tokens_details")) {
    cached = int_of(*details, "cached_tokens");
  }
  out.cache_read_tokens = sane_count(cached);
  out.cache_write_tokens = 0;
  out.input_tokens = std::max<int64_t>(0, sane_count(prompt) - out.cache_read_tokens);
  out.output_tokens = sane_count(completion);
  out.reported = true;
}

void read_anthropic_usage(const object& usage, TokenUsage& out) {
  bool any = false;
  auto take = [&](std::string_view key, int64_t& into) {
    int64_t n = 0;
    if (!usage[key].get(n)) {
      into = sane_count(n);
      any = true;
    }
  };
  take("input_tokens", out.input_tokens);
  take("output_tokens", out.output_tokens);
  take("cache_read_input_tokens", out.cache_read_tokens);
  take("cache_creation_input_tokens", out.cache_write_tokens);
  out.reported = out.reported || any;
}

void write_openai_usage(JsonWriter& w, const TokenUsage& usage) {
  w.begin_object()
      .field("prompt_tokens", usage.prompt_tokens())
      .field("completion_tokens", usage.output_tokens)
      .field("total_tokens", usage.prompt_tokens() + usage.output_tokens)
      .key("prompt_tokens_details")
      .begin_object()
      .field("cached_tokens", usage.cache_read_tokens)
      .end_object()
      .end_object();
}

void write_anthropic_usage(JsonWriter& w, const TokenUsage& usage) {
  w.begin_object()
      .field("input_tokens", usage.input_tokens)
      .field("output_tokens", usage.output_tokens)
      .field("cache_creation_input_tokens", usage.cache_write_tokens)
      .field("cache_read_input_tokens", usage.cache_read_tokens)
      .end_object();
}

void read_responses_usage(const object& usage, TokenUsage& out) {
  const int64_t input = int_of(usage, "input_tokens", -1);
  const int64_t output = int_of(usage, "output_tokens", -1);
  if (input < 0 && output < 0) {
    return;
  }
  int64_t cached = 0;
  if (const auto details = object_of(usage, "input_tokens_details")) {
    cached = int_of(*details, "cached_tokens");
  }
  out.cache_read_tokens = sane_count(cached);
  out.cache_write_tokens = 0;
  out.input_tokens = std::max<int64_t>(0, sane_count(input) - out.cache_read_tokens);
  out.output_tokens = sane_count(output);
  out.reported = true;
}

void write_responses_usage(JsonWriter& w, const TokenUsage& usage) {
  w.begin_object()
      .field("input_tokens", usage.prompt_tokens())
      .key("input_tokens_details")
      .begin_object()
      .field("cached_tokens", usage.cache_read_tokens)
      .end_object()
      .field("output_tokens", usage.output_tokens)
      .key("output_tokens_details")
      .begin_object()
      .field("reasoning_tokens", 0)
      .end_object()
      .field("total_tokens", usage.prompt_tokens() + usage.output_tokens)
      .end_object();
}

std::optional<TokenUsage> usage_of_answer(Protocol protocol, std::string_view body) {
  object root;
  object usage;
  if (parse_answer(body, root) || root["usage"].get(usage)) {
    return std::nullopt;
  }
  TokenUsage u;
  if (protocol == Protocol::anthropic) {
    read_anthropic_usage(usage, u);
  } else if (protocol == Protocol::responses) {
    read_responses_usage(usage, u);
  } else {
    read_openai_usage(usage, u);
  }
  return u.reported ? std::optional(u) : std::nullopt;
}

// ---- why an answer stopped ----

std::string_view finish_reason_for(std::string_view stop_reason) {
  if (stop_reason == "max_tokens" || stop_reason == "model_context_window_exceeded") {
    return "length";
  }
  if (stop_reason == "tool_use") {
    return "tool_calls";
  }
  if (stop_reason == "refusal") {
    return "content_filter";
  }
  return "stop"; // end_turn, stop_sequence, pause_turn
}

std::string_view stop_reason_for(std::string_view finish_reason) {
  if (finish_reason == "length") {
    return "max_tokens";
  }
  if (finish_reason == "tool_calls" || finish_reason == "function_call") {
    return "tool_use";
  }
  if (finish_reason == "content_filter") {
    return "refusal";
  }
  return "end_turn";
}

std::pair<std::string_view, std::string_view> responses_status_for(std::string_view finish_reason) {
  if (finish_reason == "length") {
    return {"incomplete", "max_output_tokens"};
  }
  if (finish_reason == "content_filter") {
    return {"incomplete", "content_filter"};
  }
  return {"completed", {}};
}

// ---- reasoning effort <-> thinking budget ----

int64_t thinking_budget_for(std::string_view effort) {
  if (effort == "none") {
    return 0;
  }
  if (effort == "minimal" || effort == "low") {
    return 1024;
  }
  if (effort == "medium") {
    return 4096;
  }
  if (effort == "high" || effort == "xhigh") {
    return 16384;
  }
  return -1;
}

std::string_view effort_for_thinking_budget(int64_t budget) {
  return budget < 4096 ? "low" : budget < 16384 ? "medium" : "high";
}

} // namespace modelmux
