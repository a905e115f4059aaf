// The Responses API: what the translation refuses, drops and maps (pure), the conversation store
// with injected time, and the route over loopback against fake upstreams — fallback before the
// first byte, a stream cut after it ending in response.failed, previous_response_id, usage and
// the route label. Also the Claude Code request shapes and max_output_tokens on every route.
#include "fake_upstream.h"
#include "modelmux/request_body.h"
#include "modelmux/response_store.h"
#include "modelmux/translate.h"
#include "modelmux/translation/responses.h"

using namespace modelmux;
using namespace modelmux::testing;

namespace {

struct Translated {
  Result<std::string> body = std::string();
  ResponsesTools tools;
};

Translated to_chat(const std::string& body, Protocol toward = Protocol::openai) {
  thread_local std::string keep;
  keep = body;
  auto parsed = parse_request_body(ApiRoute::responses, keep);
  REQUIRE_MESSAGE(static_cast<bool>(parsed), (parsed ? "" : parsed.error().message));
  Translated t;
  simdjson::dom::element input;
  REQUIRE_FALSE(parsed->root["input"].get(input));
  t.body = responses_request_to_chat(parsed->root, input, "m", {}, toward, t.tools);
  return t;
}

std::string refusal(const std::string& body, Protocol toward = Protocol::openai) {
  const auto t = to_chat(body, toward);
  REQUIRE_FALSE(static_cast<bool>(t.body));
  CHECK(t.body.error().kind == ErrorKind::invalid_request);
  return t.body.error().message;
}

} // namespace

TEST_CASE("a Responses field or item modelmux cannot carry to the target is a 400 naming it") {
  CHECK(refusal(R"({"model":"m","input":[{"type":"message","role":"user","content":"hi"},)"
                R"({"type":"computer_call","call_id":"c"}]})") ==
        "'input[1].type' \"computer_call\" items cannot be sent to this target (message, "
        "function_call, function_call_output and reasoning can)");
  CHECK(refusal(R"({"model":"m","input":[{"type":"item_reference","id":"msg_1"}]})")
            .starts_with("'input[0]' refers to an item by id"));
  CHECK(refusal(R"({"model":"m","input":"hi","conversation":"conv_1"})") ==
        "'conversation' is not a Responses API field modelmux can translate for this target");
  CHECK(refusal(R"({"model":"m","input":"hi","background":true})")
            .starts_with("'background' asks for a background response"));
  CHECK(refusal(R"({"model":"m","input":[{"role":"user","content":[{"type":"input_file",)"
                R"("file_id":"f"}]}]})")
            .starts_with("'input[0].content[0].type' \"input_file\" content"));
  CHECK(refusal(R"({"model":"m","input":"hi","tools":[{"type":"web_search"}],)"
                R"("tool_choice":{"type":"web_search"}})")
            .starts_with("'tool_choice' \"web_search\" cannot be enforced"));
  CHECK(refusal(R"({"model":"m","input":"hi","text":{"format":{"type":"json_schema",)"
                R"("name":"x","schema":{}}}})",
                Protocol::anthropic)
            .starts_with("'text.format' \"json_schema\" cannot be enforced on an Anthropic model"));
}

TEST_CASE("a Responses request with wrong types is a 400 before any translation") {
  for (const char* body : {R"({"model":"m","input":5})", R"({"model":"m","input":"x","tools":{}})",
                           R"({"model":"m","input":"x","max_output_tokens":"many"})",
                           R"({"model":"m","input":"x","store":"no"})"}) {
    CAPTURE(body);
    CHECK_FALSE(static_cast<bool>(parse_request_body(ApiRoute::responses, body)));
  }
}

