// Stream relays to a Responses client: from a chat completions stream (each chunk becomes the
// Responses events of the output item it belongs to), from an Anthropic stream (each content
// block an output item), and from a target that streams Responses itself (relayed as is,
// watched for its terminal event). Per item, a relay keeps the item's text, which the
// item's .done events repeat; the finished items are kept for response.completed, which repeats
// the whole output as the API does (bounded by server.max_answer_size like any answer).
#include "modelmux/stream_relay.h"
#include "modelmux/translation/responses.h"
#include "translation/dom.h"

namespace modelmux {

using namespace dom;

namespace {

std::string_view string_or(const object& o, std::string_view key, std::string_view fallback = {}) {
  std::string_view s;
  return o[key].get(s) ? fallback : s;
}

std::string_view error_message_of(const object& root) {
  object error;
  if (!root["error"].get(error)) {
    return string_or(error, "message", "the upstream reported an error");
  }
  return "the upstream reported an error";
}

// Writes "event: TYPE\ndata: {"type":TYPE,"sequence_number":N, <fields>}\n\n".
template <typename Fields>
void write_event(std::string& out, int64_t& sequence, std::string_view type, Fields fields) {
  out.append("event: ").append(type).append("\ndata: ");
  JsonWriter w(out);
  w.begin_object().field("type", type).field("sequence_number", sequence++);
  fields(w);
  w.end_object();
  out.append("\n\n");
}

// The Responses side of a translated stream: output items opened, filled and closed as the
// upstream's deltas arrive, each event numbered. The relays below feed it from chat chunks or
// Anthropic events; it keeps the open item's text and the finished items, nothing else.
class ResponsesEvents {
public:
  enum class Item { none, message, reasoning, call };

  explicit ResponsesEvents(ResponsesContext context) : m_context(std::move(context)) {
    m_suffix = m_context.id.size() > 5 ? m_context.id.substr(5) : m_context.id;
  }

  const ResponsesContext& context() const { return m_context; }
  // The response id without "resp_", which the ids of its items and calls carry.
  const std::string& suffix() const { return m_suffix; }
  const std::string& items() const { return m_items; }
  Item item() const { return m_item; }
  size_t output_bytes() const { return m_output_bytes; }

  // response.created and response.in_progress, once.
  void start(std::string_view model, std::string& out) {
    if (m_started) {
      return;
    }
    m_started = true;
    m_model = std::string(model);
    emit_response(out, "response.created", "in_progress", {}, {});
    emit_response(out, "response.in_progress", "in_progress", {}, {});
  }

  void text(std::string_view delta, std::string& out) {
    if (delta.empty()) {
      return;
    }
    open(Item::message, out);
    item_delta(out, "response.output_text.delta", delta);
  }

  void reasoning(std::string_view delta, std::string& out) {
    if (delta.empty()) {
      return;
    }
    open(Item::reasoning, out);
    item_delta(out, "response.reasoning_text.delta", delta);
  }

  void call_start(std::string call_id, std::string name, std::string& out) {
    close_item(out); // the call before this one ends with its own id and name
    m_call_id = std::move(call_id);
    m_call_name = std::move(name);
    open(Item::call, out);
  }

  void call_arguments(std::string_view delta, std::string& out) {
    if (delta.empty() || m_item != Item::call) {
      return;
    }
    m_output_bytes += delta.size();
    m_text += delta;
    if (m_context.tools.is_custom(m_call_name)) {
      return; // a freeform tool's input is whole only once its JSON wrapper is: sent at the end
    }
    write_event(out, m_sequence, "response.function_call_arguments.delta", [&](JsonWriter& w) {
      item_fields(w);
      w.field("delta", delta);
    });
  }

