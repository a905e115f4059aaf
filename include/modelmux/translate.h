// Translation between the OpenAI chat completions protocol and the Anthropic messages protocol:
// requests, whole answers, error bodies, and streams, in both directions. Pure functions and
// objects with no I/O; the proxy decides when to use them (a client of one protocol, a target of
// the other). What carries over and what is refused is listed in the README.
#pragma once

#include "modelmux/config.h"
#include "modelmux/json.h"
#include "modelmux/protocol.h"
#include "modelmux/result.h"

#include <cstdint>
#include <optional>
#include <simdjson.h>
#include <string>
#include <string_view>
#include <vector>

namespace modelmux {

// Anthropic requires max_tokens; an OpenAI request without one gets the target's params value,
// else this.
inline constexpr int64_t k_default_anthropic_max_tokens = 4096;

// An OpenAI chat completions request (validated root) as an Anthropic messages request for
// upstream_model. defaults are the target's params, written where the request leaves them out.
// A field with no Anthropic equivalent (n > 1, logprobs, a JSON response format, ...) is a 400
// naming it.
// max_output_tokens, when set, clamps the request's token limit (the target's own limit).
Result<std::string> openai_request_to_anthropic(const simdjson::dom::element& request,
                                                std::string_view upstream_model,
                                                const std::vector<Param>& defaults,
                                                std::optional<int64_t> max_output_tokens = {});

// An Anthropic messages request as an OpenAI chat completions request. A stream always asks for
// stream_options.include_usage so the answer can carry exact token counts.
Result<std::string> anthropic_request_to_openai(const simdjson::dom::element& request,
                                                std::string_view upstream_model,
                                                const std::vector<Param>& defaults,
                                                std::optional<int64_t> max_output_tokens = {});

// Token counts of an answer, kept the way Anthropic reports them: input_tokens excludes the
// cached ones, which OpenAI folds into prompt_tokens. Converting never counts a token twice.
struct TokenUsage {
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  int64_t cache_read_tokens = 0;
  int64_t cache_write_tokens = 0;
  bool reported = false; // false: the upstream sent none

  int64_t prompt_tokens() const { return input_tokens + cache_read_tokens + cache_write_tokens; }
};

// Whole answers. An answer that is not what its protocol promises (not JSON, no choices, tool
// arguments that are not a JSON object) is an ErrorKind::upstream error: the attempt failed.
// usage, when given, receives the tokens the answer reported, so they need no second parse.
Result<std::string> anthropic_response_to_openai(std::string_view body, int64_t created,
                                                 TokenUsage* usage = nullptr);
Result<std::string> openai_response_to_anthropic(std::string_view body,
                                                 TokenUsage* usage = nullptr);

// An upstream error body (any shape, even not JSON) in the client's protocol. The status stays
// the upstream's; the error type is the one the client's protocol uses for that status.
std::string translate_error_body(std::string_view body, int status, Protocol client);

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

// The usage a whole answer in protocol reports; nullopt when it reports none.
std::optional<TokenUsage> usage_of_answer(Protocol protocol, std::string_view body);

// finish_reason <-> stop_reason: stop <-> end_turn (and stop_sequence), length <-> max_tokens,
// tool_calls <-> tool_use, content_filter <-> refusal.
std::string_view finish_reason_for(std::string_view anthropic_stop_reason);
std::string_view stop_reason_for(std::string_view openai_finish_reason);

} // namespace modelmux
