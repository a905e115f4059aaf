// Reading the simdjson DOM and writing request bodies, shared by every translation pair: optional
// field lookups that treat null as absent, the 400 and 502 errors translation raises, and a body
// writer that lets a target's default params fill only what a request left out. Private to
// daemon/translation/.
#pragma once

#include "modelmux/config.h"
#include "modelmux/json.h"
#include "modelmux/result.h"
#include "modelmux/translate.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <simdjson.h>
#include <string>
#include <string_view>
#include <vector>

namespace modelmux::dom {

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::object;
using Type = simdjson::dom::element_type;

inline std::optional<element> field_of(const object& o, std::string_view key) {
  element e;
  if (o[key].get(e) || e.is_null()) {
    return std::nullopt;
  }
  return e;
}

inline std::optional<std::string_view> string_of(const object& o, std::string_view key) {
  std::string_view s;
  if (o[key].get(s)) {
    return std::nullopt;
  }
  return s;
}

inline std::optional<object> object_of(const object& o, std::string_view key) {
  object out;
  if (o[key].get(out)) {
    return std::nullopt;
  }
  return out;
}

inline std::optional<array> array_of(const object& o, std::string_view key) {
  array out;
  if (o[key].get(out)) {
    return std::nullopt;
  }
  return out;
}

inline int64_t int_of(const object& o, std::string_view key, int64_t fallback = 0) {
  int64_t n = 0;
  if (o[key].get(n)) {
    return fallback;
  }
  return n;
}

inline bool bool_of(const object& o, std::string_view key, bool fallback) {
  bool b = false;
  if (o[key].get(b)) {
    return fallback;
  }
  return b;
}

inline void write_element(JsonWriter& w, const element& e) {
  w.raw(simdjson::minify(e));
}

// A token limit, clamped to the target's max_output_tokens when it asks for more.
inline void write_token_limit(JsonWriter& w, const element& v, std::optional<int64_t> clamp) {
  int64_t n = 0;
  if (clamp && !v.get(n) && n > *clamp) {
    w.value(*clamp);
  } else {
    write_element(w, v);
  }
}

// A request field modelmux cannot honour for the chosen target: a 400 naming it.
inline Error refuse(std::string field, std::string why) {
  return make_error(ErrorKind::invalid_request, "'" + field + "' " + why, field);
}

// An upstream answer that is not what its protocol promises: the attempt failed.
inline Error upstream_answer(std::string why) {
  return make_error(ErrorKind::upstream, "the upstream answer " + why);
}

inline std::string at_index(std::string_view path, size_t i) {
  return std::string(path) + "[" + std::to_string(i) + "]";
}

// The keys written so far, so a target's default params fill only what the request left out.
class BodyWriter {
public:
  explicit BodyWriter(std::string& out) : m_w(out) { m_w.begin_object(); }

  JsonWriter& key(std::string_view k) {
    m_written.push_back(k);
    return m_w.key(k);
  }
  bool written(std::string_view k) const {
    return std::find(m_written.begin(), m_written.end(), k) != m_written.end();
  }
  void defaults(const std::vector<Param>& params) {
    for (const auto& p : params) {
      if (!written(p.key)) {
        key(p.key).raw(p.json);
      }
    }
  }
  void close() { m_w.end_object(); }

private:
  JsonWriter m_w;
  std::vector<std::string_view> m_written;
};

inline bool has_param(const std::vector<Param>& params, std::string_view key) {
  return std::any_of(params.begin(), params.end(), [&](const Param& p) { return p.key == key; });
}

// Anthropic content blocks, written turn by turn: consecutive blocks of one role become one
// turn, as Anthropic requires (tool results answering one assistant turn go back together in
// one user turn).
class TurnWriter {
public:
  explicit TurnWriter(JsonWriter& messages) : m_messages(messages) {}

