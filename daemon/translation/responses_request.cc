// Responses request -> chat completions request. Input items become chat messages (function
// calls join the assistant message before them, their outputs become tool messages), tools are
// flattened out of namespaces, freeform tools become functions of one string, hosted tools are
// left out and named, and every field the chat protocol cannot carry is refused by name.
#include "modelmux/translation/responses.h"
#include "translation/dom.h"

namespace modelmux {

using namespace dom;

namespace {

// Top-level fields that steer only OpenAI's own service (storage, caching, billing, tracing):
// without them the model's answer means the same.
constexpr std::string_view k_service_only_fields[] = {
    "store",
    "include",
    "prompt_cache_key",
    "prompt_cache_retention",
    "client_metadata",
    "metadata",
    "service_tier",
    "truncation",
    "safety_identifier",
    "stream_options",
    "previous_response_id",
    "background",
    "max_tool_calls",
    "user",
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_output_tokens",
    "temperature",
    "top_p",
    "reasoning",
    "text",
    "stream",
    "top_logprobs",
};

bool known_field(std::string_view key) {
  for (const auto k : k_service_only_fields) {
    if (k == key) {
      return true;
    }
  }
  return false;
}

constexpr std::string_view k_custom_tool_schema =
    R"({"type":"object","properties":{"input":{"type":"string","description":"The tool's input, as free text"}},"required":["input"]})";

// An assistant message being built from consecutive assistant items: text, then tool calls.
class AssistantTurn {
public:
  explicit AssistantTurn(JsonWriter& messages) : m_messages(messages) {}