TEST_CASE(
    "hosted tools are dropped and named, namespaces flattened, freeform tools become functions") {
  const auto t = to_chat(
      R"({"model":"m","input":"hi","tools":[{"type":"web_search"},{"type":"file_search"},)"
      R"({"type":"namespace","name":"agents","tools":[{"type":"function","name":"spawn"}]},)"
      R"({"type":"custom","name":"apply_patch"}]})");
  REQUIRE(static_cast<bool>(t.body));
  CHECK(t.tools.dropped == std::vector<std::string>{"web_search", "file_search"});
  REQUIRE(t.tools.namespace_of("spawn") != nullptr);
  CHECK(*t.tools.namespace_of("spawn") == "agents");
  CHECK(t.tools.is_custom("apply_patch"));
  CHECK(t.body.value().find(R"("name":"spawn")") != std::string::npos);
  CHECK(t.body.value().find(
            R"("name":"apply_patch","parameters":{"type":"object","properties":{"input")") !=
        std::string::npos);
  CHECK(t.body.value().find("web_search") == std::string::npos);
}

TEST_CASE(
    "a call to a namespaced tool goes back with its namespace, a freeform call with its input") {
  ResponsesContext context;
  context.id = "resp_x";
  context.tools.namespaced = {{"spawn", "agents"}};
  context.tools.custom = {"apply_patch"};
  const auto out = chat_answer_to_responses(
      R"({"model":"m","choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":)"
      R"("assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":)"
      R"({"name":"spawn","arguments":"{}"}},{"id":"c2","type":"function","function":{"name":)"
      R"("apply_patch","arguments":"{\"input\":\"*** Begin Patch\"}"}}]}}]})",
      context);
  REQUIRE(static_cast<bool>(out));
  CHECK(out.value().find(R"("name":"spawn","arguments":"{}","namespace":"agents")") !=
        std::string::npos);
  CHECK(out.value().find(R"("type":"custom_tool_call","status":"completed","call_id":"c2",)"
                         R"("name":"apply_patch","input":"*** Begin Patch")") != std::string::npos);
}

TEST_CASE("a chat answer that is not one is a failed attempt, not a Responses answer") {
  ResponsesContext context;
  context.id = "resp_x";
  CHECK(chat_answer_to_responses("not json", context).error().kind == ErrorKind::upstream);
  CHECK(chat_answer_to_responses(R"({"choices":[]})", context).error().message ==
        "the upstream answer has no choices[0].message");
}

TEST_CASE("the conversation store rebuilds a chain, oldest first, and forgets by age and count") {
  using namespace std::chrono_literals;
  MemoryResponseStore store(ResponseStoreLimits{3, 1 << 20, std::chrono::seconds(60)});
  const auto t0 = ResponseStore::Clock::time_point{} + 1h;
  store.put("r1", "", R"({"role":"user","content":"a"},{"type":"message","role":"assistant"})", t0);
  store.put("r2", "r1", R"({"role":"user","content":"b"})", t0 + 1s);
  CHECK(store.conversation("r2", t0 + 2s).value() ==
        R"([{"role":"user","content":"a"},{"type":"message","role":"assistant"},)"
        R"({"role":"user","content":"b"}])");
  CHECK_FALSE(store.conversation("r9", t0).has_value());
  // r1 expires: r2's chain is broken, so r2 cannot be continued either.
  CHECK_FALSE(store.conversation("r2", t0 + 61s).has_value());
  store.put("r3", "", "{}", t0 + 2s);
  store.put("r4", "", "{}", t0 + 3s);
  CHECK(store.size() == 3); // r1 went first
  CHECK_FALSE(store.conversation("r1", t0 + 4s).has_value());
}

TEST_CASE("the conversation store stays within its bytes") {
  MemoryResponseStore store(ResponseStoreLimits{100, 64, std::chrono::seconds(60)});
  const auto now = ResponseStore::Clock::now();
  store.put("a", "", std::string(40, 'x'), now);
  store.put("b", "", std::string(40, 'y'), now);
  CHECK(store.size() == 1);
  CHECK(store.bytes() <= 64);
  store.put("huge", "", std::string(100, 'z'), now);
  CHECK_FALSE(store.conversation("huge", now).has_value());
}

