// Streams from a hostile upstream through each relay to a Responses client — from chat
// completions, from Anthropic, from a Responses target — cut in two anywhere: every event's data
// is JSON, so is the failure event a broken stream ends with, and so are the items it keeps for
// the conversation store.
#include "fuzz_support.h"
#include "modelmux/stream_relay.h"
#include "modelmux/translation/responses.h"

using namespace modelmux;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) {
    return 0;
  }
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 2, size - 2);
  const Protocol upstream = data[0] % 3 == 0   ? Protocol::openai
                            : data[0] % 3 == 1 ? Protocol::anthropic
                                               : Protocol::responses;
  StreamOptions options;
  options.estimated_input_tokens = 10;
  ResponsesContext context;
  context.id = "resp_fuzz";
  context.tools.custom = {"apply_patch"};
  auto relay = make_responses_relay(upstream, options, context);
  std::string out;
  const size_t cut = bytes.empty() ? 0 : data[1] % (bytes.size() + 1);
  relay->feed(bytes.substr(0, cut), out);
  relay->feed(bytes.substr(cut), out);
  relay->finish(out);
  if (relay->state() == StreamRelay::State::open) {
    relay->write_failure(make_error(ErrorKind::upstream, "cut \"short\""), out);
  }
  fuzz::check_sse_output(out);
  fuzz::require(fuzz::is_json("[" + std::string(relay->output_items()) + "]"),
                "the stored items are JSON");
  return 0;
}
