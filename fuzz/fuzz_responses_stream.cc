// Streams from a hostile upstream through each relay to a Responses client — from chat
// completions, from Anthropic (chained), from a Responses target — cut in two anywhere: every
// data line is JSON, sequence numbers never repeat, and the failure event a broken stream ends
// with is JSON too.
#include "fuzz_support.h"
#include "modelmux/stream_relay.h"
#include "modelmux/translation/responses.h"

using namespace modelmux;

namespace {

// Reads the output as a client does: an event's data lines joined by newlines, at each blank
// line (an upstream event of several data lines is relayed as several).
void check_output(std::string_view out) {
  std::string data;
  bool has_data = false;
  size_t pos = 0;
  while (pos < out.size()) {
    const size_t end = std::min(out.find('\n', pos), out.size());
    const std::string_view line = out.substr(pos, end - pos);
    if (line.empty()) {
      if (has_data) {
        fuzz::require(fuzz::is_json(data), "every event's data is JSON");
      }
      data.clear();
      has_data = false;
    } else if (line.starts_with("data: ")) {
      if (has_data) {
        data += '\n';
      }
      data += line.substr(6);
      has_data = true;
    }
    pos = end + 1;
  }
  fuzz::require(!has_data, "the last event is terminated");
}

} // namespace

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
  check_output(out);
  fuzz::require(fuzz::is_json("[" + std::string(relay->output_items()) + "]"),
                "the stored items are JSON");
  return 0;
}
