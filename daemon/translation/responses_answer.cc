// The Responses wire shapes — the response object and its output items — and a whole chat
// completions answer translated into them; a Responses answer read for its usage and items.
#include "modelmux/translation/responses.h"
#include "translation/dom.h"

namespace modelmux {

using namespace dom;

void write_response_object(JsonWriter& w, const ResponsesContext& context,
                           const ResponseObject& r) {
  w.begin_object()
      .field("id", std::string_view(context.id))
      .field("object", "response")
      .field("created_at", context.created_at)
      .field("status", r.status)
      .key("error");
  if (r.status == "failed") {
    w.begin_object().field("code", "server_error").field("message", r.error_message).end_object();
  } else {
    w.null();
  }
  w.key("incomplete_details");
  if (!r.incomplete_reason.empty()) {
    w.begin_object().field("reason", r.incomplete_reason).end_object();
  } else {
    w.null();
  }
  w.key("instructions").null().field("model", r.model);
  w.key("output").raw("[" + std::string(r.items) + "]");
  w.field("parallel_tool_calls", true).key("previous_response_id");
  if (context.previous_response_id.empty()) {
    w.null();
  } else {
    w.value(std::string_view(context.previous_response_id));
  }
  w.field("store", context.store);
  w.key("text").raw(R"({"format":{"type":"text"}})");
  w.field("tool_choice", "auto").key("tools").raw("[]");
  w.field("truncation", "disabled").key("usage");
  if (r.usage != nullptr) {
    write_responses_usage(w, *r.usage);
  } else {
    w.null();
  }
  w.key("metadata").raw("{}");
  w.end_object();
}

void write_message_item(JsonWriter& w, std::string_view id, std::string_view status,
                        std::string_view text) {
  w.begin_object()
      .field("id", id)
      .field("type", "message")
      .field("status", status)
      .field("role", "assistant")
      .key("content")
      .begin_array();
  if (status == "completed") {
    w.begin_object().field("type", "output_text").field("text", text);
    w.key("annotations").raw("[]").key("logprobs").raw("[]").end_object();
  }
  w.end_array().end_object();
}

void write_reasoning_item(JsonWriter& w, std::string_view id, std::string_view text) {
  w.begin_object().field("id", id).field("type", "reasoning").key("summary").raw("[]");
  w.key("content").begin_array();
  w.begin_object().field("type", "reasoning_text").field("text", text).end_object();
  w.end_array().end_object();
}

void write_call_item(JsonWriter& w, const ResponsesTools& tools, std::string_view id,
                     std::string_view status, std::string_view call_id, std::string_view name,
                     std::string_view arguments) {
  w.begin_object().field("id", id);
  if (tools.is_custom(name)) {
    // The model filled the {"input": string} the freeform tool was offered as.
    std::string_view input;
    element args;
    if (status == "completed" && !parse_nested(arguments, args) && args.is_object() &&
        args["input"].get(input)) {
      input = {};
    }
    w.field("type", "custom_tool_call").field("status", status).field("call_id", call_id);
    w.field("name", name).field("input", status == "completed" ? input : std::string_view());
  } else {
    w.field("type", "function_call").field("status", status).field("call_id", call_id);
    w.field("name", name).field("arguments", arguments);
    if (const auto* ns = tools.namespace_of(name)) {
      w.field("namespace", std::string_view(*ns));
    }
  }
  w.end_object();
}

namespace {

// The response object of a whole answer: its items, status from why it stopped, and usage.
Result<std::string> finish_answer(const ResponsesContext& context, std::string_view model,
                                  std::string_view finish_reason, const TokenUsage& usage,
                                  std::string& items, TokenUsage* usage_out,
                                  std::string* output_items) {
  if (usage_out != nullptr) {
    *usage_out = usage;
  }
  const auto [status, reason] = responses_status_for(finish_reason);
  std::string out;
  out.reserve(items.size() + 512);
  JsonWriter w(out);
  ResponseObject response;
  response.model = model;
  response.status = status;
  response.incomplete_reason = reason;
  response.items = items;
  response.usage = &usage;
  write_response_object(w, context, response);
  if (output_items != nullptr) {
    *output_items = std::move(items);
  }
  return out;
}

} // namespace

Result<std::string> chat_answer_to_responses(std::string_view body, const ResponsesContext& context,
                                             TokenUsage* usage_out, std::string* output_items) {
  object root;
  if (parse_answer(body, root)) {
    return upstream_answer("is not JSON");
  }
  const auto choices = array_of(root, "choices");
  object choice;
  object message;
  if (!choices || choices->size() == 0 || choices->at(0).get(choice) ||
      choice["message"].get(message)) {
    return upstream_answer("has no choices[0].message");
  }
  const std::string suffix = context.id.size() > 5 ? context.id.substr(5) : context.id;
  std::string items;
  JsonWriter iw(items);
  size_t n = 0;
  auto next_id = [&](std::string_view prefix) {
    return std::string(prefix) + suffix + "_" + std::to_string(n++);
  };
  if (const auto r = chat_reasoning(message)) {
    write_reasoning_item(iw, next_id("rs_"), *r);
  }
  const std::string text = chat_answer_text(message);
  if (!text.empty()) {
    write_message_item(iw, next_id("msg_"), "completed", text);
  }
  if (const auto calls = array_of(message, "tool_calls")) {
    for (const element c : *calls) {
      object call;
      object function;
      if (c.get(call) || call["function"].get(function)) {
        return upstream_answer("has a tool call without a function");
      }
      const std::string id = next_id("fc_");
      const std::string_view call_id = string_of(call, "id").value_or(id);
      write_call_item(iw, context.tools, id, "completed", call_id,
                      string_of(function, "name").value_or(""),
                      string_of(function, "arguments").value_or("{}"));
    }
  }
  TokenUsage usage;
  if (const auto u = object_of(root, "usage")) {
    read_openai_usage(*u, usage);
  }
  return finish_answer(context, string_of(root, "model").value_or(""),
                       string_of(choice, "finish_reason").value_or("stop"), usage, items, usage_out,
                       output_items);
}

Result<std::string> anthropic_answer_to_responses(std::string_view body,
                                                  const ResponsesContext& context,
                                                  TokenUsage* usage_out,
                                                  std::string* output_items) {
  object root;
  if (parse_answer(body, root)) {
    return upstream_answer("is not JSON");
  }
  const auto content = array_of(root, "content");
  if (!content) {
    return upstream_answer("has no content array");
  }
  const std::string suffix = context.id.size() > 5 ? context.id.substr(5) : context.id;
  std::string items;
  JsonWriter iw(items);
  size_t n = 0;
  auto next_id = [&](std::string_view prefix) {
    return std::string(prefix) + suffix + "_" + std::to_string(n++);
  };
  // Reasoning first, then the text blocks as one message, then the calls: the order of a chat
  // answer translated, so both give the same items.
  std::string text;
  for (const element b : *content) {
    object block;
    if (b.get(block)) {
      return upstream_answer("has a content block that is not an object");
    }
    const std::string_view type = string_of(block, "type").value_or("");
    if (type == "thinking") {
      write_reasoning_item(iw, next_id("rs_"), string_of(block, "thinking").value_or(""));
    } else if (type == "text") {
      text += string_of(block, "text").value_or("");
    }
  }
  if (!text.empty()) {
    write_message_item(iw, next_id("msg_"), "completed", text);
  }
  for (const element b : *content) {
    const object block = b.get_object().value_unsafe();
    if (string_of(block, "type").value_or("") != "tool_use") {
      continue;
    }
    const auto input = field_of(block, "input");
    const std::string arguments = input ? simdjson::minify(*input) : std::string("{}");
    const std::string id = next_id("fc_");
    write_call_item(iw, context.tools, id, "completed", string_of(block, "id").value_or(id),
                    string_of(block, "name").value_or(""), arguments);
  }
  TokenUsage usage;
  if (const auto u = object_of(root, "usage")) {
    read_anthropic_usage(*u, usage);
  }
  return finish_answer(context, string_of(root, "model").value_or(""),
                       finish_reason_for(string_of(root, "stop_reason").value_or("end_turn")),
                       usage, items, usage_out, output_items);
}

Result<ResponsesAnswer> read_responses_answer(std::string_view body) {
  object root;
  if (parse_answer(body, root)) {
    return upstream_answer("is not JSON");
  }
  const auto output = array_of(root, "output");
  if (!output) {
    return upstream_answer("has no output array");
  }
  ResponsesAnswer answer;
  answer.id = std::string(string_of(root, "id").value_or(""));
  for (const element item : *output) {
    if (!answer.output_items.empty()) {
      answer.output_items.push_back(',');
    }
    answer.output_items += simdjson::minify(item);
  }
  if (const auto u = object_of(root, "usage")) {
    read_responses_usage(*u, answer.usage);
  }
  return answer;
}

} // namespace modelmux