TEST_CASE(
    "a Claude Code request with a system turn mid-conversation becomes a system message in place") {
  const std::string body =
      R"({"model":"m","max_tokens":32000,"thinking":{"type":"adaptive"},)"
      R"("output_config":{"effort":"high"},"context_management":{"edits":[]},)"
      R"("messages":[{"role":"user","content":[{"type":"text","text":"hi",)"
      R"("cache_control":{"type":"ephemeral"}}]},{"role":"system","content":[{"type":"text",)"
      R"("text":"agents: Explore"}]}]})";
  auto parsed = parse_request_body(ApiRoute::messages, body);
  REQUIRE(static_cast<bool>(parsed));
  const auto out = anthropic_request_to_openai(parsed->root, "m", {}, 8192);
  REQUIRE(static_cast<bool>(out));
  CHECK(out.value() == R"({"model":"m","messages":[{"role":"user","content":"hi"},)"
                       R"({"role":"system","content":"agents: Explore"}],"max_tokens":8192,)"
                       R"("reasoning_effort":"high"})");
}

TEST_CASE("reasoning effort becomes an Anthropic thinking budget below max_tokens") {
  const std::string body =
      R"({"model":"m","reasoning_effort":"high","messages":[{"role":"user","content":"x"}]})";
  auto parsed = parse_request_body(ApiRoute::chat_completions, body);
  REQUIRE(static_cast<bool>(parsed));
  const auto out = openai_request_to_anthropic(parsed->root, "m", {});
  REQUIRE(static_cast<bool>(out));
  CHECK(out.value().find(
            R"("max_tokens":20480,"thinking":{"type":"enabled","budget_tokens":16384})") !=
        std::string::npos);
}

TEST_CASE("a token limit above a target's max_output_tokens is clamped, one below is kept") {
  const std::string body = R"({"model":"m","max_tokens":32000,"messages":[]})";
  auto parsed = parse_request_body(ApiRoute::chat_completions, body);
  REQUIRE(static_cast<bool>(parsed));
  CHECK(rewrite_request_body(body, parsed.value(), "up", {}, false, 8192) ==
        R"({"model":"up","max_tokens":8192,"messages":[]})");
  CHECK(rewrite_request_body(body, parsed.value(), "up", {}, false, 64000) ==
        R"({"model":"up","max_tokens":32000,"messages":[]})");
}

namespace {

const char* const k_chat_stream =
    "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
    "\"Hello\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},"
    "\"finish_reason\":\"stop\"}]}\n\n"
    "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,"
    "\"completion_tokens\":2}}\n\ndata: [DONE]\n\n";

std::string providers(const FakeUpstream& good, int dead_port) {
  return fill(R"(
providers:
  local:
    type: openai
    base_url: {good}
  gone:
    type: openai
    base_url: http://127.0.0.1:{dead}/v1
    probe: none
routing:
  auto: [gone:m, local:m]
)",
              {{"good", good.base_url()}, {"dead", std::to_string(dead_port)}});
}

} // namespace

TEST_CASE("a Responses stream falls back past a refused target and is counted under its route") {
  FakeUpstream good([](const httplib::Request&, httplib::Response& res) {
    res.set_content(k_chat_stream, "text/event-stream");
  });
  const int dead = dead_port();
  TestDaemon d(providers(good, dead));
  const auto s =
      stream_post(d.port(), "/v1/responses", R"({"model":"auto","input":"hi","stream":true})");
  CHECK(s.status == 200);
  CHECK(s.headers.find("x-modelmux-attempts")->second == "2");
  CHECK(s.body.find("event: response.completed") != std::string::npos);
  CHECK(s.body.find(R"("input_tokens":11)") != std::string::npos);
  auto c = d.client();
  const auto metrics = c.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find(R"(route="/v1/responses")") != std::string::npos);
}

