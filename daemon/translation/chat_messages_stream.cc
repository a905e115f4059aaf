// The four chat <-> messages stream relays: OpenAI and Anthropic passed through, and each
// translated to the other, event by event.
#include "modelmux/json.h"
#include "modelmux/protocol.h"
#include "modelmux/sse.h"
#include "modelmux/stream_relay.h"
#include "translation/dom.h"

#include <vector>

namespace modelmux {

namespace {

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::object;

std::string_view string_or(const object& o, std::string_view key, std::string_view fallback = {}) {
  std::string_view s;
  return o[key].get(s) ? fallback : s;
}

bool object_at(const object& o, std::string_view key, object& out) {
  return !o[key].get(out);
}

// The message of an error event in either protocol ({"error": {"message"}}).
std::string_view error_message(const object& root) {
  object error;
  if (object_at(root, "error", error)) {
    return string_or(error, "message", "the upstream reported an error");
  }
  return "the upstream reported an error";
}

// ---- same protocol ----

class OpenAiPassthrough final : public StreamRelay {
public:
  explicit OpenAiPassthrough(const StreamOptions& options) : StreamRelay(options) {}

private:
  void on_data(std::string_view, std::string_view data, std::string& out) override {
    if (data == "[DONE]") {
      out.append("data: [DONE]\n\n");
      end_as(State::complete, {});
      return;
    }
    object root;
    if (!parse(data, root)) {
      return;
    }
    object usage;
    const bool has_usage = object_at(root, "usage", usage);
    if (has_usage) {
      read_openai_usage(usage, m_usage);
    }
    if (root["error"].error() == simdjson::SUCCESS) {
      append_sse(out, {}, data);
      end_as(State::upstream_error, std::string(error_message(root)));
      return;
    }
    array choices;
    if (!root["choices"].get(choices)) {
      if (choices.size() == 0 && has_usage && !m_options.client_wants_usage) {
        return; // the usage chunk modelmux asked for on the client's behalf
      }
      for (const element c : choices) {
        std::string_view reason;
        if (c.is_object() && !c["finish_reason"].get(reason)) {
          m_finished = true;
        }
        std::string_view text;
        if (!c["delta"]["content"].get(text) || !c["text"].get(text)) {
          m_output_bytes += text.size();
        }
      }
    }
    append_sse(out, {}, data);
  }

  // Servers that end on a finish_reason without [DONE] answered completely; the client gets the
  // [DONE] the OpenAI wire format promises.
  void on_end(std::string& out) override {
    if (m_finished) {
      out.append("data: [DONE]\n\n");
      end_as(State::complete, {});
    }
  }

  bool m_finished = false;
};

class AnthropicPassthrough final : public StreamRelay {
public:
  explicit AnthropicPassthrough(const StreamOptions& options)
      : StreamRelay(options, Protocol::anthropic) {}

private:
  void on_data(std::string_view event, std::string_view data, std::string& out) override {
    object root;
    if (!parse(data, root)) {
      return;
    }
    const std::string_view type = string_or(root, "type", event);
    object usage;
    if (type == "message_start") {
      object message;
      if (object_at(root, "message", message) && object_at(message, "usage", usage)) {
        read_anthropic_usage(usage, m_usage);
      }
    } else if (type == "message_delta" && object_at(root, "usage", usage)) {
      read_anthropic_usage(usage, m_usage);
    } else if (type == "content_block_delta") {
      object delta;
      if (object_at(root, "delta", delta)) {
        m_output_bytes += string_or(delta, "text").size() + string_or(delta, "partial_json").size();
      }
    }
    append_sse(out, event.empty() ? type : event, data);
    if (type == "message_stop") {
      end_as(State::complete, {});
    } else if (type == "error") {
      end_as(State::upstream_error, std::string(error_message(root)));
    }
  }