  void close_item(std::string& out) {
    if (m_item == Item::none) {
      return;
    }
    std::string done_item;
    JsonWriter dw(done_item);
    if (m_item == Item::message) {
      write_event(out, m_sequence, "response.output_text.done", [&](JsonWriter& w) {
        item_fields(w);
        w.field("text", std::string_view(m_text)).key("logprobs").raw("[]");
      });
      write_event(out, m_sequence, "response.content_part.done", [&](JsonWriter& w) {
        item_fields(w);
        w.key("part").begin_object().field("type", "output_text");
        w.field("text", std::string_view(m_text)).key("annotations").raw("[]").end_object();
      });
      write_message_item(dw, m_item_id, "completed", m_text);
    } else if (m_item == Item::reasoning) {
      write_event(out, m_sequence, "response.reasoning_text.done", [&](JsonWriter& w) {
        item_fields(w);
        w.field("text", std::string_view(m_text));
      });
      write_reasoning_item(dw, m_item_id, m_text);
    } else {
      write_call_item(dw, m_context.tools, m_item_id, "completed", m_call_id, m_call_name, m_text);
      if (m_context.tools.is_custom(m_call_name)) {
        custom_input_events(done_item, out);
      } else {
        write_event(out, m_sequence, "response.function_call_arguments.done", [&](JsonWriter& w) {
          item_fields(w);
          w.field("name", std::string_view(m_call_name));
          w.field("arguments", std::string_view(m_text));
        });
      }
    }
    write_event(out, m_sequence, "response.output_item.done", [&](JsonWriter& w) {
      w.field("output_index", m_output_index).key("item").raw(done_item);
    });
    if (!m_items.empty()) {
      m_items.push_back(',');
    }
    m_items += done_item;
    m_item = Item::none;
    m_text.clear();
  }

  // response.completed, or response.incomplete when finish_reason says the answer was cut.
  void complete(std::string_view finish_reason, const TokenUsage& usage, std::string& out) {
    start({}, out);
    close_item(out);
    const auto [status, reason] = responses_status_for(finish_reason);
    emit_response(out, status == "completed" ? "response.completed" : "response.incomplete", status,
                  reason, {}, &usage);
  }

  // response.failed; an item still open stays unfinished.
  void fail(std::string_view message, std::string& out) {
    start({}, out);
    emit_response(out, "response.failed", "failed", {}, message);
  }

private:
  void emit_response(std::string& out, std::string_view type, std::string_view status,
                     std::string_view incomplete_reason, std::string_view error,
                     const TokenUsage* usage = nullptr) {
    write_event(out, m_sequence, type, [&](JsonWriter& w) {
      ResponseObject r;
      r.model = m_model;
      r.status = status;
      r.incomplete_reason = incomplete_reason;
      r.error_message = error;
      r.items = status == "in_progress" ? std::string_view() : std::string_view(m_items);
      r.usage = usage;
      w.key("response");
      write_response_object(w, m_context, r);
    });
  }

  void open(Item kind, std::string& out) {
    if (m_item == kind && kind != Item::call) {
      return;
    }
    close_item(out);
    m_item = kind;
    m_text.clear();
    ++m_output_index;
    m_item_id = std::string(kind == Item::message     ? "msg_"
                            : kind == Item::reasoning ? "rs_"
                                                      : "fc_") +
                m_suffix + "_" + std::to_string(m_output_index);
    write_event(out, m_sequence, "response.output_item.added", [&](JsonWriter& w) {
      w.field("output_index", m_output_index).key("item");
      if (kind == Item::message) {
        write_message_item(w, m_item_id, "in_progress", {});
      } else if (kind == Item::reasoning) {
        w.begin_object().field("id", std::string_view(m_item_id)).field("type", "reasoning");
        w.key("summary").raw("[]").key("content").raw("[]").end_object();
      } else {
        write_call_item(w, m_context.tools, m_item_id, "in_progress", m_call_id, m_call_name, {});
      }
    });
    if (kind == Item::message) {
      write_event(out, m_sequence, "response.content_part.added", [&](JsonWriter& w) {
        item_fields(w);
        w.key("part").raw(R"({"type":"output_text","text":"","annotations":[]})");
      });
    }
  }