TEST_CASE(
    "a Responses stream cut after its first byte ends with response.failed, never completed") {
  FakeUpstream cut([](const httplib::Request&, httplib::Response& res) {
    res.set_content("data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":"
                    "{\"content\":\"Half\"},\"finish_reason\":null}]}\n\n",
                    "text/event-stream");
  });
  TestDaemon d(fill("providers:\n  local: {type: openai, base_url: \"{url}\"}\n",
                    {{"url", cut.base_url()}}));
  const auto s =
      stream_post(d.port(), "/v1/responses", R"({"model":"local:m","input":"hi","stream":true})");
  CHECK(s.body.find("\"delta\":\"Half\"") != std::string::npos);
  CHECK(s.body.find("event: response.failed") != std::string::npos);
  CHECK(s.body.find("response.completed") == std::string::npos);
}

TEST_CASE("previous_response_id continues a streamed conversation, and store false keeps nothing") {
  std::vector<std::string> seen;
  std::mutex m;
  FakeUpstream good([&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(m);
    seen.push_back(req.body);
    if (req.body.find(R"("stream":true)") != std::string::npos) {
      res.set_content(k_chat_stream, "text/event-stream");
    } else {
      res.set_content(R"({"id":"c","model":"m","choices":[{"index":0,"finish_reason":"stop",)"
                      R"("message":{"role":"assistant","content":"Hi"}}]})",
                      "application/json");
    }
  });
  TestDaemon d(fill("providers:\n  local: {type: openai, base_url: \"{url}\"}\n",
                    {{"url", good.base_url()}}));
  const auto first = stream_post(d.port(), "/v1/responses",
                                 R"({"model":"local:m","input":"My name is Ada.","stream":true})");
  const size_t at = first.body.find("\"id\":\"resp_");
  REQUIRE(at != std::string::npos);
  const std::string id = first.body.substr(at + 6, 37);
  auto c = d.client();
  const auto second =
      c.Post("/v1/responses",
             R"({"model":"local:m","input":"And mine?","previous_response_id":")" + id + "\"}",
             "application/json");
  REQUIRE(second);
  CHECK(second->status == 200);
  {
    std::lock_guard lock(m);
    REQUIRE(seen.size() == 2);
    CHECK(seen[1].find(R"({"role":"user","content":"My name is Ada."},{"role":"assistant",)"
                       R"("content":"Hello"},{"role":"user","content":"And mine?"})") !=
          std::string::npos);
  }
  const auto unstored = c.Post("/v1/responses", R"({"model":"local:m","input":"x","store":false})",
                               "application/json");
  REQUIRE(unstored);
  const size_t uat = unstored->body.find("\"id\":\"resp_");
  const std::string uid = unstored->body.substr(uat + 6, 37);
  const auto refused = c.Post(
      "/v1/responses", R"({"model":"local:m","input":"x","previous_response_id":")" + uid + "\"}",
      "application/json");
  REQUIRE(refused);
  CHECK(refused->status == 400);
  CHECK(refused->body.find("is unknown or has expired") != std::string::npos);
}