  void on_end(std::string&) override {}
};

// ---- Anthropic upstream, OpenAI client ----

class AnthropicToOpenAi final : public StreamRelay {
public:
  explicit AnthropicToOpenAi(const StreamOptions& options) : StreamRelay(options) {}

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
      out.append("data: ");
      JsonWriter w(out);
      object error;
      const bool has_error = object_at(root, "error", error);
      w.begin_object().key("error").begin_object();
      w.field("message", error_message(root));
      w.field("type", has_error ? string_or(error, "type", "api_error") : "api_error");
      w.key("param").null().key("code").null().end_object().end_object();
      out.append("\n\n");
      end_as(State::upstream_error, std::string(error_message(root)));
      return;
    }
    if (type == "message_start") {
      start(root, out);
      return;
    }
    if (m_prefix.empty()) {
      end_as(State::malformed, "\"" + std::string(type) + "\" came before message_start");
      return;
    }
    if (type == "content_block_start") {
      block_start(root, out);
    } else if (type == "content_block_delta") {
      block_delta(root, out);
    } else if (type == "message_delta") {
      object delta;
      if (object_at(root, "delta", delta)) {
        m_finish_reason = finish_reason_for(string_or(delta, "stop_reason", "end_turn"));
      }
      object usage;
      if (object_at(root, "usage", usage)) {
        read_anthropic_usage(usage, m_usage);
      }
    } else if (type == "message_stop") {
      write_chunk(out, "{}", m_finish_reason);
      if (m_options.client_wants_usage) {
        out.append("data: ").append(m_prefix, 0, m_prefix_choices);
        out.append("[],\"usage\":");
        JsonWriter w(out);
        write_openai_usage(w, m_usage);
        out.append("}\n\n");
      }
      out.append("data: [DONE]\n\n");
      end_as(State::complete, {});
    }
    // content_block_stop needs nothing: OpenAI chunks do not close what they opened.
  }

  void on_end(std::string&) override {}

  void start(const object& root, std::string& out) {
    object message;
    if (!object_at(root, "message", message)) {
      end_as(State::malformed, "message_start has no message");
      return;
    }
    object usage;
    if (object_at(message, "usage", usage)) {
      read_anthropic_usage(usage, m_usage);
    }
    m_prefix.clear();
    JsonWriter w(m_prefix);
    w.begin_object()
        .field("id", string_or(message, "id"))
        .field("object", "chat.completion.chunk")
        .field("created", m_options.created)
        .field("model", string_or(message, "model"))
        .key("choices");
    m_prefix_choices = m_prefix.size();
    m_prefix.append("[{\"index\":0,\"delta\":");
    write_chunk(out, R"({"role":"assistant","content":""})", {});
  }

  void block_start(const object& root, std::string& out) {
    int64_t index = -1;
    object block;
    if (root["index"].get(index) || index < 0 || index > 100000 ||
        !object_at(root, "content_block", block)) {
      end_as(State::malformed, "content_block_start without an index and a content_block");
      return;
    }
    const std::string_view type = string_or(block, "type");
    if (type == "tool_use") {
      if (m_tool_of_block.size() <= static_cast<size_t>(index)) {
        m_tool_of_block.resize(static_cast<size_t>(index) + 1, -1);
      }
      const int tool = m_tools++;
      m_tool_of_block[static_cast<size_t>(index)] = tool;
      m_delta.clear();
      JsonWriter w(m_delta);
      w.begin_object();
      w.key("tool_calls").begin_array().begin_object();
      w.field("index", tool).field("id", string_or(block, "id")).field("type", "function");
      w.key("function").begin_object().field("name", string_or(block, "name"));
      w.field("arguments", "").end_object().end_object().end_array().end_object();
      write_chunk(out, m_delta, {});
    } else if (type == "text") {
      text_delta(out, "content", string_or(block, "text"));
    } else if (type == "thinking") {
      text_delta(out, "reasoning_content", string_or(block, "thinking"));
    }
  }

  void block_delta(const object& root, std::string& out) {
    int64_t index = -1;
    object delta;
    if (root["index"].get(index) || !object_at(root, "delta", delta)) {
      end_as(State::malformed, "content_block_delta without an index and a delta");
      return;
    }
    const std::string_view type = string_or(delta, "type");
    if (type == "text_delta") {
      text_delta(out, "content", string_or(delta, "text"));
    } else if (type == "thinking_delta") {
      text_delta(out, "reasoning_content", string_or(delta, "thinking"));
    } else if (type == "input_json_delta") {
      if (index < 0 || static_cast<size_t>(index) >= m_tool_of_block.size() ||
          m_tool_of_block[static_cast<size_t>(index)] < 0) {
        end_as(State::malformed, "input_json_delta for a block that is not a tool_use");
        return;
      }
      const std::string_view partial = string_or(delta, "partial_json");
      if (partial.empty()) {
        return;
      }
      m_output_bytes += partial.size();
      m_delta.clear();
      JsonWriter w(m_delta);
      w.begin_object();
      w.key("tool_calls").begin_array().begin_object();
      w.field("index", m_tool_of_block[static_cast<size_t>(index)]);
      w.key("function").begin_object().field("arguments", partial).end_object();
      w.end_object().end_array().end_object();
      write_chunk(out, m_delta, {});
    }
    // signature_delta and citations_delta have no OpenAI counterpart.
  }