  void text(std::string_view t) {
    if (!m_calls.empty()) {
      flush(); // text after calls starts a new turn
    }
    m_text += t;
    m_open = true;
  }
  void call(std::string_view call_id, std::string_view name, std::string_view arguments) {
    if (!m_calls.empty()) {
      m_calls.push_back(',');
    }
    JsonWriter(m_calls)
        .begin_object()
        .field("id", call_id)
        .field("type", "function")
        .key("function")
        .begin_object()
        .field("name", name)
        .field("arguments", arguments)
        .end_object()
        .end_object();
    m_open = true;
  }
  void flush() {
    if (!m_open) {
      return;
    }
    m_messages.begin_object().field("role", "assistant").key("content");
    if (m_text.empty() && !m_calls.empty()) {
      m_messages.null();
    } else {
      m_messages.value(std::string_view(m_text));
    }
    if (!m_calls.empty()) {
      m_messages.key("tool_calls").raw("[" + m_calls + "]");
    }
    m_messages.end_object();
    m_text.clear();
    m_calls.clear();
    m_open = false;
  }

private:
  JsonWriter& m_messages;
  std::string m_text;
  std::string m_calls;
  bool m_open = false;
};

// The text of a message's content parts, or of a tool output given as parts.
std::string text_of_parts(const array& parts) {
  std::string out;
  for (const element p : parts) {
    object part;
    if (p.get(part)) {
      continue;
    }
    const std::string_view type = string_of(part, "type").value_or("");
    if (type == "input_text" || type == "output_text" || type == "text") {
      out += string_of(part, "text").value_or("");
    } else if (type == "refusal") {
      out += string_of(part, "refusal").value_or("");
    }
  }
  return out;
}

// Whether message content parts are all text; a part that is neither text nor an image is a
// 400 naming it.
Result<bool> parts_all_text(const array& parts, const std::string& at) {
  bool all_text = true;
  size_t i = 0;
  for (const element p : parts) {
    object part;
    if (p.get(part)) {
      return refuse(at_index(at, i), "must be an object");
    }
    const std::string_view type = string_of(part, "type").value_or("");
    if (type == "input_image") {
      all_text = false;
    } else if (type != "input_text" && type != "output_text" && type != "text" &&
               type != "refusal") {
      return refuse(at_index(at, i) + ".type",
                    "\"" + std::string(type) +
                        "\" content cannot be sent to this target (text and images can)");
    }
    ++i;
  }
  return all_text;
}

// Writes a user, system or developer message's content: a string when it is all text (what
// every chat server takes), else chat content parts.
Status write_content(JsonWriter& w, const element& content, const std::string& at) {
  std::string_view s;
  if (!content.get(s)) {
    w.value(s);
    return ok();
  }
  array parts;
  if (content.get(parts)) {
    return refuse(at, "must be a string or an array of content parts");
  }
  const auto all_text = parts_all_text(parts, at);
  if (!all_text) {
    return all_text.error();
  }
  if (all_text.value()) {
    w.value(std::string_view(text_of_parts(parts)));
    return ok();
  }
  w.begin_array();
  size_t i = 0;
  for (const element p : parts) {
    const object part = p.get_object().value_unsafe();
    const std::string_view type = string_of(part, "type").value_or("");
    if (type == "input_image") {
      const auto url = string_of(part, "image_url");
      if (!url) {
        return refuse(at_index(at, i) + ".image_url",
                      "is required: modelmux cannot resolve a file_id for this target");
      }
      w.begin_object().field("type", "image_url").key("image_url").begin_object();
      w.field("url", *url);
      if (const auto detail = string_of(part, "detail")) {
        w.field("detail", *detail);
      }
      w.end_object().end_object();
    } else {
      w.begin_object().field("type", "text");
      w.field("text", string_of(part, type == "refusal" ? "refusal" : "text").value_or(""));
      w.end_object();
    }
    ++i;
  }
  w.end_array();
  return ok();
}

// A tool's output: a string, or parts whose text is joined.
std::string output_text(const element& output) {
  std::string_view s;
  if (!output.get(s)) {
    return std::string(s);
  }
  array parts;
  if (!output.get(parts)) {
    return text_of_parts(parts);
  }
  return simdjson::minify(output);
}

// The arguments of a freeform tool call, as the function arguments it was offered as.
std::string custom_arguments(std::string_view input) {
  std::string out;
  JsonWriter(out).begin_object().field("input", input).end_object();
  return out;
}

// What the items of a Responses input say, in order, for the writer of one protocol: the
// walk checks each item and says which it is; the sink writes it.
class ItemSink {
public:
  virtual ~ItemSink() = default;
  // A user, system or developer message.
  virtual Status message(std::string_view role, const element& content, const std::string& at) = 0;
  virtual void assistant_text(std::string_view text) = 0;
  // A function call, or a freeform one with its input as {"input": ...} arguments.
  virtual Status call(std::string_view call_id, std::string_view name, std::string_view arguments,
                      const std::string& at) = 0;
  virtual void call_output(std::string_view call_id, std::string_view output) = 0;
};

Status walk_items(const array& items, ItemSink& sink) {
  size_t i = 0;
  for (const element it : items) {
    const std::string at = at_index("input", i++);
    object item;
    if (it.get(item)) {
      return refuse(at, "must be an object");
    }
    const auto role = string_of(item, "role");
    const std::string_view type = string_of(item, "type").value_or(role ? "message" : "");
    if (type == "message") {
      const auto content = field_of(item, "content");
      if (!role || !content) {
        return refuse(at, "must have a role and content");
      }
      if (*role == "assistant") {
        std::string_view s;
        array parts;
        if (!content->get(s)) {
          sink.assistant_text(s);
        } else if (!content->get(parts)) {
          sink.assistant_text(text_of_parts(parts));
        } else {
          return refuse(at + ".content", "must be a string or an array of content parts");
        }
        continue;
      }
      if (*role != "user" && *role != "system" && *role != "developer") {
        return refuse(at + ".role", "must be \"user\", \"assistant\", \"system\" or \"developer\"");
      }
      if (auto st = sink.message(*role, *content, at + ".content"); !st) {
        return st;
      }
    } else if (type == "function_call" || type == "custom_tool_call") {
      const auto call_id = string_of(item, "call_id");
      const auto name = string_of(item, "name");
      if (!call_id || !name) {
        return refuse(at, "must have a call_id and a name");
      }
      const std::string arguments = type == "function_call"
                                        ? std::string(string_of(item, "arguments").value_or("{}"))
                                        : custom_arguments(string_of(item, "input").value_or(""));
      if (auto st = sink.call(*call_id, *name, arguments, at); !st) {
        return st;
      }
    } else if (type == "function_call_output" || type == "custom_tool_call_output") {
      const auto call_id = string_of(item, "call_id");
      const auto output = field_of(item, "output");
      if (!call_id || !output) {
        return refuse(at, "must have a call_id and an output");
      }
      sink.call_output(*call_id, output_text(*output));
    } else if (type == "reasoning") {
      continue; // no target behind a translation takes reasoning items back
    } else if (type == "item_reference") {
      return refuse(at, "refers to an item by id, which modelmux cannot resolve; send the item "
                        "itself or use previous_response_id");
    } else {
      return refuse(at + ".type", "\"" + std::string(type) +
                                      "\" items cannot be sent to this target (message, "
                                      "function_call, function_call_output and reasoning can)");
    }
  }
  return ok();
}

// Items as chat messages.
class ChatSink final : public ItemSink {
public:
  explicit ChatSink(JsonWriter& messages) : m_w(messages), m_assistant(messages) {}

