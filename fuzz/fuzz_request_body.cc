// Request bodies as clients send them: validation, then the model rewrite and default params
// insertion done without re-serializing. Whatever is accepted must come out as valid JSON naming
// the upstream model, with every default present.
#include "fuzz_support.h"
#include "modelmux/capability.h"
#include "modelmux/request_body.h"

using namespace modelmux;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const ApiRoute route = data[0] % 2 == 0 ? ApiRoute::chat_completions : ApiRoute::messages;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto parsed = parse_request_body(route, body);
  if (!parsed) {
    return 0;
  }
  // What the request needs of a model is read off the same document; the rewrite changes the
  // model and the defaults, never what the request needs.
  const Capabilities needs = needed_capabilities(route, parsed.value().root);
  const std::vector<Param> defaults = {{"temperature", "0.2"}, {"max_tokens", "64"}};
  const std::string out = rewrite_request_body(body, parsed.value(), "upstream/model-\"x\"",
                                               defaults, parsed.value().stream);
  fuzz::require(fuzz::is_json(out), "a rewritten body is JSON");
  const auto again = parse_request_body(route, out);
  fuzz::require(static_cast<bool>(again), "a rewritten body validates");
  fuzz::require(again.value().model == "upstream/model-\"x\"", "the model is the upstream's");
  fuzz::require(needed_capabilities(route, again.value().root) == needs,
                "a rewrite keeps what the request needs");
  // max_completion_tokens stands for max_tokens: OpenAI refuses a request with both.
  fuzz::require(
      again.value().has_key("temperature") &&
          (again.value().has_key("max_tokens") || again.value().has_key("max_completion_tokens")),
      "defaults are present");
  fuzz::require(!parsed.value().stream || again.value().include_usage, "a stream asks for usage");
  return 0;
}