  void text_delta(std::string& out, std::string_view key, std::string_view text) {
    if (text.empty()) {
      return;
    }
    m_output_bytes += text.size();
    m_delta.clear();
    JsonWriter w(m_delta);
    w.begin_object();
    w.field(key, text).end_object();
    write_chunk(out, m_delta, {});
  }

  void write_chunk(std::string& out, std::string_view delta, std::string_view finish_reason) {
    out.append("data: ").append(m_prefix).append(delta).append(",\"logprobs\":null,");
    out.append("\"finish_reason\":");
    if (finish_reason.empty()) {
      out.append("null");
    } else {
      append_json_string(out, finish_reason);
    }
    out.append("}]}\n\n");
  }

  std::string m_prefix; // the chunk up to the delta: id, object, created, model, choices
  size_t m_prefix_choices = 0;
  std::string m_delta;
  std::vector<int> m_tool_of_block; // Anthropic block index -> OpenAI tool call index
  int m_tools = 0;
  std::string_view m_finish_reason = "stop";
};

// ---- OpenAI upstream, Anthropic client ----

class OpenAiToAnthropic final : public StreamRelay {
public:
  explicit OpenAiToAnthropic(const StreamOptions& options)
      : StreamRelay(options, Protocol::anthropic) {}

private:
  enum class Block { none, text, thinking, tool };

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
      out.append("event: error\ndata: ");
      out.append(
          anthropic_error_body(make_error(ErrorKind::upstream, std::string(error_message(root)))));
      out.append("\n\n");
      end_as(State::upstream_error, std::string(error_message(root)));
      return;
    }
    start(&root, out);
    object usage;
    if (object_at(root, "usage", usage)) {
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
    if (object_at(choice, "delta", delta)) {
      if (const auto thinking = dom::chat_reasoning(delta)) {
        open(Block::thinking, out);
        text_delta(out, "thinking_delta", "thinking", *thinking);
      }
      const std::string_view text = string_or(delta, "content");
      if (!text.empty()) {
        open(Block::text, out);
        text_delta(out, "text_delta", "text", text);
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
      m_stop_reason = stop_reason_for(finish);
      m_finished = true;
      close_block(out);
    }
  }

  // Servers that end on a finish_reason without [DONE] answered completely.
  void on_end(std::string& out) override {
    if (m_finished) {
      close(out);
    }
  }

  // message_start, from the first chunk (root) or, for a stream with none, from nothing.
  void start(const object* root, std::string& out) {
    if (m_started) {
      return;
    }
    m_started = true;
    m_id = root ? string_or(*root, "id", "msg_modelmux") : "msg_modelmux";
    m_model = root ? string_or(*root, "model") : "";
    out.append("event: message_start\ndata: ");
    JsonWriter w(out);
    w.begin_object().field("type", "message_start").key("message").begin_object();
    w.field("id", std::string_view(m_id)).field("type", "message").field("role", "assistant");
    w.field("model", std::string_view(m_model)).key("content").begin_array().end_array();
    w.key("stop_reason").null().key("stop_sequence").null().key("usage");
    TokenUsage estimate;
    estimate.input_tokens = m_options.estimated_input_tokens;
    write_anthropic_usage(w, estimate);
    w.end_object().end_object();
    // Anthropic sends a ping early in every stream; clients that wait for one get it.
    out.append("\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n");
  }

  void tool_delta(const object& call, std::string& out) {
    object function;
    const bool has_function = object_at(call, "function", function);
    const auto step = m_calls.step(call, m_block == Block::tool);
    if (step == dom::ChatToolCalls::Delta::malformed) {
      end_as(State::malformed, m_calls.malformed_reason());
      return;
    }
    if (step == dom::ChatToolCalls::Delta::starts) {
      close_block(out);
      m_tool_id =
          m_calls.id().empty() ? "toolu_modelmux_" + std::to_string(m_calls.index()) : m_calls.id();
      m_block = Block::tool;
      out.append("event: content_block_start\ndata: ");
      JsonWriter w(out);
      w.begin_object().field("type", "content_block_start").field("index", m_blocks);
      w.key("content_block").begin_object().field("type", "tool_use");
      w.field("id", std::string_view(m_tool_id));
      w.field("name", has_function ? string_or(function, "name") : std::string_view());
      w.key("input").begin_object().end_object().end_object().end_object();
      out.append("\n\n");
    }
    const std::string_view arguments = has_function ? string_or(function, "arguments") : "";
    if (!arguments.empty()) {
      m_output_bytes += arguments.size();
      out.append("event: content_block_delta\ndata: ");
      JsonWriter w(out);
      w.begin_object().field("type", "content_block_delta").field("index", m_blocks);
      w.key("delta").begin_object().field("type", "input_json_delta");
      w.field("partial_json", arguments).end_object().end_object();
      out.append("\n\n");
    }
  }

  void open(Block kind, std::string& out) {
    if (m_block == kind) {
      return;
    }
    close_block(out);
    m_block = kind;
    out.append("event: content_block_start\ndata: ");
    JsonWriter w(out);
    w.begin_object().field("type", "content_block_start").field("index", m_blocks);
    w.key("content_block").begin_object();
    if (kind == Block::text) {
      w.field("type", "text").field("text", "");
    } else {
      w.field("type", "thinking").field("thinking", "").field("signature", "");
    }
    w.end_object().end_object();
    out.append("\n\n");
  }

  void text_delta(std::string& out, std::string_view type, std::string_view key,
                  std::string_view text) {
    m_output_bytes += text.size();
    out.append("event: content_block_delta\ndata: ");
    JsonWriter w(out);
    w.begin_object().field("type", "content_block_delta").field("index", m_blocks);
    w.key("delta").begin_object().field("type", type).field(key, text).end_object().end_object();
    out.append("\n\n");
  }

  void close_block(std::string& out) {
    if (m_block == Block::none) {
      return;
    }
    out.append("event: content_block_stop\ndata: ");
    JsonWriter(out)
        .begin_object()
        .field("type", "content_block_stop")
        .field("index", m_blocks)
        .end_object();
    out.append("\n\n");
    m_block = Block::none;
    ++m_blocks;
  }

  void close(std::string& out) {
    start(nullptr, out);
    close_block(out);
    TokenUsage usage = m_usage;
    if (!usage.reported) {
      // The upstream ignored stream_options.include_usage: estimate, four bytes a token.
      usage.input_tokens = m_options.estimated_input_tokens;
      usage.output_tokens = static_cast<int64_t>((m_output_bytes + 3) / 4);
    }
    out.append("event: message_delta\ndata: ");
    JsonWriter w(out);
    w.begin_object().field("type", "message_delta").key("delta").begin_object();
    w.field("stop_reason", m_stop_reason).key("stop_sequence").null().end_object();
    w.key("usage");
    write_anthropic_usage(w, usage);
    w.end_object();
    out.append("\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    end_as(State::complete, {});
  }

  bool m_started = false;
  bool m_finished = false;
  std::string m_id;
  std::string m_model;
  Block m_block = Block::none;
  int64_t m_blocks = 0; // index of the block open or next to open
  dom::ChatToolCalls m_calls;
  std::string m_tool_id;
  std::string_view m_stop_reason = "end_turn";
};

} // namespace

std::unique_ptr<StreamRelay> make_stream_relay(Protocol upstream, Protocol client,
                                               const StreamOptions& options) {
  if (upstream == Protocol::anthropic) {
    if (client == Protocol::anthropic) {
      return std::make_unique<AnthropicPassthrough>(options);
    }
    return std::make_unique<AnthropicToOpenAi>(options);
  }
  if (client == Protocol::anthropic) {
    return std::make_unique<OpenAiToAnthropic>(options);
  }
  return std::make_unique<OpenAiPassthrough>(options);
}

} // namespace modelmux
