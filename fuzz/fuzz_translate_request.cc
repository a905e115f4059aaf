// Requests translated both ways: any body the validator accepts either translates to valid JSON
// or is refused with a clear error; it never crashes or writes broken JSON.
#include "fuzz_support.h"
#include "modelmux/request_body.h"
#include "modelmux/translate.h"

using namespace modelmux;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const bool from_openai = data[0] % 2 == 0;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto parsed =
      parse_request_body(from_openai ? ApiRoute::chat_completions : ApiRoute::messages, body);
  if (!parsed) {
    return 0;
  }
  const std::vector<Param> defaults = {{"max_tokens", "256"}};
  const auto out = from_openai
                       ? openai_request_to_anthropic(parsed.value().root, "claude-x", defaults)
                       : anthropic_request_to_openai(parsed.value().root, "gpt-x", defaults);
  if (out) {
    fuzz::require(fuzz::is_json(out.value()), "a translated request is JSON");
  } else {
    fuzz::require(!out.error().message.empty(), "a refusal says why");
  }
  return 0;
}
