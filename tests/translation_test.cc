// The SSE parser, and translation between the OpenAI and Anthropic protocols against the
// conformance corpus in testdata/translation/: each case names the public API reference its
// input follows, and its expected output is the golden answer. Streams are also fed split at
// every byte offset and with CRLF line endings, and must translate identically.
#include "modelmux/request_body.h"
#include "modelmux/sse.h"
#include "modelmux/stream_relay.h"
#include "modelmux/translate.h"
#include "modelmux/translation/responses.h"

#include <algorithm>
#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <yaml-cpp/yaml.h>

namespace modelmux {
namespace {

namespace fs = std::filesystem;

const fs::path k_corpus = fs::path(MODELMUX_SOURCE_DIR) / "tests/testdata/translation";

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// JSON with object keys sorted and no whitespace, so documents compare by meaning.
void canonical(const simdjson::dom::element& e, std::string& out) {
  using T = simdjson::dom::element_type;
  switch (e.type()) {
  case T::OBJECT: {
    std::map<std::string, simdjson::dom::element> fields;
    const simdjson::dom::object object = e.get_object().value_unsafe();
    for (const auto field : object) {
      fields.emplace(std::string(field.key), field.value);
    }
    out += '{';
    bool first = true;
    for (const auto& [k, v] : fields) {
      out += first ? "" : ",";
      first = false;
      append_json_string(out, k);
      out += ':';
      canonical(v, out);
    }
    out += '}';
    return;
  }
  case T::ARRAY: {
    out += '[';
    bool first = true;
    const simdjson::dom::array array = e.get_array().value_unsafe();
    for (const auto v : array) {
      out += first ? "" : ",";
      first = false;
      canonical(v, out);
    }
    out += ']';
    return;
  }
  default:
    out += simdjson::minify(e);
  }
}

std::string canonical(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  const simdjson::padded_string padded(json);
  if (parser.parse(padded).get(root)) {
    return "<not JSON> " + std::string(json);
  }
  std::string out;
  canonical(root, out);
  return out;
}

struct Event {
  std::string event;
  std::string data;
};

class Collect : public SseHandler {
public:
  std::vector<Event> events;
  void on_event(std::string_view event, std::string_view data) override {
    events.push_back({std::string(event), std::string(data)});
  }
};

std::vector<Event> parse_sse(std::string_view text) {
  SseParser parser;
  Collect c;
  parser.feed(text, c);
  parser.finish(c);
  return c.events;
}

// One event per line, data in canonical JSON, for comparing streams by meaning.
std::string describe_events(std::string_view sse) {
  std::string out;
  for (const auto& e : parse_sse(sse)) {
    out += (e.event.empty() ? "-" : e.event) + " " +
           (e.data == "[DONE]" ? e.data : canonical(e.data)) + "\n";
  }
  return out;
}

Protocol protocol_named(const std::string& name) {
  if (name == "responses") {
    return Protocol::responses;
  }
  return name == "anthropic" ? Protocol::anthropic : Protocol::openai;
}

// The response every Responses case answers as; apply_patch is a freeform tool in the cases
// that call it, as Codex offers it.
ResponsesContext test_response_context() {
  ResponsesContext context;
  context.id = "resp_test";
  context.created_at = 1700000000;
  context.tools.custom = {"apply_patch"};
  return context;
}

// A case's case.yaml, read into plain strings (YAML::Node assignment shares and overwrites
// nodes, which sorting would do).
struct Case {
  std::string name;
  fs::path dir;
  std::map<std::string, std::string> meta;
  std::string get(const std::string& key, const std::string& fallback = "") const {
    const auto it = meta.find(key);
    return it == meta.end() ? fallback : it->second;
  }
};

std::vector<Case> corpus(const std::string& kind) {
  std::vector<Case> cases;
  for (const auto& entry : fs::directory_iterator(k_corpus)) {
    Case c{entry.path().filename().string(), entry.path(), {}};
    for (const auto& field : YAML::LoadFile((entry.path() / "case.yaml").string())) {
      c.meta[field.first.as<std::string>()] = field.second.as<std::string>();
    }
    if (c.get("kind") == kind) {
      cases.push_back(std::move(c));
    }
  }
  std::sort(cases.begin(), cases.end(),
            [](const Case& a, const Case& b) { return a.name < b.name; });
  return cases;
}

constexpr int64_t k_created = 1700000000;

struct StreamResult {
  std::string out;
  StreamRelay::State state;
};

StreamOptions options_of(const Case& c) {
  StreamOptions o;
  o.client_wants_usage = c.get("client_wants_usage") == "true";
  o.created = k_created;
  o.estimated_input_tokens = std::stoll(c.get("estimated_input_tokens", "0"));
  return o;
}

// Feeds input in the given slices.
StreamResult relay_stream(const Case& c, const std::vector<std::string_view>& slices) {
  const Protocol to = protocol_named(c.get("to"));
  auto relay = to == Protocol::responses
                   ? make_responses_relay(protocol_named(c.get("from")), options_of(c),
                                          test_response_context())
                   : make_stream_relay(protocol_named(c.get("from")), to, options_of(c));
  StreamResult r;
  for (auto slice : slices) {
    relay->feed(slice, r.out);
  }
  relay->finish(r.out);
  r.state = relay->state();
  return r;
}

std::string_view state_name(StreamRelay::State s) {
  switch (s) {
  case StreamRelay::State::open:
    return "open";
  case StreamRelay::State::complete:
    return "complete";
  case StreamRelay::State::upstream_error:
    return "upstream_error";
  case StreamRelay::State::malformed:
    return "malformed";
  }
  return "?";
}

// With MODELMUX_WRITE_GOLDEN=1 the corpus tests write expected files instead of checking them,
// for adding a case; every written file is reviewed by hand before it is committed.
bool writing_golden() {
  const char* v = std::getenv("MODELMUX_WRITE_GOLDEN");
  return v != nullptr && std::string_view(v) == "1";
}

void check_golden(const fs::path& expected_path, const std::string& actual, bool is_stream) {
  if (writing_golden()) {
    std::ofstream(expected_path, std::ios::binary) << actual;
    return;
  }
  REQUIRE_MESSAGE(fs::exists(expected_path), expected_path.string());
  const std::string expected = read_file(expected_path);
  if (is_stream) {
    CHECK(describe_events(actual) == describe_events(expected));
  } else {
    CHECK(canonical(actual) == canonical(expected));
  }
}

Result<std::string> translate_request_case(const Case& c) {
  const std::string body = read_file(c.dir / "input.json");
  if (c.get("from") == "responses") {
    auto parsed = parse_request_body(ApiRoute::responses, body);
    REQUIRE_MESSAGE(static_cast<bool>(parsed), c.name);
    const Protocol to = protocol_named(c.get("to"));
    ResponsesTools tools;
    const auto input = parsed->root["input"].value_unsafe();
    return to == Protocol::anthropic
               ? responses_request_to_anthropic(parsed->root, input, "upstream-model", {}, tools)
               : responses_request_to_chat(parsed->root, input, "upstream-model", {}, to, tools);
  }
  const bool from_openai = c.get("from") == "openai";
  auto parsed =
      parse_request_body(from_openai ? ApiRoute::chat_completions : ApiRoute::messages, body);
  REQUIRE_MESSAGE(static_cast<bool>(parsed), c.name);
  return from_openai ? openai_request_to_anthropic(parsed->root, "upstream-model", {})
                     : anthropic_request_to_openai(parsed->root, "upstream-model", {});
}

} // namespace

TEST_CASE("SSE events are parsed whatever the line endings, comments and data lines") {
  const auto events = parse_sse(": comment\r\nevent: a\r\ndata: 1\r\ndata:2\r\n\r\n"
                                "data: x\rdata: y\r\rid: 7\nretry: 10\ndata\n\n"
                                "event: only-name\n\n");
  REQUIRE(events.size() == 3);
  CHECK(events[0].event == "a");
  CHECK(events[0].data == "1\n2");
  CHECK(events[1].event.empty());
  CHECK(events[1].data == "x\ny");
  CHECK(events[2].data.empty()); // "data" with no colon is an empty data line
}

TEST_CASE("an SSE event split at any byte, CR and LF of one line break included, parses once") {
  const std::string text = "event: e\r\ndata: {\"a\":1}\r\n\r\ndata: [DONE]\r\n\r\n";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    CAPTURE(cut);
    SseParser parser;
    Collect c;
    parser.feed(std::string_view(text).substr(0, cut), c);
    parser.feed(std::string_view(text).substr(cut), c);
    CHECK_FALSE(parser.finish(c));
    REQUIRE(c.events.size() == 2);
    CHECK(c.events[0].event == "e");
    CHECK(c.events[0].data == "{\"a\":1}");
    CHECK(c.events[1].data == "[DONE]");
  }
}