  Status message(std::string_view role, const element& content, const std::string& at) override {
    m_assistant.flush();
    // The chat servers modelmux translates for know no "developer".
    m_w.begin_object().field("role", role == "user" ? "user" : "system").key("content");
    if (auto st = write_content(m_w, content, at); !st) {
      return st;
    }
    m_w.end_object();
    return ok();
  }
  void assistant_text(std::string_view text) override { m_assistant.text(text); }
  Status call(std::string_view call_id, std::string_view name, std::string_view arguments,
              const std::string&) override {
    m_assistant.call(call_id, name, arguments);
    return ok();
  }
  void call_output(std::string_view call_id, std::string_view output) override {
    m_assistant.flush();
    m_w.begin_object().field("role", "tool").field("tool_call_id", call_id);
    m_w.field("content", output).end_object();
  }
  void flush() { m_assistant.flush(); }

private:
  JsonWriter& m_w;
  AssistantTurn m_assistant;
};

Status write_messages(BodyWriter& body, const object& root, const element& input) {
  JsonWriter& w = body.key("messages").begin_array();
  if (const auto instructions = string_of(root, "instructions");
      instructions && !instructions->empty()) {
    w.begin_object().field("role", "system").field("content", *instructions).end_object();
  }
  std::string_view text;
  if (!input.get(text)) {
    w.begin_object().field("role", "user").field("content", text).end_object();
    w.end_array();
    return ok();
  }
  array items;
  if (input.get(items)) {
    return refuse("input", "must be a string or an array of items");
  }
  ChatSink sink(w);
  if (auto st = walk_items(items, sink); !st) {
    return st;
  }
  sink.flush();
  w.end_array();
  return ok();
}

// One function tool, written as a chat tool, or as an Anthropic tool (toward anthropic).
void write_function(JsonWriter& w, const object& tool, Protocol toward) {
  if (toward == Protocol::anthropic) {
    w.begin_object().field("name", string_of(tool, "name").value_or(""));
    if (const auto d = string_of(tool, "description")) {
      w.field("description", *d);
    }
    w.key("input_schema");
    if (const auto schema = field_of(tool, "parameters")) {
      write_element(w, *schema);
    } else {
      w.raw(R"({"type":"object","properties":{}})");
    }
    w.end_object();
    return;
  }
  w.begin_object().field("type", "function").key("function").begin_object();
  w.field("name", string_of(tool, "name").value_or(""));
  if (const auto d = string_of(tool, "description")) {
    w.field("description", *d);
  }
  w.key("parameters");
  if (const auto schema = field_of(tool, "parameters")) {
    write_element(w, *schema);
  } else {
    w.raw(R"({"type":"object","properties":{}})");
  }
  if (const auto strict = field_of(tool, "strict"); strict && strict->is_bool()) {
    w.field("strict", strict->get_bool().value_unsafe());
  }
  w.end_object().end_object();
}

Status write_tool(JsonWriter& w, const element& t, const std::string& at, std::string_view ns,
                  Protocol toward, ResponsesTools& tools, size_t& written) {
  object tool;
  if (t.get(tool)) {
    return refuse(at, "must be an object");
  }
  const std::string_view type = string_of(tool, "type").value_or("");
  if (type == "function") {
    if (!string_of(tool, "name")) {
      return refuse(at + ".name", "is required");
    }
    write_function(w, tool, toward);
    if (!ns.empty()) {
      tools.namespaced.emplace_back(std::string(*string_of(tool, "name")), std::string(ns));
    }
    ++written;
  } else if (type == "custom") {
    const auto name = string_of(tool, "name");
    if (!name) {
      return refuse(at + ".name", "is required");
    }
    if (toward == Protocol::anthropic) {
      w.begin_object().field("name", *name);
      if (const auto d = string_of(tool, "description")) {
        w.field("description", *d);
      }
      w.key("input_schema").raw(k_custom_tool_schema).end_object();
    } else {
      w.begin_object().field("type", "function").key("function").begin_object();
      w.field("name", *name);
      if (const auto d = string_of(tool, "description")) {
        w.field("description", *d);
      }
      w.key("parameters").raw(k_custom_tool_schema).end_object().end_object();
    }
    tools.custom.emplace_back(*name);
    ++written;
  } else if (type == "namespace") {
    const auto inner = array_of(tool, "tools");
    if (!inner) {
      return refuse(at + ".tools", "must be an array");
    }
    const std::string_view name = string_of(tool, "name").value_or("");
    size_t j = 0;
    for (const element child : *inner) {
      if (auto st =
              write_tool(w, child, at_index(at + ".tools", j++), name, toward, tools, written);
          !st) {
        return st;
      }
    }
  } else if (!type.empty()) {
    tools.dropped.emplace_back(type); // hosted: web_search, file_search, code_interpreter, ...
  } else {
    return refuse(at + ".type", "is required");
  }
  return ok();
}

Status write_tools(BodyWriter& body, const object& root, ResponsesTools& tools) {
  const auto list = array_of(root, "tools");
  size_t written = 0;
  if (list && list->size() > 0) {
    std::string buffer;
    JsonWriter w(buffer);
    w.begin_array();
    size_t i = 0;
    for (const element t : *list) {
      if (auto st = write_tool(w, t, at_index("tools", i++), {}, Protocol::openai, tools, written);
          !st) {
        return st;
      }
    }
    w.end_array();
    if (written > 0) {
      body.key("tools").raw(buffer);
    }
  }
  if (const auto choice = field_of(root, "tool_choice")) {
    std::string_view s;
    object o;
    if (!choice->get(s)) {
      if (s != "auto" && s != "none" && s != "required") {
        return refuse("tool_choice", "must be \"auto\", \"none\", \"required\" or a function");
      }
      if (written > 0) {
        body.key("tool_choice").value(s);
      } else if (s == "required") {
        return refuse("tool_choice", "requires a tool, and this target is offered none it can run");
      }
    } else if (!choice->get(o)) {
      const std::string_view type = string_of(o, "type").value_or("");
      const auto name = string_of(o, "name");
      if ((type == "function" || type == "custom") && name) {
        body.key("tool_choice")
            .begin_object()
            .field("type", "function")
            .key("function")
            .begin_object()
            .field("name", *name)
            .end_object()
            .end_object();
      } else {
        return refuse("tool_choice", "\"" + std::string(type) +
                                         "\" cannot be enforced on this target (\"auto\", "
                                         "\"none\", \"required\" or a function can)");
      }
    }
  }
  if (const auto p = field_of(root, "parallel_tool_calls"); p && p->is_bool() && written > 0) {
    body.key("parallel_tool_calls").value(p->get_bool().value_unsafe());
  }
  return ok();
}

Status write_text_format(BodyWriter& body, const object& root, Protocol toward) {
  const auto text = object_of(root, "text");
  if (!text) {
    return ok();
  }
  const auto format = object_of(*text, "format");
  if (!format) {
    return ok();
  }
  const std::string_view type = string_of(*format, "type").value_or("text");
  if (type == "text") {
    return ok();
  }
  if (toward == Protocol::anthropic) {
    return refuse("text.format", "\"" + std::string(type) +
                                     "\" cannot be enforced on an Anthropic model; describe the "
                                     "format in the prompt or use a tool");
  }
  if (type == "json_object") {
    body.key("response_format").begin_object().field("type", "json_object").end_object();
    return ok();
  }
  if (type != "json_schema") {
    return refuse("text.format.type", "must be \"text\", \"json_object\" or \"json_schema\"");
  }
  const auto schema = field_of(*format, "schema");
  if (!schema) {
    return refuse("text.format.schema", "is required");
  }
  JsonWriter& w = body.key("response_format").begin_object().field("type", "json_schema");
  w.key("json_schema").begin_object();
  w.field("name", string_of(*format, "name").value_or("response"));
  if (const auto d = string_of(*format, "description")) {
    w.field("description", *d);
  }
  w.key("schema");
  write_element(w, *schema);
  if (const auto strict = field_of(*format, "strict"); strict && strict->is_bool()) {
    w.field("strict", strict->get_bool().value_unsafe());
  }
  w.end_object().end_object();
  return ok();
}

// ---- Responses request -> Anthropic messages request ----

// A message item's content as text: a string, or its text parts joined.
std::string content_text(const element& content) {
  std::string_view s;
  if (!content.get(s)) {
    return std::string(s);
  }
  array parts;
  if (!content.get(parts)) {
    return text_of_parts(parts);
  }
  return {};
}

// A user message's content as blocks of the user turn: one text block when it is all text,
// else a block per part (text, or an image by URL or base64 data URL).
Status write_user_blocks(TurnWriter& turns, const element& content, const std::string& at) {
  std::string_view s;
  if (!content.get(s)) {
    if (!s.empty()) {
      turns.block("user").begin_object().field("type", "text").field("text", s).end_object();
    }
    return ok();
  }
  array parts;
  if (content.get(parts)) {
    return refuse(at, "must be a string or an array of content parts");
  }
  const auto all_text = parts_all_text(parts, at);
  if (!all_text) {
    return all_text.error();
  }
  if (all_text.value()) {
    const std::string text = text_of_parts(parts);
    if (!text.empty()) {
      turns.block("user")
          .begin_object()
          .field("type", "text")
          .field("text", std::string_view(text))
          .end_object();
    }
    return ok();
  }
  size_t i = 0;
  for (const element p : parts) {
    const object part = p.get_object().value_unsafe();
    const std::string part_at = at_index(at, i++);
    const std::string_view type = string_of(part, "type").value_or("");
    if (type != "input_image") {
      const std::string_view text =
          string_of(part, type == "refusal" ? "refusal" : "text").value_or("");
      if (!text.empty()) {
        turns.block("user").begin_object().field("type", "text").field("text", text).end_object();
      }
      continue;
    }
    const auto url = string_of(part, "image_url");
    if (!url) {
      return refuse(part_at + ".image_url",
                    "is required: modelmux cannot resolve a file_id for this target");
    }
    std::string_view media_type;
    std::string_view data;
    JsonWriter w = turns.block("user");
    w.begin_object().field("type", "image").key("source").begin_object();
    if (split_data_url(*url, media_type, data)) {
      w.field("type", "base64").field("media_type", media_type).field("data", data);
    } else if (url->substr(0, 8) == "https://" || url->substr(0, 7) == "http://") {
      w.field("type", "url").field("url", *url);
    } else {
      return refuse(part_at + ".image_url", "must be a base64 data URL or an http(s) URL");
    }
    w.end_object().end_object();
  }
  return ok();
}

// An assistant turn being built from consecutive assistant items: its text, then its calls.
class AnthropicAssistant {
public:
  explicit AnthropicAssistant(TurnWriter& turns) : m_turns(turns) {}