  void item_fields(JsonWriter& w) {
    w.field("item_id", std::string_view(m_item_id)).field("output_index", m_output_index);
    if (m_item != Item::call) {
      w.field("content_index", 0);
    }
  }

  void item_delta(std::string& out, std::string_view type, std::string_view delta) {
    m_output_bytes += delta.size();
    m_text += delta;
    write_event(out, m_sequence, type, [&](JsonWriter& w) {
      item_fields(w);
      w.field("delta", delta);
      if (m_item == Item::message) {
        w.key("logprobs").raw("[]");
      }
    });
  }

  // A freeform tool's input, read back from the finished item.
  void custom_input_events(const std::string& item_json, std::string& out) {
    element item;
    std::string_view input;
    if (parse_nested(item_json, item) || item["input"].get(input)) {
      input = {};
    }
    const std::string copy(input);
    for (const char* type :
         {"response.custom_tool_call_input.delta", "response.custom_tool_call_input.done"}) {
      const bool done = std::string_view(type).ends_with(".done");
      write_event(out, m_sequence, type, [&](JsonWriter& w) {
        item_fields(w);
        w.field(done ? "input" : "delta", std::string_view(copy));
      });
    }
  }

  ResponsesContext m_context;
  std::string m_suffix;
  std::string m_model;
  int64_t m_sequence = 0;
  bool m_started = false;
  Item m_item = Item::none;
  int64_t m_output_index = -1;
  std::string m_item_id;
  std::string m_text; // the open item's text or arguments, which its .done events repeat
  std::string m_call_id;
  std::string m_call_name;
  std::string m_items; // finished items, for response.completed and the conversation store
  size_t m_output_bytes = 0;
};

// The common part of the relays that translate to Responses: the events writer, the failure
// event, what the conversation store keeps, and the end of a stream.
class ToResponses : public StreamRelay {
public:
  ToResponses(const StreamOptions& options, ResponsesContext context)
      : StreamRelay(options, Protocol::responses), m_events(std::move(context)) {}

  void write_failure(const Error& error, std::string& out) override {
    m_events.fail(error.message, out);
  }
  std::string_view response_id() const override { return m_events.context().id; }
  std::string_view output_items() const override { return m_events.items(); }

protected:
  // The upstream said it failed: response.failed, and the stream is settled as its error.
  void upstream_failed(std::string message, std::string& out) {
    m_events.fail(message, out);
    end_as(State::upstream_error, std::move(message));
  }

  // The answer is whole: response.completed (or .incomplete) with usage, estimated at four
  // bytes a token when the upstream reported none.
  void complete(std::string_view finish_reason, std::string& out) {
    m_output_bytes = m_events.output_bytes();
    TokenUsage usage = m_usage;
    if (!usage.reported) {
      usage.input_tokens = m_options.estimated_input_tokens;
      usage.output_tokens = static_cast<int64_t>((m_output_bytes + 3) / 4);
    }
    m_events.complete(finish_reason, usage, out);
    end_as(State::complete, {});
  }

  ResponsesEvents m_events;
};

// Chat completions chunks -> Responses events.
class ChatToResponses final : public ToResponses {
public:
  using ToResponses::ToResponses;

private:
  void on_data(std::string_view, std::string_view data, std::string& out) override {
    if (data == "[DONE]") {
      close(out);
      return;
    }
    object root;
    if (!parse(data, root)) {
      return;
    }
    if (root["error"].error() == simdjson::SUCCESS) {
      upstream_failed(std::string(error_message_of(root)), out);
      return;
    }
    m_events.start(string_or(root, "model"), out);
    object usage;
    if (!root["usage"].get(usage)) {
      read_openai_usage(usage, m_usage);
    }
    array choices;
    if (root["choices"].get(choices) || choices.size() == 0) {
      return;
    }
    object choice;
    if (choices.at(0).get(choice)) {
      end_as(State::malformed, "choices[0] is not an object");
      return;
    }
    object delta;
    if (!choice["delta"].get(delta)) {
      if (const auto thinking = chat_reasoning(delta)) {
        m_events.reasoning(*thinking, out);
      }
      m_events.text(string_or(delta, "content"), out);
      array calls;
      if (!delta["tool_calls"].get(calls)) {
        for (const element c : calls) {
          object call;
          if (c.get(call)) {
            end_as(State::malformed, "a tool call delta is not an object");
            return;
          }
          tool_delta(call, out);
          if (state() != State::open) {
            return;
          }
        }
      }
    }
    m_output_bytes = m_events.output_bytes();
    std::string_view finish;
    if (!choice["finish_reason"].get(finish)) {
      m_finish_reason = std::string(finish);
      m_finished = true;
      m_events.close_item(out);
    }
  }