TEST_CASE("an SSE stream that ends without its blank line still delivers its last event") {
  SseParser parser;
  Collect c;
  parser.feed("data: one\n\ndata: [DONE]", c);
  CHECK(c.events.size() == 1);
  CHECK(parser.finish(c));
  REQUIRE(c.events.size() == 2);
  CHECK(c.events[1].data == "[DONE]");
}

TEST_CASE("an SSE event over the size limit stops the parser instead of growing without end") {
  SseParser parser(64);
  Collect c;
  parser.feed("data: " + std::string(100, 'x'), c);
  CHECK(parser.overflowed());
  parser.feed("\n\ndata: later\n\n", c);
  CHECK(c.events.empty());
}

TEST_CASE("every request in the corpus translates to its golden request") {
  for (const auto& c : corpus("request")) {
    CAPTURE(c.name);
    const auto out = translate_request_case(c);
    REQUIRE_MESSAGE(static_cast<bool>(out), (out ? std::string() : out.error().message));
    check_golden(c.dir / "expected.json", out.value(), false);
  }
}

TEST_CASE("every answer in the corpus translates to its golden answer") {
  for (const auto& c : corpus("response")) {
    CAPTURE(c.name);
    const std::string body = read_file(c.dir / "input.json");
    Result<std::string> out = std::string();
    if (c.get("to") == "responses") {
      out = c.get("from") == "anthropic"
                ? anthropic_answer_to_responses(body, test_response_context())
                : chat_answer_to_responses(body, test_response_context());
    } else {
      out = c.get("from") == "anthropic" ? anthropic_response_to_openai(body, k_created)
                                         : openai_response_to_anthropic(body);
    }
    REQUIRE_MESSAGE(static_cast<bool>(out), (out ? std::string() : out.error().message));
    check_golden(c.dir / "expected.json", out.value(), false);
  }
}

