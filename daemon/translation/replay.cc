// Whole answers as streams and streams as whole answers, per protocol (see replay.h).

#include "modelmux/translation/replay.h"

#include "dom.h"
#include "modelmux/sse.h"

#include <cstdlib>
#include <map>

namespace modelmux {

namespace {

using namespace dom;

Error not_replayable(std::string why) {
  return make_error(ErrorKind::internal, "a cached answer cannot be replayed: " + why);
}

// One SSE event, named when the protocol names its events.
void event(std::string& out, std::string_view name, const std::string& data) {
  append_sse(out, name, data);
}

std::string minified(const element& e) {
  return std::string(simdjson::minify(e));
}

// An empty array to iterate when a field is absent (read-only once made, so shared).
const array& element_array_none() {
  static simdjson::dom::parser parser;
  static const array empty = [] {
    array a;
    if (parser.parse(std::string("[]")).get(a)) {
      std::abort();
    }
    return a;
  }();
  return empty;
}

// ---- OpenAI chat completions ----

// The chunk envelope every OpenAI stream event shares; the caller writes "choices" and closes.
void chunk_head(JsonWriter& w, const object& answer) {
  w.begin_object();
  w.field("id", string_of(answer, "id").value_or("chatcmpl-cached"));
  w.field("object", "chat.completion.chunk");
  w.field("created", int_of(answer, "created"));
  w.field("model", string_of(answer, "model").value_or(""));
  if (const auto fp = string_of(answer, "system_fingerprint")) {
    w.field("system_fingerprint", *fp);
  }
}

// A chunk with one choice whose delta is the given JSON object text.
std::string choice_chunk(const object& answer, int64_t index, const std::string& delta,
                         std::optional<std::string_view> finish_reason = std::nullopt) {
  std::string out;
  JsonWriter w(out);
  chunk_head(w, answer);
  w.key("choices").begin_array().begin_object().field("index", index);
  w.key("delta").raw(delta);
  if (finish_reason) {
    w.field("finish_reason", *finish_reason);
  } else {
    w.key("finish_reason").null();
  }
  w.end_object().end_array().end_object();
  return out;
}

Result<std::string> openai_stream(const object& answer, bool include_usage) {
  std::string out;
  const auto choices = array_of(answer, "choices");
  if (!choices) {
    return not_replayable("no choices");
  }
  if (choices->size() == 0) {
    return not_replayable("no choices");
  }
  for (const element c : *choices) {
    object choice;
    object message;
    if (c.get(choice) || choice["message"].get(message)) {
      return not_replayable("a choice without a message");
    }
    const int64_t index = int_of(choice, "index");
    std::string delta;
    JsonWriter(delta)
        .begin_object()
        .field("role", string_of(message, "role").value_or("assistant"))
        .field("content", "")
        .end_object();
    append_sse(out, {}, choice_chunk(answer, index, delta));
    for (const char* key : {"content", "reasoning_content", "refusal"}) {
      if (const auto text = string_of(message, key); text && !text->empty()) {
        delta.clear();
        JsonWriter(delta).begin_object().field(key, *text).end_object();
        append_sse(out, {}, choice_chunk(answer, index, delta));
      }
    }
    if (const auto calls = array_of(message, "tool_calls")) {
      int64_t i = 0;
      for (const element call : *calls) {
        object f;
        object call_object;
        if (call.get(call_object) || call_object["function"].get(f)) {
          return not_replayable("a tool call without a function");
        }
        delta.clear();
        JsonWriter w(delta);
        w.begin_object().key("tool_calls").begin_array().begin_object().field("index", i++);
        w.field("id", string_of(call_object, "id").value_or(""));
        w.field("type", "function").key("function").begin_object();
        w.field("name", string_of(f, "name").value_or(""));
        w.field("arguments", string_of(f, "arguments").value_or(""));
        w.end_object().end_object().end_array().end_object();
        append_sse(out, {}, choice_chunk(answer, index, delta));
      }
    }
    append_sse(
        out, {},
        choice_chunk(answer, index, "{}", string_of(choice, "finish_reason").value_or("stop")));
  }
  if (const auto usage = field_of(answer, "usage"); usage && include_usage) {
    std::string chunk;
    JsonWriter w(chunk);
    chunk_head(w, answer);
    w.key("choices").begin_array().end_array();
    w.key("usage").raw(minified(*usage));
    w.end_object();
    append_sse(out, {}, chunk);
  }
  append_sse(out, {}, "[DONE]");
  return out;
}

// What one choice of an OpenAI stream adds up to.
struct ChoiceSoFar {
  std::string role = "assistant";
  std::string content;
  bool has_content = false;
  std::string reasoning;
  std::string refusal;
  struct Call {
    std::string id;
    std::string name;
    std::string arguments;
  };
  std::map<int64_t, Call> calls;
  std::string finish_reason;
};

// ---- Anthropic messages ----

Result<std::string> anthropic_stream(const object& answer) {
  std::string out;
  std::string data;
  {
    JsonWriter w(data);
    w.begin_object().field("type", "message_start").key("message").begin_object();
    for (const auto field : answer) {
      if (field.key == "content") {
        w.key("content").begin_array().end_array();
      } else if (field.key == "stop_reason" || field.key == "stop_sequence") {
        w.key(field.key).null();
      } else if (field.key == "usage") {
        // Output tokens come at the end, in message_delta, as a live stream reports them.
        object usage;
        if (field.value.get(usage)) {
          return not_replayable("usage is not an object");
        }
        w.key("usage").begin_object();
        for (const auto u : usage) {
          if (u.key == "output_tokens") {
            w.field("output_tokens", int64_t{1});
          } else {
            w.key(u.key).raw(minified(u.value));
          }
        }
        w.end_object();
      } else {
        w.key(field.key).raw(minified(field.value));
      }
    }
    w.end_object().end_object();
  }
  event(out, "message_start", data);
  const auto content = array_of(answer, "content");
  if (!content) {
    return not_replayable("no content");
  }
  int64_t index = 0;
  for (const element b : *content) {
    object block;
    if (b.get(block)) {
      return not_replayable("a content block is not an object");
    }
    const auto type = string_of(block, "type").value_or("");
    auto emit = [&](std::string_view name, auto&& write) {
      data.clear();
      JsonWriter w(data);
      w.begin_object().field("type", name).field("index", index);
      write(w);
      w.end_object();
      event(out, name, data);
    };
    auto delta = [&](std::string_view delta_type, std::string_view key, std::string_view value) {
      emit("content_block_delta", [&](JsonWriter& w) {
        w.key("delta").begin_object().field("type", delta_type).field(key, value).end_object();
      });
    };
    if (type == "text") {
      emit("content_block_start", [&](JsonWriter& w) {
        w.key("content_block").begin_object().field("type", "text").field("text", "").end_object();
      });
      delta("text_delta", "text", string_of(block, "text").value_or(""));
    } else if (type == "tool_use" || type == "server_tool_use") {
      emit("content_block_start", [&](JsonWriter& w) {
        w.key("content_block").begin_object().field("type", type);
        w.field("id", string_of(block, "id").value_or(""));
        w.field("name", string_of(block, "name").value_or(""));
        w.key("input").begin_object().end_object().end_object();
      });
      const auto input = field_of(block, "input");
      delta("input_json_delta", "partial_json", input ? minified(*input) : "{}");
    } else if (type == "thinking") {
      emit("content_block_start", [&](JsonWriter& w) {
        w.key("content_block").begin_object().field("type", "thinking").field("thinking", "");
        w.end_object();
      });
      delta("thinking_delta", "thinking", string_of(block, "thinking").value_or(""));
      if (const auto signature = string_of(block, "signature")) {
        delta("signature_delta", "signature", *signature);
      }
    } else {
      // Blocks that arrive whole in a live stream too (redacted_thinking, tool results).
      emit("content_block_start", [&](JsonWriter& w) { w.key("content_block").raw(minified(b)); });
    }
    emit("content_block_stop", [](JsonWriter&) {});
    ++index;
  }
  data.clear();
  {
    JsonWriter w(data);
    w.begin_object().field("type", "message_delta").key("delta").begin_object();
    for (const char* key : {"stop_reason", "stop_sequence"}) {
      if (const auto v = field_of(answer, key)) {
        w.key(key).raw(minified(*v));
      } else {
        w.key(key).null();
      }
    }
    w.end_object();
    if (const auto usage = object_of(answer, "usage")) {
      w.key("usage").begin_object().field("output_tokens", int_of(*usage, "output_tokens"));
      w.end_object();
    }
    w.end_object();
  }
  event(out, "message_delta", data);
  event(out, "message_stop", R"({"type":"message_stop"})");
  return out;
}

// ---- Responses ----

class ResponsesEvents {
public:
  explicit ResponsesEvents(std::string& out) : m_out(out) {}