TEST_CASE("a token limit is clamped to what a learned context window leaves after the prompt") {
  std::string sent;
  std::mutex m;
  FakeUpstream local([&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(m);
    sent = req.body;
    res.set_content(R"({"id":"c","model":"m","choices":[{"index":0,"finish_reason":"stop",)"
                    R"("message":{"role":"assistant","content":"ok"}}]})",
                    "application/json");
  });
  TestDaemon d(fill("providers:\n  local: {type: openai, base_url: \"{url}\", probe: vllm}\n",
                    {{"url", local.base_url()}}));
  // What a vLLM probe learns from max_model_len.
  d.app().snapshot()->health[0]->learn_context_windows({{"m", 8192}});
  auto c = d.client();
  const auto r = c.Post("/v1/messages",
                        R"({"model":"local:m","max_tokens":32000,)"
                        R"("messages":[{"role":"user","content":"12345678"}]})",
                        "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
  std::lock_guard lock(m);
  // The prompt is estimated at 3 tokens (four bytes a token, the role included): 8189 are left.
  CHECK_MESSAGE(sent.find(R"("max_tokens":8189)") != std::string::npos, sent);
}

TEST_CASE("a Responses request translated straight to Anthropic says what it says through chat") {
  const std::vector<std::string> bodies = {
      R"({"model":"m","input":"hi","max_output_tokens":300})",
      R"({"model":"m","instructions":"Be brief.","stream":true,"user":"u1","temperature":0.3,)"
      R"("input":[{"type":"message","role":"developer","content":[{"type":"input_text",)"
      R"("text":"Small diffs."}]},{"role":"user","content":[{"type":"input_text","text":"What )"
      R"(is this?"},{"type":"input_image","image_url":"data:image/png;base64,AAAA"}]},)"
      R"({"type":"reasoning","id":"rs_1","summary":[]},{"type":"message","role":"assistant",)"
      R"("content":[{"type":"output_text","text":"Let me look."}]},{"type":"function_call",)"
      R"("call_id":"c1","name":"exec_command","arguments":"{\"cmd\":\"ls\"}"},)"
      R"({"type":"function_call","call_id":"c2","name":"exec_command","arguments":""},)"
      R"({"type":"function_call_output","call_id":"c1","output":"README.md"},)"
      R"({"type":"function_call_output","call_id":"c2","output":[{"type":"input_text",)"
      R"("text":"/work"}]},{"role":"user","content":"And now?"},{"type":"custom_tool_call",)"
      R"("call_id":"c3","name":"apply_patch","input":"*** Begin"},{"type":)"
      R"("custom_tool_call_output","call_id":"c3","output":"done"}],)"
      R"("tools":[{"type":"function","name":"exec_command","parameters":{"type":"object"}},)"
      R"({"type":"namespace","name":"agents","tools":[{"type":"function","name":"spawn"}]},)"
      R"({"type":"custom","name":"apply_patch","description":"Patch"},{"type":"web_search"}],)"
      R"("tool_choice":"auto","parallel_tool_calls":false,"reasoning":{"effort":"high"}})",
      R"({"model":"m","input":"x","tools":[{"type":"function","name":"f"}],)"
      R"("tool_choice":{"type":"function","name":"f"},"reasoning":{"effort":"low"}})",
      R"({"model":"m","input":"x","reasoning":{"effort":"medium"},"max_output_tokens":5000})",
  };
  for (const auto& body : bodies) {
    CAPTURE(body);
    auto parsed = parse_request_body(ApiRoute::responses, body);
    REQUIRE(static_cast<bool>(parsed));
    simdjson::dom::element input;
    REQUIRE_FALSE(parsed->root["input"].get(input));
    ResponsesTools direct_tools;
    const auto direct =
        responses_request_to_anthropic(parsed->root, input, "up", {}, direct_tools, 8192);
    ResponsesTools chat_tools;
    const auto chat = responses_request_to_chat(parsed->root, input, "up", {}, Protocol::anthropic,
                                                chat_tools, 8192);
    REQUIRE(static_cast<bool>(direct));
    REQUIRE(static_cast<bool>(chat));
    simdjson::dom::parser parser;
    simdjson::dom::element chat_root;
    REQUIRE_FALSE(parser.parse(chat.value()).get(chat_root));
    const auto through_chat = openai_request_to_anthropic(chat_root, "up", {}, 8192);
    REQUIRE(static_cast<bool>(through_chat));
    CHECK(direct.value() == through_chat.value());
    CHECK(direct_tools.dropped == chat_tools.dropped);
    CHECK(direct_tools.custom == chat_tools.custom);
  }
}
