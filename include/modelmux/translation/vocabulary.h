// The vocabulary the three protocols share, in one place: token usage as each reports it, why
// an answer stopped, and how much a model may think. Every translation pair reads and writes
// these through the functions here, so a count or a reason means the same on every route.
#pragma once

#include "modelmux/json.h"
#include "modelmux/registry.h"
#include "modelmux/token_usage.h"

#include <cstdint>
#include <optional>
#include <simdjson.h>
#include <string_view>
#include <utility>

namespace modelmux {

// Reads {"prompt_tokens", "completion_tokens", "prompt_tokens_details": {"cached_tokens"}}.
void read_openai_usage(const simdjson::dom::object& usage, TokenUsage& out);
// Reads {"input_tokens", "output_tokens", "cache_read_input_tokens",
// "cache_creation_input_tokens"}; a field that is absent keeps its old value (message_delta
// repeats only what changed).
void read_anthropic_usage(const simdjson::dom::object& usage, TokenUsage& out);
void write_openai_usage(JsonWriter& w, const TokenUsage& usage);
void write_anthropic_usage(JsonWriter& w, const TokenUsage& usage);

// A token count an upstream reported, kept between 0 and a billion whatever it sent.
int64_t sane_count(int64_t n);

// Responses: {"input_tokens" (cached included), "input_tokens_details": {"cached_tokens"},
// "output_tokens", "output_tokens_details": {"reasoning_tokens"}, "total_tokens"}.
void read_responses_usage(const simdjson::dom::object& usage, TokenUsage& out);
void write_responses_usage(JsonWriter& w, const TokenUsage& usage);

// The usage a whole answer in protocol reports; nullopt when it reports none.
std::optional<TokenUsage> usage_of_answer(Protocol protocol, std::string_view body);

// finish_reason <-> stop_reason: stop <-> end_turn (and stop_sequence), length <-> max_tokens,
// tool_calls <-> tool_use, content_filter <-> refusal.
std::string_view finish_reason_for(std::string_view anthropic_stop_reason);
std::string_view stop_reason_for(std::string_view openai_finish_reason);

// finish_reason -> Responses (status, incomplete reason): length is incomplete for
// max_output_tokens, content_filter incomplete for content_filter; everything else completed.
std::pair<std::string_view, std::string_view> responses_status_for(std::string_view finish_reason);

// OpenAI's reasoning_effort as an Anthropic thinking budget in tokens (minimal and low 1024,
// medium 4096, high 16384): 0 for none, -1 for a value that is not an effort.
int64_t thinking_budget_for(std::string_view effort);
// A thinking budget as a reasoning_effort: below 4096 low, below 16384 medium, else high.
std::string_view effort_for_thinking_budget(int64_t budget);

} // namespace modelmux