TEST_CASE("every upstream error in the corpus reaches the client in its own protocol's shape") {
  for (const auto& c : corpus("error")) {
    CAPTURE(c.name);
    const auto out = translate_error_body(read_file(c.dir / "input.json"),
                                          std::stoi(c.get("status")), protocol_named(c.get("to")));
    check_golden(c.dir / "expected.json", out, false);
  }
}

TEST_CASE("every stream in the corpus translates to its golden stream and ends as expected") {
  for (const auto& c : corpus("stream")) {
    CAPTURE(c.name);
    const std::string input = read_file(c.dir / "input.sse");
    const auto r = relay_stream(c, {input});
    CHECK(state_name(r.state) == c.get("end"));
    check_golden(c.dir / "expected.sse", r.out, true);
  }
}

TEST_CASE("every stream in the corpus translates identically when split at any byte") {
  for (const auto& c : corpus("stream")) {
    CAPTURE(c.name);
    const std::string input = read_file(c.dir / "input.sse");
    const auto whole = relay_stream(c, {input});
    for (size_t cut = 0; cut <= input.size(); ++cut) {
      const std::string_view in(input);
      const auto split = relay_stream(c, {in.substr(0, cut), in.substr(cut)});
      if (split.out != whole.out || split.state != whole.state) {
        FAIL_CHECK("differs when split at byte " << cut);
        break;
      }
    }
    // One byte at a time: the worst case an upstream can send.
    std::vector<std::string_view> bytes;
    for (size_t i = 0; i < input.size(); ++i) {
      bytes.push_back(std::string_view(input).substr(i, 1));
    }
    CHECK(relay_stream(c, bytes).out == whole.out);
  }
}

