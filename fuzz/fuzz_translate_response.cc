// Whole answers and error bodies from a hostile upstream, translated both ways: valid JSON out, or
// a failed attempt; never a crash.
#include "fuzz_support.h"
#include "modelmux/translate.h"

using namespace modelmux;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  TokenUsage usage;
  Result<std::string> out = data[0] % 2 == 0 ? anthropic_response_to_openai(body, 1, &usage)
                                             : openai_response_to_anthropic(body, &usage);
  if (out) {
    fuzz::require(fuzz::is_json(out.value()), "a translated answer is JSON");
  }
  if (out && usage.reported) {
    // A hostile count must not turn into negative tokens (and a negative cost).
    fuzz::require(usage.input_tokens >= 0 && usage.output_tokens >= 0 &&
                      usage.cache_read_tokens >= 0 && usage.cache_write_tokens >= 0,
                  "token counts are not negative");
  }
  const int status = 400 + data[0] % 200;
  const Protocol client = data[0] % 3 == 0 ? Protocol::anthropic : Protocol::openai;
  fuzz::require(fuzz::is_json(translate_error_body(body, status, client)),
                "a translated error body is JSON");
  return 0;
}
