// Request bodies: validation errors that name the field, and the model splice that leaves every
// other byte of the client's body as it was.
#include "modelmux/request_body.h"

#include <doctest/doctest.h>

using namespace modelmux;

namespace {

std::string rewrite(std::string_view body, std::string_view model,
                    const std::vector<Param>& params = {}) {
  auto parsed = parse_request_body(ApiRoute::chat_completions, body);
  REQUIRE_MESSAGE(parsed, (parsed ? "" : parsed.error().message));
  return rewrite_request_body(body, parsed.value(), model, params);
}

Error error_for(ApiRoute route, std::string_view body) {
  auto parsed = parse_request_body(route, body);
  REQUIRE_FALSE(parsed);
  CHECK(parsed.error().kind == ErrorKind::invalid_request);
  return parsed.error();
}

} // namespace

TEST_CASE("the model is replaced and every other byte is kept") {
  const std::string body =
      "{ \"messages\" : [{\"role\":\"user\",\"content\":\"model: \\\"x\\\"\"}],\n"
      "  \"model\" :  \"code\" ,\"temperature\":0.70}";
  CHECK(rewrite(body, "meta-llama/llama-3.1-70b") ==
        "{ \"messages\" : [{\"role\":\"user\",\"content\":\"model: \\\"x\\\"\"}],\n"
        "  \"model\" :  \"meta-llama/llama-3.1-70b\" ,\"temperature\":0.70}");
}

TEST_CASE("a model name with escapes is located by its token, not by text search") {
  const std::string body = R"({"model":"a\"b","messages":[]})";
  auto parsed = parse_request_body(ApiRoute::chat_completions, body);
  REQUIRE(parsed);
  CHECK(parsed->model == "a\"b");
  CHECK(rewrite(body, "up\"stream") == R"({"model":"up\"stream","messages":[]})");
}

TEST_CASE("default params are inserted only where the request omits them") {
  const std::vector<Param> params = {
      {"temperature", "0.2"}, {"max_tokens", "4096"}, {"top_p", "0.9"}};
  SUBCASE("all absent") {
    CHECK(rewrite(R"({"model":"m","messages":[]})", "u", params) ==
          R"({"temperature":0.2,"max_tokens":4096,"top_p":0.9,"model":"u","messages":[]})");
  }
  SUBCASE("the client's own values win") {
    CHECK(rewrite(R"({"model":"m","messages":[],"temperature":1,"top_p":null})", "u", params) ==
          R"({"max_tokens":4096,"model":"u","messages":[],"temperature":1,"top_p":null})");
  }
  SUBCASE("max_completion_tokens counts as max_tokens") {
    CHECK(rewrite(R"({"model":"m","messages":[],"max_completion_tokens":5})", "u", params) ==
          R"({"temperature":0.2,"top_p":0.9,"model":"u","messages":[],"max_completion_tokens":5})");
  }
}

TEST_CASE("the parsed body reports stream, include_usage and a prompt estimate") {
  auto parsed = parse_request_body(
      ApiRoute::chat_completions,
      R"({"model":"m","stream":true,"stream_options":{"include_usage":true},)"
      R"("messages":[{"role":"user","content":"0123456789012345678901234567890123456789"}]})");
  REQUIRE(parsed);
  CHECK(parsed->stream);
  CHECK(parsed->include_usage);
  CHECK(parsed->estimated_prompt_tokens >= 10);
  CHECK(parsed->estimated_prompt_tokens <= 14);
}

TEST_CASE("malformed or empty bodies are refused with a clear message") {
  CHECK(error_for(ApiRoute::chat_completions, "").message ==
        "the request body is empty; send a JSON object with a \"model\" field");
  CHECK(error_for(ApiRoute::chat_completions, R"({"model":"m",)")
            .message.rfind("the request body is not valid JSON (", 0) == 0);
  CHECK(error_for(ApiRoute::chat_completions, R"(["model"])").message ==
        "the request body must be a JSON object");
  CHECK(error_for(ApiRoute::chat_completions, "{\"model\":\"\xff\",\"messages\":[]}")
            .message.rfind("the request body is not valid JSON", 0) == 0);
}

