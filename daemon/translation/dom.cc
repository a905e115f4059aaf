// The DOM helpers translation shares: per-thread parsers for answers and for JSON inside JSON
// strings, tool arguments, and the text of message content.
#include "translation/dom.h"

namespace modelmux::dom {

// Tool call arguments as a JSON object text: "" means no arguments. nullopt when they are not
// a JSON object, which Anthropic's tool_use input must be.
std::optional<std::string_view> arguments_object(std::string_view arguments) {
  const size_t first = arguments.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) {
    return std::string_view("{}");
  }
  element e;
  if (parse_nested(arguments, e) || e.type() != Type::OBJECT) {
    return std::nullopt;
  }
  return arguments;
}

// The text of message content in either protocol: a string, or the text parts (OpenAI) or text
// blocks (Anthropic) of an array, joined with separator. Both shapes are {"type": "text",
// "text": ...}.
std::string text_of_content(const element& content, std::string_view separator) {
  std::string_view s;
  if (!content.get(s)) {
    return std::string(s);
  }
  std::string out;
  array parts;
  if (content.get(parts)) {
    return out;
  }
  bool first = true;
  for (const element part : parts) {
    std::string_view type;
    std::string_view text;
    if (part.is_object() && !part["type"].get(type) && type == "text" && !part["text"].get(text)) {
      out += first ? std::string_view() : separator;
      out += text;
      first = false;
    }
  }
  return out;
}

simdjson::error_code parse_answer(std::string_view body, object& out) {
  thread_local simdjson::dom::parser parser;
  thread_local std::string scratch;
  scratch.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  scratch.assign(body);
  element root;
  if (const auto err = parser.parse(scratch.data(), scratch.size(), false).get(root)) {
    return err;
  }
  return root.get(out);
}

simdjson::error_code parse_nested(std::string_view json, element& out) {
  thread_local simdjson::dom::parser parser;
  thread_local std::string scratch;
  scratch.reserve(json.size() + simdjson::SIMDJSON_PADDING);
  scratch.assign(json);
  return parser.parse(scratch.data(), scratch.size(), false).get(out);
}

std::string chat_answer_text(const object& message) {
  std::string text;
  if (const auto c = field_of(message, "content")) {
    text = text_of_content(*c);
  }
  if (const auto refusal = string_of(message, "refusal"); refusal && text.empty()) {
    text = std::string(*refusal);
  }
  return text;
}

} // namespace modelmux::dom
