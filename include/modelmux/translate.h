// Translation between the OpenAI chat completions protocol and the Anthropic messages protocol:
// requests, whole answers and error bodies, in both directions (the streams: stream_relay.h).
// Implemented in daemon/translation/chat_messages_*.cc and errors.cc. Pure functions and
// objects with no I/O; the proxy decides when to use them (a client of one protocol, a target of
// the other). What carries over and what is refused is listed in the README.
#pragma once

#include "modelmux/config.h"
#include "modelmux/json.h"
#include "modelmux/protocol.h"
#include "modelmux/result.h"
#include "modelmux/translation/vocabulary.h"

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

} // namespace modelmux