TEST_CASE("every stream in the corpus translates identically with CRLF line endings") {
  for (const auto& c : corpus("stream")) {
    CAPTURE(c.name);
    const std::string input = read_file(c.dir / "input.sse");
    std::string crlf;
    for (char ch : input) {
      crlf += ch == '\n' ? std::string("\r\n") : std::string(1, ch);
    }
    CHECK(relay_stream(c, {crlf}).out == relay_stream(c, {input}).out);
  }
}

TEST_CASE("mangled streams never crash a relay, and never end as complete without the terminal") {
  // Deterministic mutations of every corpus stream: bytes flipped, dropped and cut short.
  uint64_t seed = 0x9E3779B97F4A7C15ull;
  auto next = [&seed] {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
  };
  const std::vector<std::pair<Protocol, Protocol>> pairs = {
      {Protocol::openai, Protocol::openai},
      {Protocol::openai, Protocol::anthropic},
      {Protocol::anthropic, Protocol::openai},
      {Protocol::anthropic, Protocol::anthropic}};
  for (const auto& c : corpus("stream")) {
    CAPTURE(c.name);
    const std::string input = read_file(c.dir / "input.sse");
    for (int round = 0; round < 200; ++round) {
      std::string mangled = input;
      for (int edits = 1 + static_cast<int>(next() % 4); edits > 0 && !mangled.empty(); --edits) {
        const size_t at = next() % mangled.size();
        switch (next() % 3) {
        case 0:
          mangled[at] = static_cast<char>(next() & 0xFF);
          break;
        case 1:
          mangled.erase(at, 1 + next() % 16);
          break;
        default:
          mangled.resize(at);
        }
      }
      for (const auto& [from, to] : pairs) {
        auto relay = make_stream_relay(from, to, {});
        std::string out;
        relay->feed(mangled, out);
        relay->finish(out);
        if (relay->state() == StreamRelay::State::complete) {
          // Complete means a terminal event was in what arrived.
          const bool terminal = mangled.find("[DONE]") != std::string::npos ||
                                mangled.find("finish_reason\":\"") != std::string::npos ||
                                mangled.find("message_stop") != std::string::npos;
          CHECK(terminal);
        }
      }
    }
  }
}

TEST_CASE("usage converts between protocols without counting cached tokens twice") {
  TokenUsage u;
  u.input_tokens = 12;
  u.output_tokens = 6;
  u.cache_read_tokens = 2000;
  u.cache_write_tokens = 100;
  std::string openai;
  JsonWriter w(openai);
  write_openai_usage(w, u);
  CHECK(canonical(openai) == canonical(R"({"prompt_tokens":2112,"completion_tokens":6,)"
                                       R"("total_tokens":2118,)"
                                       R"("prompt_tokens_details":{"cached_tokens":2000}})"));
  simdjson::dom::parser parser;
  const simdjson::padded_string padded(openai);
  TokenUsage back;
  read_openai_usage(parser.parse(padded).get_object().value(), back);
  // OpenAI does not tell cache writes apart; they come back as ordinary input.
  CHECK(back.prompt_tokens() == u.prompt_tokens());
  CHECK(back.cache_read_tokens == 2000);
  CHECK(back.input_tokens == 112);
  CHECK(back.output_tokens == 6);
}

