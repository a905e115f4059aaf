// What a request needs of a model beyond text — tools, images, a JSON schema, reasoning — and
// what a target can do (its `capabilities`, SPEC §10). Both are small bit sets; a request that
// needs something a target lacks skips that target. Pure: read from the parsed body, no I/O.
#pragma once

#include "modelmux/api.h"

#include <optional>
#include <string>
#include <string_view>

namespace simdjson::dom {
class element;
} // namespace simdjson::dom

namespace modelmux {

enum class Capability : unsigned {
  tools = 1u << 0,
  vision = 1u << 1,
  json_schema = 1u << 2,
  reasoning = 1u << 3,
};

// A set of capabilities; a target without `capabilities` in its config has all of them.
struct Capabilities {
  unsigned bits = 0;

  static Capabilities all() { return {0xfu}; }
  bool has(Capability c) const { return (bits & static_cast<unsigned>(c)) != 0; }
  void add(Capability c) { bits |= static_cast<unsigned>(c); }
  bool empty() const { return bits == 0; }
  // What this set (a request's needs) asks that offered lacks.
  Capabilities missing_from(Capabilities offered) const { return {bits & ~offered.bits}; }
  bool operator==(const Capabilities&) const = default;
};

inline constexpr Capability k_capabilities[] = {Capability::tools, Capability::vision,
                                                Capability::json_schema, Capability::reasoning};

std::string_view to_string(Capability c);
std::optional<Capability> capability_named(std::string_view name);
// "tools, vision"; "" for none.
std::string to_string(Capabilities set);

// What a request on route needs, read from its parsed body:
//   tools       a non-empty `tools` (or legacy `functions`) list;
//   vision      an image among the inputs (OpenAI `image_url`, Responses `input_image`,
//               Anthropic `image` blocks);
//   json_schema a structured-output schema (`response_format` / Responses `text.format` of type
//               json_schema);
//   reasoning   reasoning asked for (`reasoning_effort`, Responses `reasoning`, Anthropic
//               `thinking` of type enabled).
Capabilities needed_capabilities(ApiRoute route, simdjson::dom::element root);

} // namespace modelmux