  // Servers that end on a finish_reason without [DONE] answered completely.
  void on_end(std::string& out) override {
    if (m_finished) {
      close(out);
    }
  }

  void tool_delta(const object& call, std::string& out) {
    object function;
    const bool has_function = !call["function"].get(function);
    const auto step = m_calls.step(call, m_events.item() == ResponsesEvents::Item::call);
    if (step == ChatToolCalls::Delta::malformed) {
      end_as(State::malformed, m_calls.malformed_reason());
      return;
    }
    if (step == ChatToolCalls::Delta::starts) {
      // A call with no id gets one unique to this response: clients match outputs by it.
      std::string call_id =
          m_calls.id().empty() ? "call_" + m_events.suffix() + "_" + std::to_string(m_calls.index())
                               : m_calls.id();
      m_events.call_start(std::move(call_id),
                          has_function ? std::string(string_or(function, "name")) : std::string(),
                          out);
    }
    m_events.call_arguments(has_function ? string_or(function, "arguments") : "", out);
  }

  void close(std::string& out) { complete(m_finish_reason, out); }

  bool m_finished = false;
  std::string m_finish_reason = "stop";
  ChatToolCalls m_calls;
};

// Anthropic events -> Responses events, directly: content blocks are output items.
class AnthropicToResponses final : public ToResponses {
public:
  using ToResponses::ToResponses;

private:
  void on_data(std::string_view event, std::string_view data, std::string& out) override {
    object root;
    if (!parse(data, root)) {
      return;
    }
    const std::string_view type = string_or(root, "type", event);
    if (type == "ping") {
      return;
    }
    if (type == "error") {
      upstream_failed(std::string(error_message_of(root)), out);
      return;
    }
    if (type == "message_start") {
      object message;
      if (root["message"].get(message)) {
        end_as(State::malformed, "message_start has no message");
        return;
      }
      object usage;
      if (!message["usage"].get(usage)) {
        read_anthropic_usage(usage, m_usage);
      }
      m_events.start(string_or(message, "model"), out);
      m_started = true;
      return;
    }
    if (!m_started) {
      end_as(State::malformed, "\"" + std::string(type) + "\" came before message_start");
      return;
    }
    if (type == "content_block_start") {
      object block;
      if (root["content_block"].get(block)) {
        end_as(State::malformed, "content_block_start without a content_block");
        return;
      }
      const std::string_view kind = string_or(block, "type");
      if (kind == "tool_use") {
        m_events.call_start(std::string(string_or(block, "id")),
                            std::string(string_or(block, "name")), out);
      } else if (kind == "text") {
        m_events.text(string_or(block, "text"), out);
      } else if (kind == "thinking") {
        m_events.reasoning(string_or(block, "thinking"), out);
      }
    } else if (type == "content_block_delta") {
      object delta;
      if (root["delta"].get(delta)) {
        end_as(State::malformed, "content_block_delta without a delta");
        return;
      }
      const std::string_view kind = string_or(delta, "type");
      if (kind == "text_delta") {
        m_events.text(string_or(delta, "text"), out);
      } else if (kind == "thinking_delta") {
        m_events.reasoning(string_or(delta, "thinking"), out);
      } else if (kind == "input_json_delta") {
        if (m_events.item() != ResponsesEvents::Item::call) {
          end_as(State::malformed, "input_json_delta for a block that is not a tool_use");
          return;
        }
        m_events.call_arguments(string_or(delta, "partial_json"), out);
      }
    } else if (type == "content_block_stop") {
      // A text block followed by another text block is one message; anything else ends it.
      if (m_events.item() != ResponsesEvents::Item::message) {
        m_events.close_item(out);
      }
    } else if (type == "message_delta") {
      object delta;
      if (!root["delta"].get(delta)) {
        m_finish_reason = finish_reason_for(string_or(delta, "stop_reason", "end_turn"));
      }
      object usage;
      if (!root["usage"].get(usage)) {
        read_anthropic_usage(usage, m_usage);
      }
    } else if (type == "message_stop") {
      complete(m_finish_reason, out);
    }
    m_output_bytes = m_events.output_bytes();
  }