  void text(std::string_view t) {
    if (!m_calls.empty()) {
      flush();
    }
    m_text += t;
  }
  // arguments must be a JSON object, which a tool_use input is.
  Status call(std::string_view id, std::string_view name, std::string_view arguments,
              const std::string& at) {
    const auto input = arguments_object(arguments);
    if (!input) {
      return refuse(at + ".arguments", "must be a JSON object in a string");
    }
    m_calls.push_back({std::string(id), std::string(name), std::string(*input)});
    return ok();
  }
  void flush() {
    if (!m_text.empty()) {
      m_turns.block("assistant")
          .begin_object()
          .field("type", "text")
          .field("text", std::string_view(m_text))
          .end_object();
    }
    for (const auto& c : m_calls) {
      m_turns.block("assistant")
          .begin_object()
          .field("type", "tool_use")
          .field("id", std::string_view(c.id))
          .field("name", std::string_view(c.name))
          .key("input")
          .raw(c.input)
          .end_object();
    }
    m_text.clear();
    m_calls.clear();
  }

private:
  struct Call {
    std::string id;
    std::string name;
    std::string input;
  };
  TurnWriter& m_turns;
  std::string m_text;
  std::vector<Call> m_calls;
};

// Items as Anthropic turns; system and developer messages are in the system prompt already.
class AnthropicSink final : public ItemSink {
public:
  explicit AnthropicSink(TurnWriter& turns) : m_turns(turns), m_assistant(turns) {}

