// OpenAI chat completions answer <-> Anthropic messages answer, whole (not streamed).
#include "modelmux/translate.h"
#include "translation/dom.h"

namespace modelmux {

using namespace dom;

Result<std::string> anthropic_response_to_openai(std::string_view body, int64_t created,
                                                 TokenUsage* usage_out) {
  object root;
  if (parse_answer(body, root)) {
    return upstream_answer("is not JSON");
  }
  const auto content = array_of(root, "content");
  if (!content) {
    return upstream_answer("has no content array");
  }
  std::string text;
  std::string reasoning;
  std::string calls;
  size_t call_count = 0;
  for (const element b : *content) {
    object block;
    if (b.get(block)) {
      return upstream_answer("has a content block that is not an object");
    }
    const std::string_view type = string_of(block, "type").value_or("");
    if (type == "text") {
      text += string_of(block, "text").value_or("");
    } else if (type == "thinking") {
      reasoning += string_of(block, "thinking").value_or("");
    } else if (type == "tool_use") {
      if (call_count++ > 0) {
        calls.push_back(',');
      }
      const auto input = field_of(block, "input");
      const std::string args = input ? simdjson::minify(*input) : std::string("{}");
      JsonWriter(calls)
          .begin_object()
          .field("id", string_of(block, "id").value_or(""))
          .field("type", "function")
          .key("function")
          .begin_object()
          .field("name", string_of(block, "name").value_or(""))
          .field("arguments", std::string_view(args))
          .end_object()
          .end_object();
    }
  }
  TokenUsage usage;
  if (const auto u = object_of(root, "usage")) {
    read_anthropic_usage(*u, usage);
  }
  if (usage_out != nullptr) {
    *usage_out = usage;
  }
  std::string out;
  out.reserve(body.size() + 128);
  JsonWriter w(out);
  w.begin_object()
      .field("id", string_of(root, "id").value_or(""))
      .field("object", "chat.completion")
      .field("created", created)
      .field("model", string_of(root, "model").value_or(""))
      .key("choices")
      .begin_array()
      .begin_object()
      .field("index", 0)
      .key("message")
      .begin_object()
      .field("role", "assistant")
      .key("content");
  if (text.empty() && call_count > 0) {
    w.null();
  } else {
    w.value(std::string_view(text));
  }
  if (!reasoning.empty()) {
    w.field("reasoning_content", std::string_view(reasoning));
  }
  if (call_count > 0) {
    w.key("tool_calls").raw("[" + calls + "]");
  }
  w.key("refusal").null().end_object();
  w.key("logprobs").null();
  w.field("finish_reason", finish_reason_for(string_of(root, "stop_reason").value_or("end_turn")));
  w.end_object().end_array().key("usage");
  write_openai_usage(w, usage);
  w.end_object();
  return out;
}

Result<std::string> openai_response_to_anthropic(std::string_view body, TokenUsage* usage_out) {
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
  std::string out;
  out.reserve(body.size() + 128);
  JsonWriter w(out);
  w.begin_object()
      .field("id", string_of(root, "id").value_or(""))
      .field("type", "message")
      .field("role", "assistant")
      .field("model", string_of(root, "model").value_or(""))
      .key("content")
      .begin_array();
  if (const auto r = chat_reasoning(message)) {
    w.begin_object().field("type", "thinking").field("thinking", *r).field("signature", "");
    w.end_object();
  }
  const std::string text = chat_answer_text(message);
  if (!text.empty()) {
    w.begin_object().field("type", "text").field("text", std::string_view(text)).end_object();
  }
  if (const auto calls = array_of(message, "tool_calls")) {
    for (const element c : *calls) {
      object call;
      object function;
      if (c.get(call) || call["function"].get(function)) {
        return upstream_answer("has a tool call without a function");
      }
      const auto args = arguments_object(string_of(function, "arguments").value_or(""));
      if (!args) {
        return upstream_answer("has tool call arguments that are not a JSON object");
      }
      w.begin_object()
          .field("type", "tool_use")
          .field("id", string_of(call, "id").value_or(""))
          .field("name", string_of(function, "name").value_or(""))
          .key("input")
          .raw(*args)
          .end_object();
    }
  }
  w.end_array();
  w.field("stop_reason", stop_reason_for(string_of(choice, "finish_reason").value_or("stop")));
  w.key("stop_sequence").null().key("usage");
  TokenUsage usage;
  if (const auto u = object_of(root, "usage")) {
    read_openai_usage(*u, usage);
  }
  if (usage_out != nullptr) {
    *usage_out = usage;
  }
  write_anthropic_usage(w, usage);
  w.end_object();
  return out;
}

} // namespace modelmux
