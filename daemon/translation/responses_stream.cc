// Stream relays to a Responses client: from a chat completions stream (each chunk becomes the
// Responses events of the output item it belongs to), from an Anthropic stream (through the
// Anthropic -> chat relay, chained), and from a target that streams Responses itself (relayed as
// is, watched for its terminal event). Per item, a relay keeps the item's text, which the
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

class ChatToResponses final : public StreamRelay {
public:
  ChatToResponses(const StreamOptions& options, ResponsesContext context)
      : StreamRelay(options, Protocol::responses), m_context(std::move(context)) {
    m_suffix = m_context.id.size() > 5 ? m_context.id.substr(5) : m_context.id;
  }

  void write_failure(const Error& error, std::string& out) override {
    start(nullptr, out);
    emit_response(out, "response.failed", "failed", {}, error.message);
  }

  std::string_view response_id() const override { return m_context.id; }
  std::string_view output_items() const override { return m_items; }

private:
  enum class Item { none, message, reasoning, call };

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
      const std::string message(error_message_of(root));
      start(nullptr, out);
      emit_response(out, "response.failed", "failed", {}, message);
      end_as(State::upstream_error, message);
      return;
    }
    start(&root, out);
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
      for (const char* key : {"reasoning_content", "reasoning"}) {
        const std::string_view thinking = string_or(delta, key);
        if (!thinking.empty()) {
          open(Item::reasoning, out);
          text_delta(out, "response.reasoning_text.delta", thinking);
          break;
        }
      }
      const std::string_view text = string_or(delta, "content");
      if (!text.empty()) {
        open(Item::message, out);
        text_delta(out, "response.output_text.delta", text);
      }
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
    std::string_view finish;
    if (!choice["finish_reason"].get(finish)) {
      m_finish_reason = std::string(finish);
      m_finished = true;
      close_item(out);
    }
  }

  // Servers that end on a finish_reason without [DONE] answered completely.
  void on_end(std::string& out) override {
    if (m_finished) {
      close(out);
    }
  }

  void start(const object* root, std::string& out) {
    if (m_started) {
      return;
    }
    m_started = true;
    m_model = root ? std::string(string_or(*root, "model")) : std::string();
    emit_response(out, "response.created", "in_progress", {}, {});
    emit_response(out, "response.in_progress", "in_progress", {}, {});
  }

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

  std::string next_item_id(std::string_view prefix) {
    return std::string(prefix) + m_suffix + "_" + std::to_string(m_output_index + 1);
  }

  void open(Item kind, std::string& out) {
    if (m_item == kind && kind != Item::call) {
      return;
    }
    close_item(out);
    m_item = kind;
    m_text.clear();
    m_item_id = next_item_id(kind == Item::message     ? "msg_"
                             : kind == Item::reasoning ? "rs_"
                                                       : "fc_");
    ++m_output_index;
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

  void text_delta(std::string& out, std::string_view type, std::string_view text) {
    m_output_bytes += text.size();
    m_text += text;
    write_event(out, m_sequence, type, [&](JsonWriter& w) {
      item_fields(w);
      w.field("delta", text);
      if (m_item == Item::message) {
        w.key("logprobs").raw("[]");
      }
    });
  }

  void tool_delta(const object& call, std::string& out) {
    int64_t index = -1;
    const bool has_index = !call["index"].get(index);
    const std::string_view id = string_or(call, "id");
    object function;
    const bool has_function = !call["function"].get(function);
    // A new tool call starts at a new index, or (servers that send no index) at a new id.
    const bool is_new = m_item != Item::call || (has_index && index != m_tool_index) ||
                        (!has_index && !id.empty() && id != m_call_id);
    if (is_new) {
      if (has_index && index <= m_max_tool_index) {
        end_as(State::malformed,
               "tool call " + std::to_string(index) + " continued after the next one began");
        return;
      }
      close_item(out); // the call before this one ends with its own id and name
      m_tool_index = has_index ? index : m_max_tool_index + 1;
      m_max_tool_index = m_tool_index;
      m_call_id =
          id.empty() ? "call_" + m_suffix + "_" + std::to_string(m_tool_index) : std::string(id);
      m_call_name = has_function ? std::string(string_or(function, "name")) : std::string();
      open(Item::call, out);
    }
    const std::string_view arguments = has_function ? string_or(function, "arguments") : "";
    if (arguments.empty()) {
      return;
    }
    m_output_bytes += arguments.size();
    m_text += arguments;
    if (m_context.tools.is_custom(m_call_name)) {
      return; // a freeform tool's input is whole only once its JSON wrapper is: sent at the end
    }
    write_event(out, m_sequence, "response.function_call_arguments.delta", [&](JsonWriter& w) {
      item_fields(w);
      w.field("delta", arguments);
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

  void close(std::string& out) {
    start(nullptr, out);
    close_item(out);
    TokenUsage usage = m_usage;
    if (!usage.reported) {
      // The upstream ignored stream_options.include_usage: estimate, four bytes a token.
      usage.input_tokens = m_options.estimated_input_tokens;
      usage.output_tokens = static_cast<int64_t>((m_output_bytes + 3) / 4);
    }
    const auto [status, reason] = responses_status_for(m_finish_reason);
    emit_response(out, status == "completed" ? "response.completed" : "response.incomplete", status,
                  reason, {}, &usage);
    end_as(State::complete, {});
  }

  ResponsesContext m_context;
  std::string m_suffix;
  std::string m_model;
  int64_t m_sequence = 0;
  bool m_started = false;
  bool m_finished = false;
  std::string m_finish_reason = "stop";
  Item m_item = Item::none;
  int64_t m_output_index = -1;
  std::string m_item_id;
  std::string m_text; // the open item's text or arguments, which its .done events repeat
  std::string m_call_id;
  std::string m_call_name;
  int64_t m_tool_index = -1;
  int64_t m_max_tool_index = -1;
  std::string m_items; // finished items, for response.completed and the conversation store
};

// Anthropic -> chat -> Responses: the two relays chained through one reused buffer.
class AnthropicToResponses final : public StreamRelay {
public:
  AnthropicToResponses(const StreamOptions& options, ResponsesContext context)
      : StreamRelay(options, Protocol::responses) {
    StreamOptions inner = options;
    inner.client_wants_usage = true; // the chat relay's usage chunk feeds the Responses one
    m_anthropic = make_stream_relay(Protocol::anthropic, Protocol::openai, inner);
    m_chat = std::make_unique<ChatToResponses>(options, std::move(context));
  }

  void feed(std::string_view bytes, std::string& out) override {
    m_middle.clear();
    m_anthropic->feed(bytes, m_middle);
    m_chat->feed(m_middle, out);
    sync();
  }
  void finish(std::string& out) override {
    m_middle.clear();
    m_anthropic->finish(m_middle);
    m_chat->feed(m_middle, out);
    m_chat->finish(out);
    sync();
  }
  void forward_comments() override {
    m_anthropic->forward_comments();
    m_chat->forward_comments();
  }
  void write_failure(const Error& error, std::string& out) override {
    m_chat->write_failure(error, out);
  }
  std::string_view response_id() const override { return m_chat->response_id(); }
  std::string_view output_items() const override { return m_chat->output_items(); }

private:
  void on_data(std::string_view, std::string_view, std::string&) override {}
  void on_end(std::string&) override {}

  void sync() {
    m_usage = m_anthropic->usage(); // Anthropic's own counts: cache writes included
    m_output_bytes = m_chat->output_bytes();
    if (state() != State::open) {
      return;
    }
    if (m_anthropic->state() == State::malformed) {
      end_as(State::malformed, m_anthropic->problem());
    } else if (m_chat->state() != State::open) {
      end_as(m_chat->state(), m_chat->problem());
    }
  }

  std::unique_ptr<StreamRelay> m_anthropic;
  std::unique_ptr<ChatToResponses> m_chat;
  std::string m_middle;
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
