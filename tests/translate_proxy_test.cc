// Translation through the daemon over loopback: clients of one protocol against fake upstreams
// of the other, streamed and not, answering with the conformance corpus's own wire fixtures.
#include "fake_upstream.h"

#include <fstream>
#include <sstream>

using namespace modelmux;
using namespace modelmux::testing;

namespace {

std::string corpus_file(const std::string& name) {
  std::ifstream in(std::string(MODELMUX_SOURCE_DIR) + "/tests/testdata/translation/" + name,
                   std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  REQUIRE_MESSAGE(!s.str().empty(), name);
  return s.str();
}

// Serves body as an SSE stream in slices of a few bytes, so events arrive cut at odd places.
void serve_sliced(httplib::Response& res, std::string body, size_t slice = 7) {
  auto text = std::make_shared<std::string>(std::move(body));
  res.set_chunked_content_provider("text/event-stream",
                                   [text, slice](size_t offset, httplib::DataSink& sink) {
                                     if (offset >= text->size()) {
                                       sink.done();
                                       return true;
                                     }
                                     const size_t n = std::min(slice, text->size() - offset);
                                     return sink.write(text->data() + offset, n);
                                   });
}

std::string two_providers(const FakeUpstream& anthropic, const FakeUpstream& openai) {
  return fill(R"(
providers:
  claude:
    type: anthropic
    base_url: {anthropic}
    api_keys: [sk-ant-upstream]
  local:
    type: openai
    base_url: {openai}
custom_models:
  - id: demo
    type: mock
)",
              {{"anthropic", anthropic.base_url()}, {"openai", openai.base_url()}});
}

simdjson::dom::element parse(simdjson::dom::parser& parser, const std::string& body) {
  simdjson::dom::element e;
  REQUIRE_MESSAGE(!parser.parse(body).get(e), body);
  return e;
}

const std::string k_tools_request =
    R"({"model":"claude:claude-sonnet-4-5","messages":[)"
    R"({"role":"system","content":"You check the weather."},)"
    R"({"role":"user","content":"Weather in Paris and Rome?"}],)"
    R"("tools":[{"type":"function","function":{"name":"get_weather","parameters":)"
    R"({"type":"object","properties":{"city":{"type":"string"}}}}}]})";

} // namespace