  void on_end(std::string&) override {}

  bool m_started = false;
  std::string_view m_finish_reason = "stop";
};

// A target that speaks Responses: every event relayed as is.
class ResponsesPassthrough final : public StreamRelay {
public:
  ResponsesPassthrough(const StreamOptions& options, ResponsesContext context)
      : StreamRelay(options, Protocol::responses), m_context(std::move(context)) {}

  void write_failure(const Error& error, std::string& out) override {
    int64_t sequence = m_last_sequence + 1;
    write_event(out, sequence, "response.failed", [&](JsonWriter& w) {
      ResponseObject r;
      r.status = "failed";
      r.error_message = error.message;
      w.key("response");
      write_response_object(w, m_context, r);
    });
  }

  std::string_view response_id() const override { return m_context.id; }
  std::string_view output_items() const override { return m_items; }

private:
  void on_data(std::string_view event, std::string_view data, std::string& out) override {
    object root;
    if (!parse(data, root)) {
      return;
    }
    const std::string_view type = string_or(root, "type", event);
    int64_t sequence = 0;
    if (!root["sequence_number"].get(sequence)) {
      m_last_sequence = sequence;
    }
    object response;
    const bool has_response = !root["response"].get(response);
    if (type == "response.created" && has_response) {
      m_context.id = std::string(string_or(response, "id", m_context.id));
    } else if (type == "response.output_text.delta" ||
               type == "response.function_call_arguments.delta") {
      m_output_bytes += string_or(root, "delta").size();
    }
    append_sse(out, event.empty() ? type : event, data);
    if (type == "response.completed" || type == "response.incomplete") {
      object usage;
      if (has_response && !response["usage"].get(usage)) {
        read_responses_usage(usage, m_usage);
      }
      array output;
      if (m_context.store && has_response && !response["output"].get(output)) {
        for (const element item : output) {
          if (!m_items.empty()) {
            m_items.push_back(',');
          }
          m_items += simdjson::minify(item);
        }
      }
      end_as(State::complete, {});
    } else if (type == "response.failed" || type == "error") {
      object error;
      std::string_view message = string_or(root, "message", "the upstream reported an error");
      if (has_response && !response["error"].get(error)) {
        message = string_or(error, "message", message);
      }
      end_as(State::upstream_error, std::string(message));
    }
  }

  void on_end(std::string&) override {}

  ResponsesContext m_context;
  int64_t m_last_sequence = -1;
  std::string m_items;
};

} // namespace

std::unique_ptr<StreamRelay> make_responses_relay(Protocol upstream, const StreamOptions& options,
                                                  const ResponsesContext& context) {
  if (upstream == Protocol::responses) {
    return std::make_unique<ResponsesPassthrough>(options, context);
  }
  if (upstream == Protocol::anthropic) {
    return std::make_unique<AnthropicToResponses>(options, context);
  }
  return std::make_unique<ChatToResponses>(options, context);
}

} // namespace modelmux
