// Responses requests and answers from hostile bytes. First byte bit 0: the target (OpenAI chat
// or Anthropic, through chat); bit 1: the bytes are an answer of that target to translate back
// instead.
// Whatever the input, the output is JSON or a refusal that says why.
#include "fuzz_support.h"
#include "modelmux/request_body.h"
#include "modelmux/translation/responses.h"

using namespace modelmux;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 2) {
    ResponsesContext context;
    context.id = "resp_fuzz";
    context.tools.custom = {"apply_patch"};
    context.tools.namespaced = {{"spawn", "agents"}};
    TokenUsage usage;
    std::string items;
    const auto out = data[0] & 1 ? anthropic_answer_to_responses(body, context, &usage, &items)
                                 : chat_answer_to_responses(body, context, &usage, &items);
    if (out) {
      fuzz::require(fuzz::is_json(out.value()), "a translated answer is JSON");
      fuzz::require(fuzz::is_json("[" + items + "]"), "the stored items are JSON");
      fuzz::require(usage.input_tokens >= 0 && usage.output_tokens >= 0, "counts are not negative");
    }
    return 0;
  }
  const auto parsed = parse_request_body(ApiRoute::responses, body);
  if (!parsed) {
    return 0;
  }
  simdjson::dom::element input;
  if (parsed.value().root["input"].get(input)) {
    return 0;
  }
  fuzz::require(fuzz::is_json("[" + responses_input_items(input) + "]"), "input items are JSON");
  ResponsesTools tools;
  const Protocol toward = data[0] & 1 ? Protocol::anthropic : Protocol::openai;
  const auto out = toward == Protocol::anthropic
                       ? responses_request_to_anthropic(parsed.value().root, input, "m",
                                                        {{"temperature", "0.1"}}, tools, 4096)
                       : responses_request_to_chat(parsed.value().root, input, "m",
                                                   {{"temperature", "0.1"}}, toward, tools, 4096);
  if (out) {
    fuzz::require(fuzz::is_json(out.value()), "a translated request is JSON");
  } else {
    fuzz::require(!out.error().message.empty(), "a refusal says why");
  }
  return 0;
}