  // Writes one event of this type; fill writes its fields after "type" and "sequence_number".
  template <typename F> void emit(std::string_view type, F&& fill) {
    m_data.clear();
    JsonWriter w(m_data);
    w.begin_object().field("type", type).field("sequence_number", m_sequence++);
    fill(w);
    w.end_object();
    append_sse(m_out, type, m_data);
  }

private:
  std::string& m_out;
  std::string m_data;
  int64_t m_sequence = 0;
};

// The response object as it stands at the start: in progress, no output yet.
void write_response_started(JsonWriter& w, const object& response) {
  w.begin_object();
  for (const auto field : response) {
    if (field.key == "status") {
      w.field("status", "in_progress");
    } else if (field.key == "output") {
      w.key("output").begin_array().end_array();
    } else if (field.key == "usage") {
      w.key("usage").null();
    } else {
      w.key(field.key).raw(minified(field.value));
    }
  }
  w.end_object();
}

Result<std::string> responses_stream(const object& response) {
  std::string out;
  ResponsesEvents events(out);
  events.emit("response.created",
              [&](JsonWriter& w) { write_response_started(w.key("response"), response); });
  events.emit("response.in_progress",
              [&](JsonWriter& w) { write_response_started(w.key("response"), response); });
  const auto output = array_of(response, "output");
  if (!output) {
    return not_replayable("no output");
  }
  int64_t output_index = 0;
  for (const element it : *output) {
    object item;
    if (it.get(item)) {
      return not_replayable("an output item is not an object");
    }
    const auto type = string_of(item, "type").value_or("");
    const auto id = string_of(item, "id").value_or("");
    // The item as added: its content or arguments still empty.
    events.emit("response.output_item.added", [&](JsonWriter& w) {
      w.field("output_index", output_index).key("item").begin_object();
      for (const auto field : item) {
        if (field.key == "content" || field.key == "summary") {
          w.key(field.key).begin_array().end_array();
        } else if (field.key == "arguments") {
          w.field("arguments", "");
        } else if (field.key == "status") {
          w.field("status", "in_progress");
        } else {
          w.key(field.key).raw(minified(field.value));
        }
      }
      w.end_object();
    });
    if (type == "message") {
      int64_t content_index = 0;
      const auto parts = array_of(item, "content");
      for (const element p : parts ? *parts : element_array_none()) {
        object part;
        if (p.get(part)) {
          return not_replayable("a content part is not an object");
        }
        const auto part_type = string_of(part, "type").value_or("output_text");
        const auto text_key = part_type == "refusal" ? "refusal" : "text";
        const auto text = string_of(part, text_key).value_or("");
        auto located = [&](JsonWriter& w) {
          w.field("item_id", id).field("output_index", output_index);
          w.field("content_index", content_index);
        };
        events.emit("response.content_part.added", [&](JsonWriter& w) {
          located(w);
          w.key("part").begin_object().field("type", part_type).field(text_key, "");
          if (part_type == "output_text") {
            w.key("annotations").begin_array().end_array();
          }
          w.end_object();
        });
        const bool refusal = part_type == "refusal";
        events.emit(refusal ? "response.refusal.delta" : "response.output_text.delta",
                    [&](JsonWriter& w) {
                      located(w);
                      w.field("delta", text);
                    });
        events.emit(refusal ? "response.refusal.done" : "response.output_text.done",
                    [&](JsonWriter& w) {
                      located(w);
                      w.field(text_key, text);
                    });
        events.emit("response.content_part.done", [&](JsonWriter& w) {
          located(w);
          w.key("part").raw(minified(p));
        });
        ++content_index;
      }
    } else if (type == "function_call") {
      const auto arguments = string_of(item, "arguments").value_or("");
      events.emit("response.function_call_arguments.delta", [&](JsonWriter& w) {
        w.field("item_id", id).field("output_index", output_index).field("delta", arguments);
      });
      events.emit("response.function_call_arguments.done", [&](JsonWriter& w) {
        w.field("item_id", id).field("output_index", output_index).field("arguments", arguments);
      });
    }
    events.emit("response.output_item.done", [&](JsonWriter& w) {
      w.field("output_index", output_index).key("item").raw(minified(it));
    });
    ++output_index;
  }
  const auto status = string_of(response, "status").value_or("completed");
  events.emit(status == "incomplete" ? "response.incomplete" : "response.completed",
              [&](JsonWriter& w) {
                w.key("response").begin_object();
                for (const auto field : response) {
                  w.key(field.key).raw(minified(field.value));
                }
                w.end_object();
              });
  return out;
}

// ---- streams back to whole answers ----

// Collects a stream's events: name and data, in order.
class EventList : public SseHandler {
public:
  std::vector<std::pair<std::string, std::string>> events;
  void on_event(std::string_view name, std::string_view data) override {
    events.emplace_back(std::string(name), std::string(data));
  }
};

Result<std::string> openai_answer(const EventList& list) {
  simdjson::dom::parser parser;
  std::map<int64_t, ChoiceSoFar> choices;
  std::string id;
  std::string model;
  std::string fingerprint;
  int64_t created = 0;
  std::string usage;
  bool done = false;
  for (const auto& [name, data] : list.events) {
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    object chunk;
    if (parser.parse(data).get(chunk)) {
      return not_replayable("a chunk is not JSON");
    }
    if (field_of(chunk, "error")) {
      return not_replayable("the stream carried an error");
    }
    if (id.empty()) {
      id = std::string(string_of(chunk, "id").value_or(""));
      model = std::string(string_of(chunk, "model").value_or(""));
      fingerprint = std::string(string_of(chunk, "system_fingerprint").value_or(""));
      created = int_of(chunk, "created");
    }
    if (const auto u = field_of(chunk, "usage")) {
      usage = minified(*u);
    }
    const auto chunk_choices = array_of(chunk, "choices");
    for (const element c : chunk_choices ? *chunk_choices : element_array_none()) {
      object choice;
      if (c.get(choice)) {
        continue;
      }
      ChoiceSoFar& so_far = choices[int_of(choice, "index")];
      if (const auto reason = string_of(choice, "finish_reason")) {
        so_far.finish_reason = std::string(*reason);
      }
      const auto delta = object_of(choice, "delta");
      if (!delta) {
        continue;
      }
      if (const auto role = string_of(*delta, "role")) {
        so_far.role = std::string(*role);
      }
      if (const auto text = string_of(*delta, "content"); text && !text->empty()) {
        so_far.content += *text;
        so_far.has_content = true;
      }
      if (const auto text = string_of(*delta, "reasoning_content")) {
        so_far.reasoning += *text;
      }
      if (const auto text = string_of(*delta, "refusal")) {
        so_far.refusal += *text;
      }
      const auto calls = array_of(*delta, "tool_calls");
      for (const element t : calls ? *calls : element_array_none()) {
        object call;
        if (t.get(call)) {
          continue;
        }
        auto& c2 = so_far.calls[int_of(call, "index")];
        if (const auto call_id = string_of(call, "id")) {
          c2.id = std::string(*call_id);
        }
        if (const auto f = object_of(call, "function")) {
          if (const auto n = string_of(*f, "name")) {
            c2.name += *n;
          }
          if (const auto a = string_of(*f, "arguments")) {
            c2.arguments += *a;
          }
        }
      }
    }
  }
  if (choices.empty()) {
    return not_replayable("the stream carried no choice");
  }
  if (!done && std::all_of(choices.begin(), choices.end(),
                           [](const auto& c) { return c.second.finish_reason.empty(); })) {
    return not_replayable("the stream did not end");
  }
  std::string out;
  JsonWriter w(out);
  w.begin_object().field("id", std::string_view(id)).field("object", "chat.completion");
  w.field("created", created).field("model", std::string_view(model));
  if (!fingerprint.empty()) {
    w.field("system_fingerprint", std::string_view(fingerprint));
  }
  w.key("choices").begin_array();
  for (const auto& [index, c] : choices) {
    w.begin_object().field("index", index).key("message").begin_object();
    w.field("role", std::string_view(c.role));
    if (c.has_content || c.calls.empty()) {
      w.field("content", std::string_view(c.content));
    } else {
      w.key("content").null();
    }
    if (!c.reasoning.empty()) {
      w.field("reasoning_content", std::string_view(c.reasoning));
    }
    if (!c.refusal.empty()) {
      w.field("refusal", std::string_view(c.refusal));
    }
    if (!c.calls.empty()) {
      w.key("tool_calls").begin_array();
      for (const auto& [i, call] : c.calls) {
        w.begin_object().field("id", std::string_view(call.id)).field("type", "function");
        w.key("function").begin_object().field("name", std::string_view(call.name));
        w.field("arguments", std::string_view(call.arguments)).end_object().end_object();
      }
      w.end_array();
    }
    w.end_object();
    w.field("finish_reason", std::string_view(c.finish_reason.empty() ? "stop" : c.finish_reason));
    w.key("logprobs").null().end_object();
  }
  w.end_array();
  if (!usage.empty()) {
    w.key("usage").raw(usage);
  }
  w.end_object();
  return out;
}

Result<std::string> anthropic_answer(const EventList& list) {
  simdjson::dom::parser parser;
  struct Block {
    std::string start; // the content_block of content_block_start
    std::string type;
    std::string text; // text, thinking, or a tool's partial JSON
    std::string signature;
  };
  std::string message; // message_start's message
  std::map<int64_t, Block> blocks;
  std::string stop_reason = "null";
  std::string stop_sequence = "null";
  int64_t output_tokens = -1;
  bool stopped = false;
  for (const auto& [name, data] : list.events) {
    object e;
    if (parser.parse(data).get(e)) {
      return not_replayable("an event is not JSON");
    }
    const auto type = string_of(e, "type").value_or(name);
    if (type == "error") {
      return not_replayable("the stream carried an error");
    }
    if (type == "message_start") {
      if (const auto m = field_of(e, "message")) {
        message = minified(*m);
      }
    } else if (type == "content_block_start") {
      auto& b = blocks[int_of(e, "index")];
      if (const auto cb = field_of(e, "content_block")) {
        if (!cb->is_object()) {
          return not_replayable("a content block is not an object");
        }
        b.start = minified(*cb);
        std::string_view block_type;
        if (!(*cb)["type"].get(block_type)) {
          b.type = std::string(block_type);
        }
      }
    } else if (type == "content_block_delta") {
      auto& b = blocks[int_of(e, "index")];
      if (const auto d = object_of(e, "delta")) {
        for (const char* key : {"text", "partial_json", "thinking"}) {
          if (const auto v = string_of(*d, key)) {
            b.text += *v;
          }
        }
        if (const auto v = string_of(*d, "signature")) {
          b.signature += *v;
        }
      }
    } else if (type == "message_delta") {
      if (const auto d = object_of(e, "delta")) {
        if (const auto v = field_of(*d, "stop_reason")) {
          stop_reason = minified(*v);
        }
        if (const auto v = field_of(*d, "stop_sequence")) {
          stop_sequence = minified(*v);
        }
      }
      if (const auto u = object_of(e, "usage")) {
        output_tokens = int_of(*u, "output_tokens", output_tokens);
      }
    } else if (type == "message_stop") {
      stopped = true;
    }
  }
  object start;
  if (!stopped || parser.parse(message).get(start)) {
    return not_replayable("the stream did not end");
  }
  std::string out;
  JsonWriter w(out);
  w.begin_object();
  for (const auto field : start) {
    if (field.key == "content" || field.key == "stop_reason" || field.key == "stop_sequence") {
      continue;
    }
    if (field.key == "usage") {
      object usage;
      if (field.value.get(usage)) {
        return not_replayable("usage is not an object");
      }
      w.key("usage").begin_object();
      for (const auto u : usage) {
        if (u.key == "output_tokens" && output_tokens >= 0) {
          w.field("output_tokens", output_tokens);
        } else {
          w.key(u.key).raw(minified(u.value));
        }
      }
      w.end_object();
    } else {
      w.key(field.key).raw(minified(field.value));
    }
  }
  w.key("content").begin_array();
  simdjson::dom::parser block_parser;
  for (const auto& [index, b] : blocks) {
    if (b.start.empty()) {
      return not_replayable("a content block's deltas came without its start");
    }
    if (b.type == "text") {
      w.begin_object().field("type", "text").field("text", std::string_view(b.text)).end_object();
    } else if (b.type == "thinking") {
      w.begin_object().field("type", "thinking").field("thinking", std::string_view(b.text));
      w.field("signature", std::string_view(b.signature)).end_object();
    } else if (b.type == "tool_use" || b.type == "server_tool_use") {
      simdjson::dom::parser start_parser;
      object start_block;
      element input;
      if (start_parser.parse(b.start).get(start_block) ||
          block_parser.parse(b.text.empty() ? std::string("{}") : b.text).get(input)) {
        return not_replayable("a tool's input is not JSON");
      }
      w.begin_object().field("type", b.type);
      w.field("id", string_of(start_block, "id").value_or(""));
      w.field("name", string_of(start_block, "name").value_or(""));
      w.key("input").raw(minified(input)).end_object();
    } else {
      w.raw(b.start);
    }
  }
  w.end_array();
  w.key("stop_reason").raw(stop_reason).key("stop_sequence").raw(stop_sequence);
  w.end_object();
  return out;
}

Result<std::string> responses_answer(const EventList& list) {
  simdjson::dom::parser parser;
  for (auto it = list.events.rbegin(); it != list.events.rend(); ++it) {
    object e;
    if (parser.parse(it->second).get(e)) {
      continue;
    }
    const auto type = string_of(e, "type").value_or(it->first);
    if (type == "response.completed") {
      // Only a response with its output is an answer to keep; one without cannot replay.
      const auto r = field_of(e, "response");
      simdjson::dom::array output;
      if (r && r->is_object() && !(*r)["output"].get(output)) {
        return minified(*r);
      }
      break;
    }
    if (type == "response.failed" || type == "error" || type == "response.incomplete") {
      break;
    }
  }
  return not_replayable("the stream did not complete");
}

} // namespace

Result<std::string> stream_of_answer(Protocol protocol, std::string_view answer,
                                     bool include_usage) {
  simdjson::dom::parser parser;
  object root;
  if (parser.parse(answer.data(), answer.size()).get(root)) {
    return not_replayable("the stored answer is not a JSON object");
  }
  switch (protocol) {
  case Protocol::openai:
    return openai_stream(root, include_usage);
  case Protocol::anthropic:
    return anthropic_stream(root);
  case Protocol::responses:
    return responses_stream(root);
  case Protocol::any:
    break;
  }
  return not_replayable("unknown protocol");
}

Result<std::string> answer_of_stream(Protocol protocol, std::string_view stream) {
  EventList list;
  SseParser sse;
  sse.feed(stream, list);
  sse.finish(list);
  Result<std::string> answer = not_replayable("unknown protocol");
  switch (protocol) {
  case Protocol::openai:
    answer = openai_answer(list);
    break;
  case Protocol::anthropic:
    answer = anthropic_answer(list);
    break;
  case Protocol::responses:
    answer = responses_answer(list);
    break;
  case Protocol::any:
    break;
  }
  // Only an answer that replays is one to keep: what a hostile upstream put in a complete
  // stream (an output item that is not an object, say) must not become a stored answer that
  // fails every later hit.
  if (answer) {
    if (const auto replayed = stream_of_answer(protocol, answer.value(), true); !replayed) {
      return replayed.error();
    }
  }
  return answer;
}

} // namespace modelmux