  Status message(std::string_view role, const element& content, const std::string& at) override {
    m_assistant.flush();
    return role == "user" ? write_user_blocks(m_turns, content, at) : ok();
  }
  void assistant_text(std::string_view text) override { m_assistant.text(text); }
  Status call(std::string_view call_id, std::string_view name, std::string_view arguments,
              const std::string& at) override {
    return m_assistant.call(call_id, name, arguments, at);
  }
  void call_output(std::string_view call_id, std::string_view output) override {
    m_assistant.flush();
    m_turns.block("user")
        .begin_object()
        .field("type", "tool_result")
        .field("tool_use_id", call_id)
        .field("content", output)
        .end_object();
  }
  void flush() { m_assistant.flush(); }

private:
  TurnWriter& m_turns;
  AnthropicAssistant m_assistant;
};

Status write_anthropic_system_and_messages(BodyWriter& body, const object& root,
                                           const element& input) {
  // System and developer items go to the top-level system prompt, in order, after instructions.
  std::vector<std::string> system;
  if (const auto instructions = string_of(root, "instructions");
      instructions && !instructions->empty()) {
    system.emplace_back(*instructions);
  }
  array items;
  const bool is_array = !input.get(items);
  if (is_array) {
    for (const element it : items) {
      object item;
      if (it.get(item)) {
        continue; // refused below, with its index
      }
      const auto role = string_of(item, "role");
      const std::string_view type = string_of(item, "type").value_or(role ? "message" : "");
      if (type == "message" && role && (*role == "system" || *role == "developer")) {
        if (const auto content = field_of(item, "content")) {
          system.push_back(content_text(*content));
        }
      }
    }
  }
  write_anthropic_system(body, system);

  JsonWriter& w = body.key("messages").begin_array();
  TurnWriter turns(w);
  std::string_view text;
  if (!input.get(text)) {
    if (!text.empty()) {
      turns.block("user").begin_object().field("type", "text").field("text", text).end_object();
    }
  } else if (!is_array) {
    return refuse("input", "must be a string or an array of items");
  } else {
    AnthropicSink sink(turns);
    if (auto st = walk_items(items, sink); !st) {
      return st;
    }
    sink.flush();
  }
  turns.flush();
  w.end_array();
  return ok();
}

Status write_anthropic_tools(BodyWriter& body, const object& root, ResponsesTools& tools) {
  const auto list = array_of(root, "tools");
  size_t written = 0;
  std::string buffer;
  if (list && list->size() > 0) {
    JsonWriter w(buffer);
    w.begin_array();
    size_t i = 0;
    for (const element t : *list) {
      if (auto st =
              write_tool(w, t, at_index("tools", i++), {}, Protocol::anthropic, tools, written);
          !st) {
        return st;
      }
    }
    w.end_array();
  }
  // tool_choice is checked whether or not a tool is left to send.
  std::string_view choice = "auto";
  std::string_view name;
  bool has_choice = false;
  if (const auto c = field_of(root, "tool_choice")) {
    has_choice = true;
    std::string_view s;
    object o;
    if (!c->get(s)) {
      if (s != "auto" && s != "none" && s != "required") {
        return refuse("tool_choice", "must be \"auto\", \"none\", \"required\" or a function");
      }
      if (s == "required" && written == 0) {
        return refuse("tool_choice", "requires a tool, and this target is offered none it can run");
      }
      choice = s == "required" ? "any" : s;
    } else if (!c->get(o)) {
      const std::string_view type = string_of(o, "type").value_or("");
      const auto named = string_of(o, "name");
      if ((type != "function" && type != "custom") || !named) {
        return refuse("tool_choice", "\"" + std::string(type) +
                                         "\" cannot be enforced on this target (\"auto\", "
                                         "\"none\", \"required\" or a function can)");
      }
      choice = "tool";
      name = *named;
    }
  }
  if (written == 0) {
    return ok();
  }
  body.key("tools").raw(buffer);
  bool parallel = true;
  if (const auto p = field_of(root, "parallel_tool_calls"); p && p->is_bool()) {
    parallel = p->get_bool().value_unsafe();
  }
  write_anthropic_tool_choice(body, has_choice, choice, name, parallel);
  return ok();
}

// The fields no target can take through translation: unknown ones, and those that ask for
// what only OpenAI's own service does.
Status check_fields(const object& root) {
  for (const auto field : root) {
    if (!known_field(field.key)) {
      return refuse(std::string(field.key),
                    "is not a Responses API field modelmux can translate for this target");
    }
  }
  if (const auto background = field_of(root, "background");
      background && background->is_bool() && background->get_bool().value_unsafe()) {
    return refuse("background", "asks for a background response, which this target cannot run");
  }
  if (const auto logprobs = field_of(root, "top_logprobs")) {
    int64_t n = 0;
    if (logprobs->get(n) || n != 0) {
      return refuse("top_logprobs", "is not available from this target through modelmux");
    }
  }
  return ok();
}

} // namespace

const std::string* ResponsesTools::namespace_of(std::string_view name) const {
  for (const auto& [tool, ns] : namespaced) {
    if (tool == name) {
      return &ns;
    }
  }
  return nullptr;
}

bool ResponsesTools::is_custom(std::string_view name) const {
  for (const auto& c : custom) {
    if (c == name) {
      return true;
    }
  }
  return false;
}

Result<std::string> responses_request_to_chat(const element& request, const element& input,
                                              std::string_view upstream_model,
                                              const std::vector<Param>& defaults, Protocol toward,
                                              ResponsesTools& tools,
                                              std::optional<int64_t> max_output_tokens) {
  const object root = request.get_object().value_unsafe();
  if (auto st = check_fields(root); !st) {
    return st.error();
  }
  std::string out;
  out.reserve(512);
  BodyWriter body(out);
  body.key("model").value(upstream_model);
  if (auto st = write_messages(body, root, input); !st) {
    return st.error();
  }
  if (const auto v = field_of(root, "max_output_tokens")) {
    write_token_limit(body.key("max_tokens"), *v, max_output_tokens);
  }
  for (const char* same : {"temperature", "top_p"}) {
    if (const auto v = field_of(root, same)) {
      write_element(body.key(same), *v);
    }
  }
  if (const auto reasoning = object_of(root, "reasoning")) {
    if (const auto effort = string_of(*reasoning, "effort")) {
      body.key("reasoning_effort").value(*effort);
    }
  }
  if (auto st = write_text_format(body, root, toward); !st) {
    return st.error();
  }
  if (auto st = write_tools(body, root, tools); !st) {
    return st.error();
  }
  if (const auto user = string_of(root, "user")) {
    body.key("user").value(*user);
  }
  if (const auto stream = field_of(root, "stream");
      stream && stream->is_bool() && stream->get_bool().value_unsafe()) {
    body.key("stream").value(true);
    body.key("stream_options").begin_object().field("include_usage", true).end_object();
  }
  body.defaults(defaults);
  body.close();
  return out;
}

std::string responses_input_items(const element& input) {
  std::string out;
  std::string_view text;
  if (!input.get(text)) {
    JsonWriter(out)
        .begin_object()
        .field("type", "message")
        .field("role", "user")
        .field("content", text)
        .end_object();
    return out;
  }
  array items;
  if (input.get(items)) {
    return out;
  }
  for (const element item : items) {
    if (!out.empty()) {
      out.push_back(',');
    }
    out += simdjson::minify(item);
  }
  return out;
}

Result<std::string> responses_request_to_anthropic(const element& request, const element& input,
                                                   std::string_view upstream_model,
                                                   const std::vector<Param>& defaults,
                                                   ResponsesTools& tools,
                                                   std::optional<int64_t> max_output_tokens) {
  const object root = request.get_object().value_unsafe();
  if (auto st = check_fields(root); !st) {
    return st.error();
  }
  std::string out;
  out.reserve(512);
  BodyWriter body(out);
  body.key("model").value(upstream_model);
  if (auto st = write_anthropic_system_and_messages(body, root, input); !st) {
    return st.error();
  }
  if (const auto v = field_of(root, "max_output_tokens")) {
    write_token_limit(body.key("max_tokens"), *v, max_output_tokens);
  }
  for (const char* same : {"temperature", "top_p"}) {
    if (const auto v = field_of(root, same)) {
      write_element(body.key(same), *v);
    }
  }
  if (auto st = write_text_format(body, root, Protocol::anthropic); !st) {
    return st.error();
  }
  if (const auto stream = field_of(root, "stream");
      stream && stream->is_bool() && stream->get_bool().value_unsafe()) {
    body.key("stream").value(true);
  }
  if (const auto user = string_of(root, "user")) {
    body.key("metadata").begin_object().field("user_id", *user).end_object();
  }
  if (auto st = write_anthropic_tools(body, root, tools); !st) {
    return st.error();
  }
  int64_t thinking_budget = 0;
  if (const auto reasoning = object_of(root, "reasoning")) {
    if (const auto effort = string_of(*reasoning, "effort")) {
      thinking_budget = thinking_budget_for(*effort);
      if (thinking_budget < 0) {
        return refuse("reasoning.effort", "must be \"none\", \"minimal\", \"low\", "
                                          "\"medium\" or \"high\"");
      }
    }
  }
  close_anthropic_body(body, root, defaults, thinking_budget, int_of(root, "max_output_tokens", 0),
                       max_output_tokens);
  return out;
}

std::string responses_request_with_input(const element& request, const element& input,
                                         std::string_view upstream_model,
                                         std::optional<int64_t> max_output_tokens) {
  const object root = request.get_object().value_unsafe();
  std::string out;
  out.reserve(1024);
  JsonWriter w(out);
  w.begin_object().field("model", upstream_model);
  w.key("input");
  write_element(w, input);
  for (const auto field : root) {
    if (field.key == "model" || field.key == "input" || field.key == "previous_response_id") {
      continue;
    }
    if (field.key == "max_output_tokens") {
      write_token_limit(w.key(field.key), field.value, max_output_tokens);
    } else {
      write_element(w.key(field.key), field.value);
    }
  }
  w.end_object();
  return out;
}

} // namespace modelmux