TEST_CASE("OpenAI fields an Anthropic model cannot honour are a 400 naming the field") {
  const std::vector<std::pair<std::string, std::string>> refused = {
      {R"("n":2)", "n"},
      {R"("logprobs":true)", "logprobs"},
      {R"("top_logprobs":3)", "top_logprobs"},
      {R"("response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{}}})",
       "response_format"},
      {R"("frequency_penalty":0.5)", "frequency_penalty"},
      {R"("logit_bias":{"50256":-100})", "logit_bias"},
      {R"("functions":[{"name":"f"}])", "functions"},
      {R"("modalities":["text","audio"])", "modalities"},
      {R"("messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}])",
       "messages[0].content[0].type"},
      {R"("messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function",)"
       R"("function":{"name":"f","arguments":"not json"}}]}])",
       "messages[0].tool_calls[0].function.arguments"},
      {R"("messages":[{"role":"function","name":"f","content":"x"}])", "messages[0].role"},
  };
  for (const auto& [field, param] : refused) {
    CAPTURE(field);
    std::string body = R"({"model":"m",)" + field;
    if (field.find("\"messages\"") == std::string::npos) {
      body += R"(,"messages":[{"role":"user","content":"hi"}])";
    }
    body += "}";
    const auto parsed = parse_request_body(ApiRoute::chat_completions, body);
    REQUIRE(parsed);
    const auto out = openai_request_to_anthropic(parsed->root, "claude", {});
    REQUIRE_FALSE(out);
    CHECK(out.error().kind == ErrorKind::invalid_request);
    CHECK(out.error().param == param);
  }
}

TEST_CASE("an Anthropic server tool or document cannot go to an OpenAI model: a 400 naming it") {
  const auto parsed = parse_request_body(
      ApiRoute::messages,
      R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}],)"
      R"("tools":[{"type":"web_search_20250305","name":"web_search"}]})");
  REQUIRE(parsed);
  auto out = anthropic_request_to_openai(parsed->root, "local", {});
  REQUIRE_FALSE(out);
  CHECK(out.error().param == "tools[0].type");
  const auto doc = parse_request_body(
      ApiRoute::messages,
      R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[)"
      R"({"type":"document","source":{"type":"text","media_type":"text/plain","data":"x"}}]}]})");
  REQUIRE(doc);
  out = anthropic_request_to_openai(doc->root, "local", {});
  REQUIRE_FALSE(out);
  CHECK(out.error().param == "messages[0].content[0].type");
}

TEST_CASE("max_tokens for an Anthropic target comes from the request, else params, else 4096") {
  auto translate = [](std::string_view body, const std::vector<Param>& params) {
    const auto parsed = parse_request_body(ApiRoute::chat_completions, body);
    REQUIRE(parsed);
    auto out = openai_request_to_anthropic(parsed->root, "claude", params);
    REQUIRE(out);
    return out.value();
  };
  const std::string messages = R"("messages":[{"role":"user","content":"hi"}])";
  CHECK(translate(R"({"model":"m","max_tokens":10,)" + messages + "}", {{"max_tokens", "99"}})
            .find(R"("max_tokens":10)") != std::string::npos);
  const auto from_params = translate(R"({"model":"m",)" + messages + "}", {{"max_tokens", "99"}});
  CHECK(from_params.find(R"("max_tokens":99)") != std::string::npos);
  CHECK(from_params.find(R"("max_tokens":4096)") == std::string::npos);
  CHECK(translate(R"({"model":"m",)" + messages + "}", {}).find(R"("max_tokens":4096)") !=
        std::string::npos);
}

TEST_CASE("an OpenAI answer whose tool arguments are not JSON is a failed attempt, not an answer") {
  const auto out = openai_response_to_anthropic(
      R"({"id":"x","model":"m","choices":[{"index":0,"finish_reason":"tool_calls","message":)"
      R"({"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function",)"
      R"("function":{"name":"f","arguments":"{\"city\": \"Par"}}]}}]})");
  REQUIRE_FALSE(out);
  CHECK(out.error().kind == ErrorKind::upstream);
  CHECK_FALSE(anthropic_response_to_openai("<html>502 Bad Gateway</html>", 0));
  CHECK_FALSE(openai_response_to_anthropic(R"({"choices":[]})"));
}

TEST_CASE("an error body that is not JSON still reaches the client as a protocol error") {
  const auto out = translate_error_body("<html>rate limited</html>\n", 429, Protocol::anthropic);
  CHECK(canonical(out) == canonical(R"({"type":"error","error":{"type":"rate_limit_error",)"
                                    R"("message":"the upstream answered HTTP 429: )"
                                    R"(<html>rate limited</html>"}})"));
}

