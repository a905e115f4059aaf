// What a request needs, read off its parsed body with simdjson's DOM (already parsed for
// validation, so this is a walk over a few nodes, no second parse).

#include "modelmux/capability.h"

#include "modelmux/protocol.h"

#include <simdjson.h>

namespace modelmux {

namespace {

using simdjson::dom::element;

bool non_empty_array(element root, const char* key) {
  simdjson::dom::array a;
  return !root[key].get(a) && a.size() > 0;
}

bool typed(element e, std::string_view type) {
  std::string_view t;
  return !e["type"].get(t) && t == type;
}

// An image part anywhere within a message's content: parts may nest (an Anthropic tool_result
// holds blocks of its own, a Responses message holds content parts), a few levels at most.
bool holds_image(element e, int depth) {
  if (depth > 5) {
    return false;
  }
  if (simdjson::dom::array items; !e.get_array().get(items)) {
    for (element item : items) {
      if (holds_image(item, depth + 1)) {
        return true;
      }
    }
    return false;
  }
  if (!e.is_object()) {
    return false;
  }
  std::string_view type;
  if (!e["type"].get(type) && (type == "image_url" || type == "image" || type == "input_image")) {
    return true;
  }
  element content;
  return !e["content"].get(content) && holds_image(content, depth + 1);
}

bool asks_json_schema(element root) {
  element format;
  if (!root["response_format"].get(format) && typed(format, "json_schema")) {
    return true;
  }
  return !root.at_pointer("/text/format").get(format) && typed(format, "json_schema");
}

bool asks_reasoning(element root) {
  element e;
  if (!root["reasoning_effort"].get(e) && !e.is_null()) {
    return true;
  }
  if (!root["reasoning"].get(e) && e.is_object()) {
    // {"effort": "none"} (or no effort at all) asks for nothing a plain model cannot give.
    std::string_view effort;
    return !e["effort"].get(effort) && effort != "none";
  }
  return !root["thinking"].get(e) && typed(e, "enabled");
}

} // namespace

std::string_view to_string(Capability c) {
  switch (c) {
  case Capability::tools:
    return "tools";
  case Capability::vision:
    return "vision";
  case Capability::json_schema:
    return "json_schema";
  case Capability::reasoning:
    return "reasoning";
  }
  return "?";
}

std::optional<Capability> capability_named(std::string_view name) {
  for (const auto c : k_capabilities) {
    if (to_string(c) == name) {
      return c;
    }
  }
  return std::nullopt;
}

std::string to_string(Capabilities set) {
  std::string out;
  for (const auto c : k_capabilities) {
    if (set.has(c)) {
      out += out.empty() ? "" : ", ";
      out += to_string(c);
    }
  }
  return out;
}

Capabilities needed_capabilities(ApiRoute route, element root) {
  Capabilities needs;
  if (route != ApiRoute::chat_completions && route != ApiRoute::messages &&
      route != ApiRoute::responses) {
    return needs;
  }
  if (non_empty_array(root, "tools") || non_empty_array(root, "functions")) {
    needs.add(Capability::tools);
  }
  element inputs;
  const char* key = route == ApiRoute::responses ? "input" : "messages";
  if (!root[key].get(inputs) && holds_image(inputs, 0)) {
    needs.add(Capability::vision);
  }
  if (asks_json_schema(root)) {
    needs.add(Capability::json_schema);
  }
  if (asks_reasoning(root)) {
    needs.add(Capability::reasoning);
  }
  return needs;
}

} // namespace modelmux
