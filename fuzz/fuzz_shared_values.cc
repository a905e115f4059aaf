// What modelmux reads back from Redis (SPEC §12), where another instance, an older version or
// anyone with access may have written anything: a stored answer and a cooldown message. Whatever
// the bytes, reading them never crashes, and what is accepted writes back to the same bytes.
#include "fuzz_support.h"
#include "modelmux/response_cache.h"
#include "modelmux/shared_state.h"

using namespace modelmux;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (const auto answer = decode_cached_answer(bytes)) {
    fuzz::require(!answer->target.empty() && !answer->body.empty(), "an answer has a body");
    fuzz::require(answer->cost_micros >= 0, "a cost is not negative");
    const auto again = decode_cached_answer(encode_cached_answer(*answer));
    fuzz::require(again && again->body == answer->body && again->target == answer->target &&
                      again->cost_micros == answer->cost_micros,
                  "a stored answer reads back as written");
  }
  if (const auto cooldown = decode_cooldown(bytes)) {
    fuzz::require(cooldown->until_ms > 0 && cooldown->key_id.size() == 16, "a cooldown is sane");
    const auto again = decode_cooldown(encode_cooldown(*cooldown));
    fuzz::require(again && again->entry == cooldown->entry && again->model == cooldown->model &&
                      again->until_ms == cooldown->until_ms,
                  "a cooldown reads back as written");
  }
  return 0;
}