TEST_CASE("a stream relay reports a malformed event and stops relaying") {
  auto relay = make_stream_relay(Protocol::openai, Protocol::anthropic, {});
  std::string out;
  relay->feed("data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"
              "data: {not json\n\ndata: {\"choices\":[]}\n\n",
              out);
  CHECK(relay->state() == StreamRelay::State::malformed);
  CHECK(out.find("text_delta") != std::string::npos);
  CHECK(out.find("message_stop") == std::string::npos);
}

TEST_CASE("an OpenAI tool call that resumes after the next began is malformed, not misassigned") {
  auto relay = make_stream_relay(Protocol::openai, Protocol::anthropic, {});
  std::string out;
  relay->feed(R"(data: {"choices":[{"index":0,"delta":{"tool_calls":[)"
              R"({"index":0,"id":"a","function":{"name":"f","arguments":"{"}}]}}]})"
              "\n\n"
              R"(data: {"choices":[{"index":0,"delta":{"tool_calls":[)"
              R"({"index":1,"id":"b","function":{"name":"g","arguments":"{"}}]}}]})"
              "\n\n"
              R"(data: {"choices":[{"index":0,"delta":{"tool_calls":[)"
              R"({"index":0,"function":{"arguments":"}"}}]}}]})"
              "\n\n",
              out);
  CHECK(relay->state() == StreamRelay::State::malformed);
}

TEST_CASE("an event whose data came in several lines is relayed in as many") {
  auto relay = make_stream_relay(Protocol::openai, Protocol::openai, {});
  std::string out;
  relay->feed("data: {\"choices\":\ndata: []}\n\n", out);
  CHECK(out == "data: {\"choices\":\ndata: []}\n\n");
}

TEST_CASE("keep-alive comments are relayed once the client has its first byte, not before") {
  auto relay = make_stream_relay(Protocol::anthropic, Protocol::anthropic, {});
  std::string out;
  relay->feed(": waiting\n\n", out);
  CHECK(out.empty());
  relay->forward_comments();
  relay->feed(": still waiting\n\n", out);
  CHECK(out == ": still waiting\n\n");
}

TEST_CASE("an OpenAI upstream that ignores include_usage still gives Anthropic clients counts") {
  StreamOptions options;
  options.estimated_input_tokens = 42;
  auto relay = make_stream_relay(Protocol::openai, Protocol::anthropic, options);
  std::string out;
  relay->feed("data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"12345678\"},"
              "\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
              out);
  CHECK(relay->state() == StreamRelay::State::complete);
  CHECK(out.find(R"("usage":{"input_tokens":42,"output_tokens":2,)") != std::string::npos);
  CHECK_FALSE(relay->usage().reported);
}

} // namespace modelmux

// Found by fuzz_translate_response: an upstream could report negative token counts (a negative
// cost in the usage log), or counts whose sums and costs overflow 64 bits.
TEST_CASE("reported token counts are kept between zero and a billion, whatever the upstream says") {
  modelmux::TokenUsage anthropic;
  REQUIRE(modelmux::anthropic_response_to_openai(
      R"({"id":"m","type":"message","role":"assistant","model":"c","content":[],)"
      R"("stop_reason":"end_turn","usage":{"input_tokens":-5,"output_tokens":9223372036854775807,)"
      R"("cache_read_input_tokens":-1,"cache_creation_input_tokens":7}})",
      1, &anthropic));
  CHECK(anthropic.reported);
  CHECK(anthropic.input_tokens == 0);
  CHECK(anthropic.output_tokens == 1'000'000'000);
  CHECK(anthropic.cache_read_tokens == 0);
  CHECK(anthropic.cache_write_tokens == 7);
  modelmux::TokenUsage openai;
  REQUIRE(modelmux::openai_response_to_anthropic(
      R"({"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,)"
      R"("message":{"role":"assistant","content":"x"},"finish_reason":"stop"}],)"
      R"("usage":{"prompt_tokens":-40,"completion_tokens":5,)"
      R"("prompt_tokens_details":{"cached_tokens":-3}}})",
      &openai));
  CHECK(openai.input_tokens == 0);
  CHECK(openai.cache_read_tokens == 0);
  CHECK(openai.output_tokens == 5);
}