TEST_CASE("a missing or non-string model is refused naming the field") {
  auto e = error_for(ApiRoute::chat_completions, R"({"messages":[]})");
  CHECK(e.message == "'model' is required");
  CHECK(e.param == "model");
  e = error_for(ApiRoute::chat_completions, R"({"model":42,"messages":[]})");
  CHECK(e.message == "'model' must be a string, got an integer");
  e = error_for(ApiRoute::chat_completions, R"({"model":"","messages":[]})");
  CHECK(e.message == "'model' must not be empty");
  e = error_for(ApiRoute::chat_completions, R"({"model":"a","model":"b","messages":[]})");
  CHECK(e.message == "'model' appears more than once in the request body");
}

TEST_CASE("wrong-typed fields are refused naming the field, per route") {
  auto e = error_for(ApiRoute::chat_completions, R"({"model":"m","messages":{},"stream":true})");
  CHECK(e.message == "'messages' must be an array, got an object");
  e = error_for(ApiRoute::chat_completions, R"({"model":"m","messages":[],"stream":"yes"})");
  CHECK(e.message == "'stream' must be a boolean, got a string");
  CHECK(e.param == "stream");
  e = error_for(ApiRoute::chat_completions, R"({"model":"m","messages":[],"max_tokens":1.5})");
  CHECK(e.message == "'max_tokens' must be an integer, got a number");
  e = error_for(ApiRoute::chat_completions, R"({"model":"m","messages":[{"content":"x"}]})");
  CHECK(e.message == "'messages[0].role' is required");
  e = error_for(ApiRoute::chat_completions,
                R"({"model":"m","messages":[{"role":"user","content":5}]})");
  CHECK(e.message == "'messages[0].content' must be a string or an array, got an integer");
  e = error_for(ApiRoute::messages, R"({"model":"m","messages":[]})");
  CHECK(e.message == "'max_tokens' is required");
  e = error_for(ApiRoute::embeddings, R"({"model":"m","input":5})");
  CHECK(e.message == "'input' must be a string or an array, got an integer");
  e = error_for(ApiRoute::completions, R"({"model":"m"})");
  CHECK(e.message == "'prompt' is required");
}

// Found by fuzz_request_body: an array stream_options (unchecked on /v1/messages, which has no
// such field) was located as its first token only, and the rewrite left "...]" behind.
TEST_CASE("a stream_options that is not an object is replaced whole, leaving valid JSON") {
  const std::string body =
      R"({"model":"m","stream_options":[ "END" ],"messages":[],"stream":true,"max_tokens":5})";
  auto parsed = parse_request_body(ApiRoute::messages, body);
  REQUIRE(parsed);
  const auto out = rewrite_request_body(body, parsed.value(), "up", {}, true);
  CHECK(out ==
        R"({"model":"up","stream_options":{"include_usage":true},"messages":[],"stream":true,)"
        R"("max_tokens":5})");
  CHECK(parse_request_body(ApiRoute::messages, out));
}

// Found by fuzz_request_body: with a key given twice, modelmux and the upstream could each read
// a different one, so the request would be routed, billed and served as different things.
TEST_CASE("a top-level key given twice, or written with escapes, is refused and named") {
  const auto dup = error_for(ApiRoute::chat_completions,
                             R"({"model":"custom:cheap","messages":[],"model":"gpt-4o"})");
  CHECK(dup.kind == ErrorKind::invalid_request);
  CHECK(dup.param == "model");
  CHECK_MESSAGE(dup.message.find("'model' appears more than once") != std::string::npos,
                dup.message);
  const auto twice =
      error_for(ApiRoute::messages, R"({"model":"m","max_tokens":1,"messages":[],"stream":true,)"
                                    R"("stream_options":{},"stream_options":{"x":1}})");
  CHECK(twice.param == "stream_options");
  // "mod\u0065l" is "model" to any JSON parser.
  const auto spelled =
      error_for(ApiRoute::chat_completions, R"({"mod\u0065l":"gpt-4o","model":"m","messages":[]})");
  CHECK(spelled.param == "model");
  const auto escaped =
      error_for(ApiRoute::chat_completions, R"({"mod\u0065l":"gpt-4o","messages":[]})");
  CHECK_MESSAGE(escaped.message.find("escape") != std::string::npos, escaped.message);
  // Nested objects may repeat keys their own way; only the top level is the request's shape.
  CHECK(parse_request_body(ApiRoute::chat_completions,
                           R"({"model":"m","messages":[{"role":"user","content":"a"}],)"
                           R"("metadata":{"a":1,"b":2}})"));
}
