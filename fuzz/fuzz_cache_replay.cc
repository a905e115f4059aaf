// What the response cache reads: a request body made canonical for its key, and an upstream's
// answers turned from stream to whole and back. Whatever the bytes, nothing crashes; a canonical
// body is JSON and canonical again as it is; a stream the cache would store adds up to a JSON
// answer, which replays as well-formed SSE, and replaying is stable.
// The first byte chooses the protocol (0 OpenAI chat, 1 Anthropic messages, 2 Responses) and
// whether the rest is a stream (bit 2) or a whole answer.
#include "fuzz_support.h"
#include "modelmux/response_cache.h"
#include "modelmux/translation/replay.h"

using namespace modelmux;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const Protocol protocols[] = {Protocol::openai, Protocol::anthropic, Protocol::responses};
  const Protocol protocol = protocols[(data[0] & 3) % 3];
  const bool is_stream = (data[0] & 4) != 0;
  const std::string input(reinterpret_cast<const char*>(data + 1), size - 1);

  if (const auto canonical = canonical_json(input, {"stream", "stream_options"})) {
    fuzz::require(fuzz::is_json(canonical.value()), "a canonical body is JSON");
    const auto again = canonical_json(canonical.value());
    fuzz::require(again && again.value() == canonical.value(), "canonical JSON is a fixed point");
  }

  std::string answer;
  if (is_stream) {
    const auto whole = answer_of_stream(protocol, input);
    if (!whole) {
      return 0;
    }
    answer = whole.value();
    fuzz::require(fuzz::is_json(answer), "a stream adds up to a JSON answer");
  } else {
    answer = input;
  }
  // With the usage chunk asked for, a replay keeps everything the answer has.
  const auto replayed = stream_of_answer(protocol, answer, is_stream || (data[0] & 8) != 0);
  if (!replayed) {
    fuzz::require(!is_stream, "an answer made of a stream replays");
    return 0;
  }
  fuzz::check_sse_output(replayed.value());
  const auto whole_again = answer_of_stream(protocol, replayed.value());
  fuzz::require(static_cast<bool>(whole_again), "a replayed answer is a complete stream");
  // Replay is stable: once an answer has been through it, another round changes nothing. (The
  // first round may tidy what a hostile upstream sent, such as a key given twice.)
  const auto replayed_again = stream_of_answer(protocol, whole_again.value(), true);
  fuzz::require(static_cast<bool>(replayed_again), "a replayed answer replays again");
  const auto whole_third = answer_of_stream(protocol, replayed_again.value());
  fuzz::require(whole_third && whole_third.value() == whole_again.value(),
                "a replayed answer adds up to itself");
  return 0;
}
