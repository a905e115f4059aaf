// Mock replies in the OpenAI and Anthropic wire formats, stream and non-stream.
#include "modelmux/mock.h"

#include "modelmux/json.h"

#include <cmath>
#include <cstring>
#include <openssl/evp.h>

namespace modelmux {

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

// The text parts of a message content: a string, or an array of {type: "text", text} parts.
std::string content_text(const element& content) {
  if (content.is_string()) {
    return std::string(content.get_string().value_unsafe());
  }
  std::string out;
  if (content.is_array()) {
    const simdjson::dom::array parts = content.get_array().value_unsafe();
    for (const auto part : parts) {
      const auto text = part["text"];
      if (!text.error() && text.value_unsafe().is_string()) {
        if (!out.empty()) {
          out.push_back(' ');
        }
        out.append(text.value_unsafe().get_string().value_unsafe());
      }
    }
  }
  return out;
}

std::string first_text(const element& v) {
  if (v.is_string()) {
    return std::string(v.get_string().value_unsafe());
  }
  if (v.is_array()) {
    const simdjson::dom::array items = v.get_array().value_unsafe();
    for (const auto item : items) {
      if (item.is_string()) {
        return std::string(item.get_string().value_unsafe());
      }
    }
  }
  return {};
}

int64_t count_words(std::string_view s) {
  int64_t n = 0;
  bool in_word = false;
  for (const char c : s) {
    const bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (!space && !in_word) {
      ++n;
    }
    in_word = !space;
  }
  return n;
}

// The answer split where a model would stream it: each piece a word with its trailing space.
std::vector<std::string_view> stream_pieces(std::string_view text) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == ' ' || text[i] == '\n') {
      out.push_back(text.substr(start, i + 1 - start));
      start = i + 1;
    }
  }
  if (start < text.size()) {
    out.push_back(text.substr(start));
  }
  return out;
}

std::string sse(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 8);
  out.append("data: ").append(data).append("\n\n");
  return out;
}

std::string sse(std::string_view event, std::string_view data) {
  std::string out;
  out.reserve(event.size() + data.size() + 16);
  out.append("event: ").append(event).append("\ndata: ").append(data).append("\n\n");
  return out;
}

void openai_usage(JsonWriter& w, int64_t in, int64_t out) {
  w.key("usage").begin_object();
  w.field("prompt_tokens", in).field("completion_tokens", out).field("total_tokens", in + out);
  w.end_object();
}

// Deterministic pseudo-embedding of a text: 16 floats from a simple hash, unit-free.
std::vector<float> embed(std::string_view text) {
  std::vector<float> v(16);
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < v.size(); ++i) {
    for (const char c : text) {
      h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    }
    h ^= i;
    v[i] = static_cast<float>(static_cast<double>(h % 20001) / 10000.0 - 1.0);
  }
  return v;
}