TEST_CASE("an OpenAI client gets tool calls, stop reason and usage from an Anthropic target") {
  FakeUpstream anthropic([](const httplib::Request&, httplib::Response& res) {
    res.set_content(corpus_file("response_anthropic_to_openai_tools/input.json"),
                    "application/json");
  });
  FakeUpstream openai([](const httplib::Request&, httplib::Response&) {});
  TestDaemon d(two_providers(anthropic, openai));
  const auto r = d.client().Post("/v1/chat/completions", k_tools_request, "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(header(r, "x-modelmux-target") == "claude:claude-sonnet-4-5");

  const auto seen = anthropic.seen().at(0);
  CHECK(seen.path == "/v1/messages");
  CHECK(seen.headers.find("x-api-key")->second == "sk-ant-upstream");
  simdjson::dom::parser up_parser;
  const auto sent = parse(up_parser, seen.body);
  CHECK(std::string_view(sent["system"].get_string().value()) == "You check the weather.");
  CHECK(int64_t(sent["max_tokens"].get_int64().value()) == 4096);
  CHECK(std::string_view(sent["tools"].at(0)["name"].get_string().value()) == "get_weather");

  simdjson::dom::parser parser;
  const auto answer = parse(parser, r->body);
  CHECK(std::string_view(answer["object"].get_string().value()) == "chat.completion");
  const auto choice = answer["choices"].at(0);
  CHECK(std::string_view(choice["finish_reason"].get_string().value()) == "tool_calls");
  const auto calls = choice["message"]["tool_calls"].get_array().value();
  REQUIRE(calls.size() == 2);
  CHECK(std::string_view(calls.at(1)["function"]["arguments"].get_string().value()) ==
        R"({"city":"Rome","unit":"celsius"})");
  CHECK(int64_t(answer["usage"]["prompt_tokens"].get_int64().value()) == 350);
  CHECK(int64_t(answer["usage"]["completion_tokens"].get_int64().value()) == 90);
  // The usage record has the same tokens, read while translating.
  REQUIRE(d.app().wait_for_usage(1, std::chrono::seconds(20)));
  const auto usage = d.app().usage_json("all");
  REQUIRE(usage);
  CHECK(usage->find(R"("claude:claude-sonnet-4-5":{"tokens":440,)") != std::string::npos);
}

TEST_CASE("an Anthropic client streams parallel tool calls from an OpenAI target, usage exact") {
  FakeUpstream anthropic([](const httplib::Request&, httplib::Response&) {});
  FakeUpstream openai([](const httplib::Request&, httplib::Response& res) {
    serve_sliced(res, corpus_file("stream_openai_to_anthropic_parallel_tools/input.sse"));
  });
  TestDaemon d(two_providers(anthropic, openai));
  const auto s =
      stream_post(d.port(), "/v1/messages",
                  R"({"model":"local:qwen","max_tokens":300,"stream":true,"system":"Be brief.",)"
                  R"("messages":[{"role":"user","content":"Weather in Paris and Rome?"}],)"
                  R"("tools":[{"name":"get_weather","input_schema":{"type":"object"}}]})");
  CHECK(s.status == 200);
  const auto seen = openai.seen().at(0);
  CHECK(seen.path == "/v1/chat/completions");
  CHECK(seen.body.find(R"("stream_options":{"include_usage":true})") != std::string::npos);
  CHECK(seen.body.find(R"({"role":"system","content":"Be brief."})") != std::string::npos);
  CHECK(seen.headers.count("anthropic-version") == 0);

  CHECK(s.body.rfind("event: message_start\n", 0) == 0);
  CHECK(s.body.find(R"("content_block":{"type":"tool_use","id":"call_b","name":"get_weather")") !=
        std::string::npos);
  CHECK(s.body.find(R"("delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":)"
                    R"({"input_tokens":80,"output_tokens":30,)") != std::string::npos);
  const std::string end = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
  CHECK(s.body.size() > end.size());
  CHECK(s.body.substr(s.body.size() - end.size()) == end);
}

TEST_CASE("an OpenAI client streams from an Anthropic target and gets usage when it asks") {
  FakeUpstream anthropic([](const httplib::Request&, httplib::Response& res) {
    serve_sliced(res, corpus_file("stream_anthropic_to_openai_text/input.sse"), 5);
  });
  FakeUpstream openai([](const httplib::Request&, httplib::Response&) {});
  TestDaemon d(two_providers(anthropic, openai));
  std::string body = chat_body("claude:claude-sonnet-4-5", true);
  SUBCASE("asked") {
    body.insert(1, R"("stream_options":{"include_usage":true},)");
    const auto s = stream_post(d.port(), "/v1/chat/completions", body);
    CHECK(s.body.find(R"("choices":[],"usage":{"prompt_tokens":1025,"completion_tokens":12,)") !=
          std::string::npos);
    CHECK(s.body.find(R"("finish_reason":"stop")") != std::string::npos);
    CHECK(s.body.substr(s.body.size() - 14) == "data: [DONE]\n\n");
  }
  SUBCASE("not asked") {
    const auto s = stream_post(d.port(), "/v1/chat/completions", body);
    CHECK(s.body.find(R"("usage")") == std::string::npos);
    CHECK(s.body.find(R"("delta":{"content":"ld — ünïcode ✓ \"quoted\"\n"})") != std::string::npos);
    CHECK(s.body.substr(s.body.size() - 14) == "data: [DONE]\n\n");
  }
}

TEST_CASE("an OpenAI stream always asks upstream for usage and drops what the client did not ask") {
  FakeUpstream openai([](const httplib::Request&, httplib::Response& res) {
    serve_sliced(res, corpus_file("stream_openai_passthrough_usage_kept/input.sse"));
  });
  TestDaemon d(fill("providers:\n  local: {type: openai, base_url: \"{url}\"}\n",
                    {{"url", openai.base_url()}}));
  SUBCASE("no stream_options: inserted") {
    const auto s = stream_post(d.port(), "/v1/chat/completions", chat_body("local:m", true));
    CHECK(openai.seen().at(0).body.find(R"("stream_options":{"include_usage":true})") !=
          std::string::npos);
    CHECK(s.body.find(R"("choices":[])") == std::string::npos);
    CHECK(s.body.find(R"("finish_reason":"stop")") != std::string::npos);
    CHECK(s.body.substr(s.body.size() - 14) == "data: [DONE]\n\n");
  }
  SUBCASE("stream_options without include_usage: rewritten, other options kept") {
    std::string body = chat_body("local:m", true);
    body.insert(1, R"("stream_options": {"include_obfuscation": false}, )");
    const auto s = stream_post(d.port(), "/v1/chat/completions", body);
    CHECK(openai.seen().at(0).body.find(
              R"("stream_options": {"include_obfuscation":false,"include_usage":true}, )") !=
          std::string::npos);
    CHECK(s.body.find(R"("choices":[])") == std::string::npos);
  }
  SUBCASE("asked: kept") {
    std::string body = chat_body("local:m", true);
    body.insert(1, R"("stream_options":{"include_usage":true},)");
    const auto s = stream_post(d.port(), "/v1/chat/completions", body);
    CHECK(s.body.find(R"("choices":[],"usage":{"prompt_tokens":9)") != std::string::npos);
  }
}

TEST_CASE("an upstream error event before the first byte falls back, the client sees one answer") {
  FakeUpstream anthropic([](const httplib::Request&, httplib::Response& res) {
    serve_sliced(res, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
                      "\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
  });
  FakeUpstream openai([](const httplib::Request&, httplib::Response& res) {
    serve_sliced(res, corpus_file("stream_openai_passthrough_usage_kept/input.sse"));
  });
  TestDaemon d(two_providers(anthropic, openai) +
               "routing:\n  auto: [claude:claude-sonnet-4-5, local:m]\n");
  const auto s = stream_post(d.port(), "/v1/chat/completions", chat_body("auto", true));
  CHECK(s.status == 200);
  CHECK(s.headers.find("x-modelmux-target")->second == "local:m");
  CHECK(s.headers.find("x-modelmux-attempts")->second == "2");
  CHECK(s.body.find("Overloaded") == std::string::npos);
  CHECK(s.body.substr(s.body.size() - 14) == "data: [DONE]\n\n");
}

TEST_CASE("a translated stream cut short after the first byte ends with an error event") {
  FakeUpstream anthropic([](const httplib::Request&, httplib::Response&) {});
  FakeUpstream openai([](const httplib::Request&, httplib::Response& res) {
    serve_sliced(res, corpus_file("stream_openai_to_anthropic_truncated/input.sse"));
  });
  TestDaemon d(two_providers(anthropic, openai));
  const auto s = stream_post(d.port(), "/v1/messages",
                             R"({"model":"local:m","max_tokens":5,"stream":true,)"
                             R"("messages":[{"role":"user","content":"hi"}]})");
  CHECK(s.status == 200);
  CHECK(s.body.find(R"("text":"The answer is")") != std::string::npos);
  CHECK(s.body.find("message_stop") == std::string::npos);
  CHECK(s.body.find("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\"") !=
        std::string::npos);
}

TEST_CASE("a same-protocol stream that ends without [DONE] or a finish_reason is not complete") {
  FakeUpstream openai([](const httplib::Request&, httplib::Response& res) {
    serve_sliced(res, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"par\"}}]}\n\n");
  });
  TestDaemon d(fill("providers:\n  local: {type: openai, base_url: \"{url}\"}\n",
                    {{"url", openai.base_url()}}));
  const auto s = stream_post(d.port(), "/v1/chat/completions", chat_body("local:m", true));
  CHECK(s.body.find("\"par\"") != std::string::npos);
  CHECK(s.body.find("data: {\"error\":") != std::string::npos);
  CHECK(s.body.find("[DONE]") == std::string::npos);
}

TEST_CASE("an upstream 4xx reaches the client in the client's protocol, status kept") {
  FakeUpstream anthropic([](const httplib::Request&, httplib::Response& res) {
    res.status = 400;
    res.set_content(corpus_file("error_anthropic_to_openai/input.json"), "application/json");
  });
  FakeUpstream openai([](const httplib::Request&, httplib::Response& res) {
    res.status = 404;
    res.set_content(corpus_file("error_openai_to_anthropic/input.json"), "application/json");
  });
  TestDaemon d(two_providers(anthropic, openai));
  auto r = d.client().Post("/v1/chat/completions", chat_body("claude:claude-sonnet-4-5"),
                           "application/json");
  REQUIRE(r);
  CHECK(r->status == 400);
  CHECK(error_message(r->body) ==
        "messages: roles must alternate between \"user\" and \"assistant\"");
  CHECK(r->body.find(R"("type":"invalid_request_error")") != std::string::npos);
  const auto s = stream_post(d.port(), "/v1/messages",
                             R"({"model":"local:gpt-9","max_tokens":5,"stream":true,)"
                             R"("messages":[{"role":"user","content":"hi"}]})");
  CHECK(s.status == 404);
  CHECK(s.body.rfind(R"({"type":"error","error":{"type":"not_found_error",)", 0) == 0);
}

TEST_CASE("a request an Anthropic target cannot honour is a 400, unless another target can") {
  FakeUpstream anthropic([](const httplib::Request&, httplib::Response&) {});
  FakeUpstream openai([](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"id":"c","object":"chat.completion","created":1,"model":"m","choices":[)"
                    R"({"index":0,"message":{"role":"assistant","content":"a"},)"
                    R"("finish_reason":"stop"},{"index":1,"message":{"role":"assistant",)"
                    R"("content":"b"},"finish_reason":"stop"}]})",
                    "application/json");
  });
  TestDaemon d(two_providers(anthropic, openai) +
               "routing:\n  auto: [claude:claude-sonnet-4-5, local:m]\n");
  std::string body = chat_body("claude:claude-sonnet-4-5");
  body.insert(1, R"("n":2,)");
  auto r = d.client().Post("/v1/chat/completions", body, "application/json");
  REQUIRE(r);
  CHECK(r->status == 400);
  CHECK(r->body.find(R"("param":"n")") != std::string::npos);
  CHECK(anthropic.request_count() == 0);
  body = chat_body("auto");
  body.insert(1, R"("n":2,)");
  r = d.client().Post("/v1/chat/completions", body, "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(header(r, "x-modelmux-target") == "local:m");
  CHECK(header(r, "x-modelmux-attempts") == "1");
}

TEST_CASE("an OpenAI answer with broken tool arguments falls back instead of reaching the client") {
  FakeUpstream anthropic([](const httplib::Request&, httplib::Response& res) {
    res.set_content(corpus_file("response_anthropic_to_openai_max_tokens/input.json"),
                    "application/json");
  });
  FakeUpstream openai([](const httplib::Request&, httplib::Response& res) {
    res.set_content(
        R"({"id":"x","model":"m","choices":[{"index":0,"finish_reason":)"
        R"("tool_calls","message":{"role":"assistant","content":null,"tool_calls":)"
        R"([{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a"}}]}}]})",
        "application/json");
  });
  TestDaemon d(two_providers(anthropic, openai) +
               "routing:\n  auto: [local:m, claude:claude-haiku-4-5]\n");
  const auto r = d.client().Post(
      "/v1/messages",
      R"({"model":"auto","max_tokens":5,"messages":[{"role":"user","content":"hi"}]})",
      "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(header(r, "x-modelmux-target") == "claude:claude-haiku-4-5");
  simdjson::dom::parser parser;
  CHECK(std::string_view(parse(parser, r->body)["stop_reason"].get_string().value()) ==
        "max_tokens");
}