  // A writer for one more content block of a turn of role.
  JsonWriter block(std::string_view role) {
    if (role != m_role) {
      flush();
      m_role = role;
    }
    if (!m_blocks.empty()) {
      m_blocks.push_back(',');
    }
    return JsonWriter(m_blocks);
  }
  // A block that wrote nothing leaves its separator behind; take it back.
  void drop_separator() {
    if (!m_blocks.empty() && m_blocks.back() == ',') {
      m_blocks.pop_back();
    }
  }
  void flush() {
    if (!m_blocks.empty()) {
      m_messages.begin_object().field("role", m_role).key("content");
      m_blocks.insert(m_blocks.begin(), '[');
      m_blocks.push_back(']');
      m_messages.raw(m_blocks);
      m_messages.end_object();
    }
    m_blocks.clear();
  }

private:
  JsonWriter& m_messages;
  std::string_view m_role;
  std::string m_blocks;
};

// "data:image/png;base64,AAAA" -> media type and data.
inline bool split_data_url(std::string_view url, std::string_view& media_type,
                           std::string_view& data) {
  if (url.substr(0, 5) != "data:") {
    return false;
  }
  const size_t marker = url.find(";base64,");
  if (marker == std::string_view::npos) {
    return false;
  }
  media_type = url.substr(5, marker - 5);
  data = url.substr(marker + 8);
  return true;
}

// The end of an Anthropic request body: the target's default params, max_tokens when nothing
// set it (Anthropic requires one and counts thinking inside it), and thinking. Thinking is left
// out when tool_choice forces a tool (Anthropic refuses both), and kept below the token limit:
// a limit too small for it gets none. requested_limit is the request's own limit, 0 for none.
inline void close_anthropic_body(BodyWriter& body, const object& root,
                                 const std::vector<Param>& defaults, int64_t thinking_budget,
                                 int64_t requested_limit,
                                 std::optional<int64_t> max_output_tokens) {
  body.defaults(defaults);
  if (!body.written("max_tokens") && !has_param(defaults, "max_tokens")) {
    const int64_t wanted = k_default_anthropic_max_tokens + thinking_budget;
    body.key("max_tokens").value(std::min(wanted, max_output_tokens.value_or(wanted)));
  }
  if (const auto choice = field_of(root, "tool_choice");
      choice && (choice->is_object() ||
                 (choice->is_string() && choice->get_string().value_unsafe() == "required"))) {
    thinking_budget = 0;
  }
  int64_t limit = requested_limit;
  if (max_output_tokens && (limit == 0 || limit > *max_output_tokens)) {
    limit = *max_output_tokens;
  }
  if (limit > 0 && thinking_budget >= limit) {
    thinking_budget = limit / 2 >= 1024 ? limit / 2 : 0;
  }
  if (thinking_budget > 0) {
    body.key("thinking")
        .begin_object()
        .field("type", "enabled")
        .field("budget_tokens", thinking_budget)
        .end_object();
  }
  body.close();
}

// Anthropic's system prompt from the system texts in order: one is a string, several are text
// blocks; none writes nothing.
inline void write_anthropic_system(BodyWriter& body, const std::vector<std::string>& system) {
  if (system.size() == 1) {
    body.key("system").value(std::string_view(system.front()));
  } else if (system.size() > 1) {
    JsonWriter& w = body.key("system").begin_array();
    for (const auto& text : system) {
      w.begin_object().field("type", "text").field("text", std::string_view(text)).end_object();
    }
    w.end_array();
  }
}

// Anthropic's tool_choice: choice is auto, none, any or tool (then name says which); with
// parallel calls off, disable_parallel_tool_use. Auto with parallel calls is Anthropic's default,
// so it is written only when the request gave a choice.
inline void write_anthropic_tool_choice(BodyWriter& body, bool given, std::string_view choice,
                                        std::string_view name, bool parallel) {
  if (!given && parallel) {
    return;
  }
  JsonWriter& c = body.key("tool_choice").begin_object().field("type", choice);
  if (choice == "tool") {
    c.field("name", name);
  }
  if (!parallel && choice != "none") {
    c.field("disable_parallel_tool_use", true);
  }
  c.end_object();
}

// The tool calls of a chat stream, told apart as their deltas arrive: a new call starts at a new
// index, or (servers that send no index) at a new id. Calls come one after another; a call that
// goes on after the next one began cannot be reopened on the other side.
class ChatToolCalls {
public:
  enum class Delta { continues, starts, malformed };

  // What a tool_calls delta does, given whether the call seen last is still open there. On
  // starts, index() and id() are the new call's; an empty id means the server sent none.
  Delta step(const object& call, bool open) {
    int64_t index = -1;
    const bool has_index = !call["index"].get(index);
    std::string_view id;
    if (call["id"].get(id)) {
      id = {};
    }
    const bool is_new =
        !open || (has_index && index != m_index) || (!has_index && !id.empty() && id != m_id);
    if (!is_new) {
      return Delta::continues;
    }
    if (has_index && index <= m_max_index) {
      m_index = index;
      return Delta::malformed;
    }
    m_index = has_index ? index : m_max_index + 1;
    m_max_index = m_index;
    m_id = std::string(id);
    return Delta::starts;
  }
  int64_t index() const { return m_index; }
  const std::string& id() const { return m_id; }
  std::string malformed_reason() const {
    return "tool call " + std::to_string(m_index) + " continued after the next one began";
  }

private:
  int64_t m_index = -1;
  int64_t m_max_index = -1;
  std::string m_id;
};

// A chat answer's reasoning text, as DeepSeek, vLLM and others send it (reasoning_content, or
// reasoning); nullopt when there is none.
inline std::optional<std::string_view> chat_reasoning(const object& message) {
  for (const char* key : {"reasoning_content", "reasoning"}) {
    if (const auto r = string_of(message, key); r && !r->empty()) {
      return r;
    }
  }
  return std::nullopt;
}

// A chat answer's text: its content (a string or text parts), else its refusal.
std::string chat_answer_text(const object& message);

// A parser of its own for an upstream's answer, so the request's document stays valid for the
// next attempt. One per thread; the view it fills is valid until the next call on the thread.
simdjson::error_code parse_answer(std::string_view body, object& out);

// A second parser for JSON held inside JSON strings (tool arguments), so reading them does not
// invalidate the document they came from. Valid until the next call on the thread.
simdjson::error_code parse_nested(std::string_view json, element& out);

// Tool call arguments as a JSON object text: "" means no arguments. nullopt when they are not
// a JSON object, which Anthropic's tool_use input must be.
std::optional<std::string_view> arguments_object(std::string_view arguments);

// The text of message content in either protocol: a string, or the text parts (OpenAI) or text
// blocks (Anthropic) of an array, joined with separator.
std::string text_of_content(const element& content, std::string_view separator = {});

} // namespace modelmux::dom