std::string base64_floats(const std::vector<float>& v) {
  std::string raw(v.size() * sizeof(float), '\0');
  std::memcpy(raw.data(), v.data(), raw.size());
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(raw.data()),
                                static_cast<int>(raw.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

MockReply embeddings_reply(const MockRequest& r) {
  MockReply reply;
  reply.content_type = "application/json";
  const element input = r.body->root["input"].value_unsafe();
  std::vector<std::string> texts;
  if (input.is_array()) {
    const simdjson::dom::array items = input.get_array().value_unsafe();
    for (const auto item : items) {
      texts.push_back(item.is_string() ? std::string(item.get_string().value_unsafe()) : "");
    }
  } else {
    texts.push_back(first_text(input));
  }
  const auto format = r.body->root["encoding_format"];
  const bool base64 = !format.error() && format.value_unsafe().is_string() &&
                      format.value_unsafe().get_string().value_unsafe() == "base64";
  JsonWriter w(reply.body);
  w.begin_object().field("object", "list").key("data").begin_array();
  int64_t tokens = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    tokens += static_cast<int64_t>(texts[i].size() + 3) / 4;
    const auto v = embed(texts[i]);
    w.begin_object().field("object", "embedding").field("index", static_cast<int64_t>(i));
    w.key("embedding");
    if (base64) {
      w.value(std::string_view(base64_floats(v)));
    } else {
      w.begin_array();
      for (const float f : v) {
        // Four decimals, as the mock computes them; no float-to-double noise digits.
        w.value(static_cast<double>(std::lround(static_cast<double>(f) * 10000.0)) / 10000.0);
      }
      w.end_array();
    }
    w.end_object();
  }
  w.end_array().field("model", r.model);
  w.key("usage").begin_object().field("prompt_tokens", tokens).field("total_tokens", tokens);
  w.end_object().end_object();
  return reply;
}

MockReply openai_reply(const MockRequest& r, std::string_view text, int64_t in, int64_t out) {
  MockReply reply;
  // A Responses request gets a chat answer, which modelmux translates as it would a chat target's.
  const bool chat = r.route == ApiRoute::chat_completions || r.route == ApiRoute::responses;
  const std::string id = std::string(chat ? "chatcmpl-" : "cmpl-") + std::string(r.id);
  if (!r.body->stream) {
    reply.content_type = "application/json";
    JsonWriter w(reply.body);
    w.begin_object().field("id", std::string_view(id));
    w.field("object", chat ? "chat.completion" : "text_completion");
    w.field("created", r.created).field("model", r.model).key("choices").begin_array();
    w.begin_object().field("index", 0);
    if (chat) {
      w.key("message").begin_object().field("role", "assistant").field("content", text);
      w.key("refusal").null().end_object();
    } else {
      w.field("text", text);
    }
    w.key("logprobs").null().field("finish_reason", "stop").end_object().end_array();
    openai_usage(w, in, out);
    w.end_object();
    return reply;
  }
  reply.content_type = "text/event-stream";
  auto chunk = [&](auto&& fill_choice, bool with_choice) {
    std::string data;
    JsonWriter w(data);
    w.begin_object().field("id", std::string_view(id));
    w.field("object", chat ? "chat.completion.chunk" : "text_completion");
    w.field("created", r.created).field("model", r.model).key("choices").begin_array();
    if (with_choice) {
      w.begin_object().field("index", 0);
      fill_choice(w);
      w.key("logprobs").null().end_object();
    }
    w.end_array();
    if (!with_choice) {
      openai_usage(w, in, out);
    }
    w.end_object();
    reply.events.push_back(sse(data));
  };
  if (chat) {
    chunk(
        [&](JsonWriter& w) {
          w.key("delta").begin_object().field("role", "assistant").field("content", "");
          w.end_object().key("finish_reason").null();
        },
        true);
  }
  for (const auto piece : stream_pieces(text)) {
    chunk(
        [&](JsonWriter& w) {
          if (chat) {
            w.key("delta").begin_object().field("content", piece).end_object();
          } else {
            w.field("text", piece);
          }
          w.key("finish_reason").null();
        },
        true);
  }
  chunk(
      [&](JsonWriter& w) {
        if (chat) {
          w.key("delta").begin_object().end_object();
        } else {
          w.field("text", "");
        }
        w.field("finish_reason", "stop");
      },
      true);
  if (r.body->include_usage || r.route == ApiRoute::responses) {
    chunk([](JsonWriter&) {}, false);
  }
  reply.events.push_back(sse("[DONE]"));
  return reply;
}

MockReply anthropic_reply(const MockRequest& r, std::string_view text, int64_t in, int64_t out) {
  MockReply reply;
  const std::string id = "msg_" + std::string(r.id);
  if (!r.body->stream) {
    reply.content_type = "application/json";
    JsonWriter w(reply.body);
    w.begin_object().field("id", std::string_view(id)).field("type", "message");
    w.field("role", "assistant").field("model", r.model).key("content").begin_array();
    w.begin_object().field("type", "text").field("text", text).end_object().end_array();
    w.field("stop_reason", "end_turn").key("stop_sequence").null();
    w.key("usage").begin_object().field("input_tokens", in).field("output_tokens", out);
    w.end_object().end_object();
    return reply;
  }
  reply.content_type = "text/event-stream";
  {
    std::string data;
    JsonWriter w(data);
    w.begin_object().field("type", "message_start").key("message").begin_object();
    w.field("id", std::string_view(id)).field("type", "message").field("role", "assistant");
    w.key("content").begin_array().end_array().field("model", r.model);
    w.key("stop_reason").null().key("stop_sequence").null();
    w.key("usage").begin_object().field("input_tokens", in).field("output_tokens", int64_t{1});
    w.end_object().end_object().end_object();
    reply.events.push_back(sse("message_start", data));
  }
  reply.events.push_back(
      sse("content_block_start",
          R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"));
  reply.events.push_back(sse("ping", R"({"type":"ping"})"));
  for (const auto piece : stream_pieces(text)) {
    std::string data;
    JsonWriter w(data);
    w.begin_object().field("type", "content_block_delta").field("index", 0);
    w.key("delta").begin_object().field("type", "text_delta").field("text", piece);
    w.end_object().end_object();
    reply.events.push_back(sse("content_block_delta", data));
  }
  reply.events.push_back(sse("content_block_stop", R"({"type":"content_block_stop","index":0})"));
  {
    std::string data;
    JsonWriter w(data);
    w.begin_object().field("type", "message_delta").key("delta").begin_object();
    w.field("stop_reason", "end_turn").key("stop_sequence").null().end_object();
    w.key("usage").begin_object().field("output_tokens", out).end_object().end_object();
    reply.events.push_back(sse("message_delta", data));
  }
  reply.events.push_back(sse("message_stop", R"({"type":"message_stop"})"));
  return reply;
}

} // namespace

std::string mock_echo_text(ApiRoute route, const element& root) {
  if (route == ApiRoute::completions) {
    return first_text(root["prompt"].value_unsafe());
  }
  if (route == ApiRoute::responses) {
    std::string_view input;
    if (!root["input"].get(input)) {
      return std::string(input);
    }
  }
  const auto messages = root[route == ApiRoute::responses ? "input" : "messages"];
  if (messages.error() || !messages.value_unsafe().is_array()) {
    return {};
  }
  std::string last;
  const simdjson::dom::array list = messages.value_unsafe().get_array().value_unsafe();
  for (const auto m : list) {
    const auto role = m["role"];
    const auto content = m["content"];
    if (!role.error() && role.value_unsafe().is_string() &&
        role.value_unsafe().get_string().value_unsafe() == "user" && !content.error()) {
      last = content_text(content.value_unsafe());
    }
  }
  return last;
}

MockReply mock_reply(const MockRequest& r) {
  if (r.fail) {
    MockReply reply;
    reply.status = 500;
    reply.content_type = "application/json";
    const Error e =
        make_error(ErrorKind::internal, "mock target failed on purpose (mock.fail_rate)");
    reply.body = error_body(client_protocol(r.route), e);
    return reply;
  }
  if (r.route == ApiRoute::embeddings) {
    return embeddings_reply(r);
  }
  const std::string text = mock_echo_text(r.route, r.body->root);
  const int64_t in = std::max<int64_t>(1, r.body->estimated_prompt_tokens);
  const int64_t out = std::max<int64_t>(1, count_words(text));
  if (r.route == ApiRoute::messages) {
    return anthropic_reply(r, text, in, out);
  }
  return openai_reply(r, text, in, out);
}

} // namespace modelmux
