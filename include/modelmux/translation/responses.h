// The OpenAI Responses API (SPEC §4a) against targets that do not speak it: a Responses request
// as a chat completions request (and from there as an Anthropic one), a chat answer as a
// Responses answer, and the Responses wire shapes (response object, items) that the stream
// relays in responses_stream.cc write too. Pure: no I/O, time and ids passed in.
#pragma once

#include "modelmux/config.h"
#include "modelmux/json.h"
#include "modelmux/registry.h"
#include "modelmux/result.h"
#include "modelmux/translate.h"

#include <cstdint>
#include <simdjson.h>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace modelmux {

// The tools a Responses request offered, as far as the answer must reflect them: a call to a
// tool the request grouped in a namespace, or declared as freeform ("custom"), goes back in the
// shape the client offered it.
struct ResponsesTools {
  std::vector<std::pair<std::string, std::string>> namespaced; // tool name, its namespace
  std::vector<std::string> custom;  // freeform tools, sent as functions of {"input": string}
  std::vector<std::string> dropped; // hosted tools the target cannot run (web_search, ...)

  const std::string* namespace_of(std::string_view name) const;
  bool is_custom(std::string_view name) const;
};

// The response modelmux is making: its id and time, and what the answer echoes of the request.
struct ResponsesContext {
  std::string id; // resp_...
  int64_t created_at = 0;
  std::string previous_response_id;
  bool store = true;
  ResponsesTools tools;
};

// A Responses request (validated root) as a chat completions request for upstream_model. input
// is the request's "input" or, with previous_response_id, the whole conversation. Hosted tools
// are left out and named in tools.dropped; anything else the chat protocol cannot carry is a 400
// naming the Responses field. toward says who receives it in the end: an Anthropic target gets
// this body translated once more, and refuses what it cannot enforce (a JSON schema) here, in
// the Responses field's name.
Result<std::string> responses_request_to_chat(const simdjson::dom::element& request,
                                              const simdjson::dom::element& input,
                                              std::string_view upstream_model,
                                              const std::vector<Param>& defaults, Protocol toward,
                                              ResponsesTools& tools,
                                              std::optional<int64_t> max_output_tokens = {});

// A Responses request as an Anthropic messages request, directly: system and developer items
// (and instructions) become the system prompt, function calls tool_use blocks, their outputs
// tool_result blocks, reasoning.effort a thinking budget; a JSON schema format is refused.
Result<std::string> responses_request_to_anthropic(const simdjson::dom::element& request,
                                                   const simdjson::dom::element& input,
                                                   std::string_view upstream_model,
                                                   const std::vector<Param>& defaults,
                                                   ResponsesTools& tools,
                                                   std::optional<int64_t> max_output_tokens = {});

// A Responses request for a target that speaks Responses, with input in place of its own and
// previous_response_id taken out (modelmux keeps the conversation, so any target can continue
// it); the model is rewritten and the token limit clamped.
std::string responses_request_with_input(const simdjson::dom::element& request,
                                         const simdjson::dom::element& input,
                                         std::string_view upstream_model,
                                         std::optional<int64_t> max_output_tokens);

// The request's input as Responses items (a string input is one user message), comma-separated
// JSON with no brackets, for the conversation store.
std::string responses_input_items(const simdjson::dom::element& input);

// A chat completions answer as a Responses answer. usage receives the tokens; output_items the
// output items as comma-separated JSON, for the conversation store.
Result<std::string> chat_answer_to_responses(std::string_view body, const ResponsesContext& context,
                                             TokenUsage* usage = nullptr,
                                             std::string* output_items = nullptr);

// A whole Anthropic messages answer as a Responses answer, directly: thinking blocks are
// reasoning items, the text blocks one message, tool_use blocks function calls.
Result<std::string> anthropic_answer_to_responses(std::string_view body,
                                                  const ResponsesContext& context,
                                                  TokenUsage* usage = nullptr,
                                                  std::string* output_items = nullptr);

// A Responses answer from a target that speaks Responses itself: its id, usage and output items.
struct ResponsesAnswer {
  std::string id;
  std::string output_items;
  TokenUsage usage;
};
Result<ResponsesAnswer> read_responses_answer(std::string_view body);

// The response object, as the answer and as the stream's response.* events carry it. items is
// the output as comma-separated JSON; usage is null when not known yet. status is completed,
// incomplete (incomplete_reason says why), in_progress or failed (error_message says why).
struct ResponseObject {
  std::string_view model;
  std::string_view status = "completed";
  std::string_view incomplete_reason;
  std::string_view error_message;
  std::string_view items;
  const TokenUsage* usage = nullptr;
};
void write_response_object(JsonWriter& w, const ResponsesContext& context,
                           const ResponseObject& response);

// Output items. status is in_progress or completed.
void write_message_item(JsonWriter& w, std::string_view id, std::string_view status,
                        std::string_view text);
void write_reasoning_item(JsonWriter& w, std::string_view id, std::string_view text);
// A function call, or the freeform or namespaced tool call the client offered under that name.
// arguments is the JSON text the model produced.
void write_call_item(JsonWriter& w, const ResponsesTools& tools, std::string_view id,
                     std::string_view status, std::string_view call_id, std::string_view name,
                     std::string_view arguments);

} // namespace modelmux
