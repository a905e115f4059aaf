// OpenAI chat completions request <-> Anthropic messages request. Requests are read from the
// DOM the request validation already built and written with JsonWriter; subtrees with the same
// meaning in both protocols (JSON schemas, tool inputs, numbers) are copied as minified JSON.
#include "modelmux/translate.h"
#include "translation/dom.h"

#include <algorithm>

namespace modelmux {

namespace {

using namespace dom;

// A tool's name, description and JSON schema, the schema moved from one protocol's key to the
// other's (OpenAI "parameters", Anthropic "input_schema"); no schema means no arguments.
void write_tool_fields(JsonWriter& w, const object& from, std::string_view schema_from,
                       std::string_view schema_to) {
  w.field("name", string_of(from, "name").value_or(""));
  if (const auto d = string_of(from, "description")) {
    w.field("description", *d);
  }
  w.key(schema_to);
  if (const auto schema = field_of(from, schema_from)) {
    write_element(w, *schema);
  } else {
    w.raw(R"({"type":"object","properties":{}})");
  }
}

// Anthropic's thinking (a budget, or "adaptive" with output_config.effort) as an OpenAI
// reasoning_effort; nothing when thinking is off or the request leaves the effort to the model.
std::optional<std::string_view> reasoning_effort_for_thinking(const object& root) {
  const auto thinking = object_of(root, "thinking");
  if (!thinking) {
    return std::nullopt;
  }
  const std::string_view type = string_of(*thinking, "type").value_or("");
  if (type == "enabled") {
    return effort_for_thinking_budget(int_of(*thinking, "budget_tokens"));
  }
  if (type == "adaptive") {
    if (const auto config = object_of(root, "output_config")) {
      const std::string_view effort = string_of(*config, "effort").value_or("");
      if (effort == "low" || effort == "medium" || effort == "high") {
        return effort;
      }
      if (effort == "max") {
        return "high";
      }
    }
  }
  return std::nullopt;
}
// ---- OpenAI request -> Anthropic request ----

// The OpenAI fields that would silently change the answer if dropped.
Status refuse_openai_only_fields(const object& root) {
  if (const auto n = field_of(root, "n")) {
    int64_t v = 0;
    if (n->get(v) || v != 1) {
      return refuse("n", "asks for several choices, and an Anthropic model answers with one");
    }
  }
  if (const auto lp = field_of(root, "logprobs"); lp && lp->is_bool() && lp->get_bool().value()) {
    return refuse("logprobs", "is not available from an Anthropic model");
  }
  if (field_of(root, "top_logprobs")) {
    return refuse("top_logprobs", "is not available from an Anthropic model");
  }
  if (const auto rf = object_of(root, "response_format")) {
    const auto type = string_of(*rf, "type");
    if (type && *type != "text") {
      return refuse("response_format", "\"" + std::string(*type) +
                                           "\" cannot be enforced on an Anthropic model; "
                                           "describe the format in the prompt or use a tool");
    }
  }
  for (const char* penalty : {"presence_penalty", "frequency_penalty"}) {
    double v = 0;
    if (const auto p = field_of(root, penalty); p && !p->get(v) && v != 0.0) {
      return refuse(penalty, "has no Anthropic equivalent");
    }
  }
  if (const auto bias = object_of(root, "logit_bias"); bias && bias->size() > 0) {
    return refuse("logit_bias", "has no Anthropic equivalent");
  }
  for (const char* field :
       {"audio", "prediction", "web_search_options", "functions", "function_call"}) {
    if (field_of(root, field)) {
      return refuse(field, std::string_view(field).substr(0, 8) == "function"
                               ? "is the deprecated form of 'tools'; send 'tools' instead"
                               : "has no Anthropic equivalent");
    }
  }
  if (const auto modalities = array_of(root, "modalities")) {
    for (const element m : *modalities) {
      std::string_view s;
      if (!m.get(s) && s != "text") {
        return refuse("modalities", "asks for \"" + std::string(s) +
                                        "\" output, and an Anthropic model answers in text");
      }
    }
  }
  return ok();
}

// Writes one Anthropic content block for an OpenAI content part (nothing for empty text).
Status write_anthropic_block_for_part(JsonWriter& w, const element& part, const std::string& at,
                                      bool& wrote) {
  wrote = false;
  object p;
  if (part.get(p)) {
    return refuse(at, "must be an object");
  }
  const std::string_view type = string_of(p, "type").value_or("");
  if (type == "text" || type == "refusal") {
    const std::string_view text = string_of(p, type).value_or("");
    if (!text.empty()) {
      w.begin_object().field("type", "text").field("text", text).end_object();
      wrote = true;
    }
    return ok();
  }
  if (type == "image_url") {
    std::string_view url;
    if (const auto image = object_of(p, "image_url")) {
      url = string_of(*image, "url").value_or("");
    } else {
      url = string_of(p, "image_url").value_or("");
    }
    std::string_view media_type;
    std::string_view data;
    w.begin_object().field("type", "image").key("source").begin_object();
    if (split_data_url(url, media_type, data)) {
      w.field("type", "base64").field("media_type", media_type).field("data", data);
    } else if (url.substr(0, 8) == "https://" || url.substr(0, 7) == "http://") {
      w.field("type", "url").field("url", url);
    } else {
      return refuse(at + ".image_url.url", "must be a base64 data URL or an http(s) URL");
    }
    w.end_object().end_object();
    wrote = true;
    return ok();
  }
  return refuse(at + ".type",
                "\"" + std::string(type) + "\" content cannot be sent to an Anthropic model");
}

Status write_openai_content_as_blocks(TurnWriter& turns, std::string_view role,
                                      const element& content, const std::string& at) {
  std::string_view text;
  if (!content.get(text)) {
    if (!text.empty()) {
      turns.block(role).begin_object().field("type", "text").field("text", text).end_object();
    }
    return ok();
  }
  array parts;
  if (content.get(parts)) {
    return ok(); // null content
  }
  size_t j = 0;
  for (const element part : parts) {
    JsonWriter w = turns.block(role);
    bool wrote = false;
    if (auto st = write_anthropic_block_for_part(w, part,
                                                 at + ".content[" + std::to_string(j) + "]", wrote);
        !st) {
      return st;
    }
    if (!wrote) {
      turns.drop_separator();
    }
    ++j;
  }
  return ok();
}

Status write_anthropic_messages(BodyWriter& body, const array& messages) {
  // System and developer messages go to the top-level system prompt, in order.
  std::vector<std::string> system;
  for (const element m : messages) {
    const object msg = m.get_object().value_unsafe();
    const std::string_view role = string_of(msg, "role").value_or("");
    if (role == "system" || role == "developer") {
      if (const auto c = field_of(msg, "content")) {
        system.push_back(text_of_content(*c));
      }
    }
  }
  write_anthropic_system(body, system);

  JsonWriter& w = body.key("messages").begin_array();
  TurnWriter turns(w);
  size_t i = 0;
  for (const element m : messages) {
    const std::string at = "messages[" + std::to_string(i++) + "]";
    const object msg = m.get_object().value_unsafe();
    const std::string_view role = string_of(msg, "role").value_or("");
    const auto content = field_of(msg, "content");
    if (role == "system" || role == "developer") {
      continue;
    }
    if (role == "user") {
      if (content) {
        if (auto st = write_openai_content_as_blocks(turns, "user", *content, at); !st) {
          return st;
        }
      }
    } else if (role == "assistant") {
      if (content) {
        if (auto st = write_openai_content_as_blocks(turns, "assistant", *content, at); !st) {
          return st;
        }
      }
      if (const auto calls = array_of(msg, "tool_calls")) {
        size_t j = 0;
        for (const element c : *calls) {
          const std::string call_at = at + ".tool_calls[" + std::to_string(j++) + "]";
          object call;
          object function;
          if (c.get(call) || call["function"].get(function)) {
            return refuse(call_at, "must be an object with a 'function'");
          }
          const auto args = arguments_object(string_of(function, "arguments").value_or(""));
          if (!args) {
            return refuse(call_at + ".function.arguments", "must be a JSON object in a string");
          }
          turns.block("assistant")
              .begin_object()
              .field("type", "tool_use")
              .field("id", string_of(call, "id").value_or(""))
              .field("name", string_of(function, "name").value_or(""))
              .key("input")
              .raw(*args)
              .end_object();
        }
      }
    } else if (role == "tool") {
      JsonWriter b = turns.block("user");
      b.begin_object()
          .field("type", "tool_result")
          .field("tool_use_id", string_of(msg, "tool_call_id").value_or(""));
      std::string_view text;
      if (content && !content->get(text)) {
        b.field("content", text);
      } else if (content) {
        b.field("content", std::string_view(text_of_content(*content)));
      }
      b.end_object();
    } else {
      return refuse(at + ".role", "\"" + std::string(role) +
                                      "\" cannot be sent to an Anthropic model (use "
                                      "system, developer, user, assistant or tool)");
    }
  }
  turns.flush();
  w.end_array();
  return ok();
}

Status write_anthropic_tools(BodyWriter& body, const object& root) {
  const auto tools = array_of(root, "tools");
  if (!tools || tools->size() == 0) {
    return ok();
  }
  JsonWriter& w = body.key("tools").begin_array();
  size_t i = 0;
  for (const element t : *tools) {
    const std::string at = "tools[" + std::to_string(i++) + "]";
    object tool;
    object function;
    if (t.get(tool) || string_of(tool, "type").value_or("function") != "function" ||
        tool["function"].get(function)) {
      return refuse(at, "must be a function tool to be sent to an Anthropic model");
    }
    w.begin_object();
    write_tool_fields(w, function, "parameters", "input_schema");
    w.end_object();
  }
  w.end_array();

  bool parallel = true;
  if (const auto p = field_of(root, "parallel_tool_calls"); p && p->is_bool()) {
    parallel = p->get_bool().value();
  }
  std::string_view choice = "auto";
  std::string_view name;
  const auto given = field_of(root, "tool_choice");
  if (const auto& c = given) {
    std::string_view s;
    object o;
    if (!c->get(s)) {
      if (s == "none") {
        choice = "none";
      } else if (s == "required") {
        choice = "any";
      } else if (s != "auto") {
        return refuse("tool_choice", "must be \"auto\", \"none\", \"required\" or a function");
      }
    } else if (!c->get(o)) {
      object function;
      if (o["function"].get(function) || !string_of(function, "name")) {
        return refuse("tool_choice", "must name a function");
      }
      choice = "tool";
      name = *string_of(function, "name");
    }
  }
  write_anthropic_tool_choice(body, given.has_value(), choice, name, parallel);
  return ok();
}

// ---- Anthropic request -> OpenAI request ----

Status write_openai_part_for_block(JsonWriter& w, const object& block, const std::string& at) {
  const std::string_view type = string_of(block, "type").value_or("");
  if (type == "text") {
    w.begin_object().field("type", "text").field("text", string_of(block, "text").value_or(""));
    w.end_object();
    return ok();
  }
  if (type == "image") {
    const auto source = object_of(block, "source");
    const std::string_view kind = source ? string_of(*source, "type").value_or("") : "";
    std::string url;
    if (kind == "base64") {
      url = "data:" + std::string(string_of(*source, "media_type").value_or("")) + ";base64," +
            std::string(string_of(*source, "data").value_or(""));
    } else if (kind == "url") {
      url = std::string(string_of(*source, "url").value_or(""));
    } else {
      return refuse(at + ".source", "must be a base64 or url image source");
    }
    w.begin_object().field("type", "image_url").key("image_url").begin_object();
    w.field("url", std::string_view(url)).end_object().end_object();
    return ok();
  }
  return refuse(at + ".type", "\"" + std::string(type) +
                                  "\" content cannot be sent to an OpenAI-compatible model");
}

// One Anthropic user turn: its tool results become tool messages (first, as OpenAI wants them
// right after the assistant's tool calls), the rest one user message.
Status write_openai_user_turn(JsonWriter& w, const element& content, const std::string& at) {
  std::string_view text;
  if (!content.get(text)) {
    w.begin_object().field("role", "user").field("content", text).end_object();
    return ok();
  }
  const array blocks = content.get_array().value_unsafe();
  std::string parts;
  size_t part_count = 0;
  std::string_view only_text;
  size_t j = 0;
  auto add_part = [&](const object& block, const std::string& block_at) -> Status {
    if (part_count > 0) {
      parts.push_back(',');
    }
    JsonWriter pw(parts);
    if (auto st = write_openai_part_for_block(pw, block, block_at); !st) {
      return st;
    }
    only_text = string_of(block, "text").value_or("");
    ++part_count;
    return ok();
  };
  for (const element b : blocks) {
    const std::string block_at = at + ".content[" + std::to_string(j++) + "]";
    object block;
    if (b.get(block)) {
      return refuse(block_at, "must be an object");
    }
    const std::string_view type = string_of(block, "type").value_or("");
    if (type == "thinking" || type == "redacted_thinking") {
      continue;
    }
    if (type != "tool_result") {
      if (auto st = add_part(block, block_at); !st) {
        return st;
      }
      continue;
    }
    w.begin_object()
        .field("role", "tool")
        .field("tool_call_id", string_of(block, "tool_use_id").value_or(""));
    std::string result_text;
    if (const auto c = field_of(block, "content")) {
      result_text = text_of_content(*c, "\n");
      // Images a tool returned go to the model in the user message after the results.
      array result_blocks;
      if (!c->get(result_blocks)) {
        size_t k = 0;
        for (const element rb : result_blocks) {
          object rblock;
          const std::string rat = block_at + ".content[" + std::to_string(k++) + "]";
          if (!rb.get(rblock) && string_of(rblock, "type").value_or("") == "image") {
            if (auto st = add_part(rblock, rat); !st) {
              return st;
            }
          }
        }
      }
    }
    w.field("content", std::string_view(result_text)).end_object();
  }
  if (part_count == 1 && parts.find("\"type\":\"text\"") != std::string::npos) {
    w.begin_object().field("role", "user").field("content", only_text).end_object();
  } else if (part_count > 0) {
    w.begin_object().field("role", "user").key("content").raw("[" + parts + "]").end_object();
  }
  return ok();
}

Status write_openai_assistant_turn(JsonWriter& w, const element& content, const std::string& at) {
  std::string_view text;
  if (!content.get(text)) {
    w.begin_object().field("role", "assistant").field("content", text).end_object();
    return ok();
  }
  const array blocks = content.get_array().value_unsafe();
  std::string joined;
  std::string calls;
  size_t call_count = 0;
  size_t j = 0;
  for (const element b : blocks) {
    const std::string block_at = at + ".content[" + std::to_string(j++) + "]";
    object block;
    if (b.get(block)) {
      return refuse(block_at, "must be an object");
    }
    const std::string_view type = string_of(block, "type").value_or("");
    if (type == "text") {
      joined += string_of(block, "text").value_or("");
    } else if (type == "tool_use") {
      if (call_count++ > 0) {
        calls.push_back(',');
      }
      JsonWriter cw(calls);
      cw.begin_object()
          .field("id", string_of(block, "id").value_or(""))
          .field("type", "function")
          .key("function")
          .begin_object()
          .field("name", string_of(block, "name").value_or(""));
      const auto input = field_of(block, "input");
      const std::string args = input ? simdjson::minify(*input) : std::string("{}");
      cw.field("arguments", std::string_view(args)).end_object().end_object();
    } else if (type == "thinking" || type == "redacted_thinking") {
      continue; // an OpenAI-compatible model takes no thinking blocks
    } else {
      return refuse(block_at + ".type", "\"" + std::string(type) +
                                            "\" content cannot be sent to an OpenAI-compatible "
                                            "model");
    }
  }
  w.begin_object().field("role", "assistant").key("content");
  if (joined.empty() && call_count > 0) {
    w.null();
  } else {
    w.value(std::string_view(joined));
  }
  if (call_count > 0) {
    w.key("tool_calls").raw("[" + calls + "]");
  }
  w.end_object();
  return ok();
}

Status write_openai_tools(BodyWriter& body, const object& root) {
  const auto tools = array_of(root, "tools");
  if (tools && tools->size() > 0) {
    JsonWriter& w = body.key("tools").begin_array();
    size_t i = 0;
    for (const element t : *tools) {
      const std::string at = "tools[" + std::to_string(i++) + "]";
      object tool;
      if (t.get(tool)) {
        return refuse(at, "must be an object");
      }
      const std::string_view type = string_of(tool, "type").value_or("custom");
      if (type != "custom") {
        return refuse(at + ".type", "\"" + std::string(type) +
                                        "\" is an Anthropic server tool, which an "
                                        "OpenAI-compatible model cannot run");
      }
      w.begin_object().field("type", "function").key("function").begin_object();
      write_tool_fields(w, tool, "input_schema", "parameters");
      w.end_object().end_object();
    }
    w.end_array();
  }
  const auto choice = object_of(root, "tool_choice");
  if (!choice) {
    return ok();
  }
  const std::string_view type = string_of(*choice, "type").value_or("auto");
  if (tools && tools->size() > 0) {
    if (type == "auto" || type == "none") {
      body.key("tool_choice").value(type);
    } else if (type == "any") {
      body.key("tool_choice").value("required");
    } else if (type == "tool") {
      body.key("tool_choice")
          .begin_object()
          .field("type", "function")
          .key("function")
          .begin_object()
          .field("name", string_of(*choice, "name").value_or(""))
          .end_object()
          .end_object();
    } else {
      return refuse("tool_choice.type", "must be auto, any, tool or none");
    }
  }
  const auto disable = field_of(*choice, "disable_parallel_tool_use");
  if (disable && disable->is_bool() && disable->get_bool().value() && type != "none") {
    body.key("parallel_tool_calls").value(false);
  }
  return ok();
}
} // namespace

// ---- requests ----

Result<std::string> openai_request_to_anthropic(const element& request,
                                                std::string_view upstream_model,
                                                const std::vector<Param>& defaults,
                                                std::optional<int64_t> max_output_tokens) {
  const object root = request.get_object().value_unsafe();
  if (auto st = refuse_openai_only_fields(root); !st) {
    return st.error();
  }
  std::string out;
  out.reserve(256);
  BodyWriter body(out);
  body.key("model").value(upstream_model);
  if (auto st = write_anthropic_messages(body, root["messages"].get_array().value_unsafe()); !st) {
    return st.error();
  }
  // max_completion_tokens is the newer spelling of max_tokens; it wins when both are sent.
  for (const char* limit : {"max_completion_tokens", "max_tokens"}) {
    if (const auto v = field_of(root, limit); v && !body.written("max_tokens")) {
      write_token_limit(body.key("max_tokens"), *v, max_output_tokens);
    }
  }
  for (const char* same : {"temperature", "top_p"}) {
    if (const auto v = field_of(root, same)) {
      write_element(body.key(same), *v);
    }
  }
  if (const auto stop = field_of(root, "stop")) {
    std::string_view one;
    if (!stop->get(one)) {
      body.key("stop_sequences").begin_array().value(one).end_array();
    } else {
      write_element(body.key("stop_sequences"), *stop);
    }
  }
  if (const auto stream = field_of(root, "stream"); stream && stream->is_bool()) {
    body.key("stream").value(stream->get_bool().value());
  }
  if (const auto user = string_of(root, "user")) {
    body.key("metadata").begin_object().field("user_id", *user).end_object();
  }
  if (auto st = write_anthropic_tools(body, root); !st) {
    return st.error();
  }
  int64_t thinking_budget = 0;
  if (const auto effort = string_of(root, "reasoning_effort")) {
    thinking_budget = thinking_budget_for(*effort);
    if (thinking_budget < 0) {
      return refuse("reasoning_effort", "must be \"none\", \"minimal\", \"low\", \"medium\" or "
                                        "\"high\"");
    }
  }
  close_anthropic_body(body, root, defaults, thinking_budget,
                       int_of(root, "max_completion_tokens", int_of(root, "max_tokens", 0)),
                       max_output_tokens);
  return out;
}

Result<std::string> anthropic_request_to_openai(const element& request,
                                                std::string_view upstream_model,
                                                const std::vector<Param>& defaults,
                                                std::optional<int64_t> max_output_tokens) {
  const object root = request.get_object().value_unsafe();
  std::string out;
  out.reserve(256);
  BodyWriter body(out);
  body.key("model").value(upstream_model);
  JsonWriter& w = body.key("messages").begin_array();
  if (const auto system = field_of(root, "system")) {
    const std::string text = text_of_content(*system, "\n\n");
    if (!text.empty()) {
      w.begin_object().field("role", "system").field("content", std::string_view(text));
      w.end_object();
    }
  }
  size_t i = 0;
  const array messages = root["messages"].get_array().value_unsafe();
  for (const element m : messages) {
    const std::string at = "messages[" + std::to_string(i++) + "]";
    const object msg = m.get_object().value_unsafe();
    const std::string_view role = string_of(msg, "role").value_or("");
    const auto content = field_of(msg, "content");
    if (!content) {
      return refuse(at + ".content", "is required");
    }
    Status st = ok();
    if (role == "user") {
      st = write_openai_user_turn(w, *content, at);
    } else if (role == "assistant") {
      st = write_openai_assistant_turn(w, *content, at);
    } else if (role == "system") {
      // Claude Code sends system turns mid-conversation; they stay system messages in place.
      const std::string text = text_of_content(*content, "\n\n");
      if (!text.empty()) {
        w.begin_object().field("role", "system").field("content", std::string_view(text));
        w.end_object();
      }
    } else {
      st = refuse(at + ".role", "must be \"user\", \"assistant\" or \"system\"");
    }
    if (!st) {
      return st.error();
    }
  }
  w.end_array();
  if (const auto v = field_of(root, "max_tokens")) {
    write_token_limit(body.key("max_tokens"), *v, max_output_tokens);
  }
  for (const char* same : {"temperature", "top_p"}) {
    if (const auto v = field_of(root, same)) {
      write_element(body.key(same), *v);
    }
  }
  if (const auto stop = field_of(root, "stop_sequences"); stop && stop->is_array()) {
    write_element(body.key("stop"), *stop);
  }
  if (const auto stream = field_of(root, "stream");
      stream && stream->is_bool() && stream->get_bool().value()) {
    body.key("stream").value(true);
    body.key("stream_options").begin_object().field("include_usage", true).end_object();
  }
  if (const auto metadata = object_of(root, "metadata")) {
    if (const auto user = string_of(*metadata, "user_id")) {
      body.key("user").value(*user);
    }
  }
  if (const auto effort = reasoning_effort_for_thinking(root)) {
    body.key("reasoning_effort").value(*effort);
  }
  if (auto st = write_openai_tools(body, root); !st) {
    return st.error();
  }
  body.defaults(defaults);
  body.close();
  return out;
}

} // namespace modelmux
