// Streams from a hostile upstream through each of the four relays, cut in two anywhere: every
// data line written to the client is JSON (or [DONE]), and a stream is only "complete" when the
// upstream's terminal event arrived.
#include "fuzz_support.h"
#include "modelmux/stream_relay.h"

using namespace modelmux;

namespace {

// Reads the output as a client does: an event's data lines joined by newlines, at each blank
// line.
void check_output(std::string_view out) {
  std::string data;
  bool has_data = false;
  size_t pos = 0;
  while (pos < out.size()) {
    const size_t end = std::min(out.find('\n', pos), out.size());
    const std::string_view line = out.substr(pos, end - pos);
    if (line.empty()) {
      if (has_data && data != "[DONE]") {
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
  const Protocol upstream = data[0] % 2 == 0 ? Protocol::openai : Protocol::anthropic;
  const Protocol client = (data[0] / 2) % 2 == 0 ? Protocol::openai : Protocol::anthropic;
  StreamOptions options;
  options.client_wants_usage = (data[0] / 4) % 2 == 0;
  options.created = 1;
  options.estimated_input_tokens = 10;
  auto relay = make_stream_relay(upstream, client, options);
  std::string out;
  const size_t cut = bytes.empty() ? 0 : data[1] % (bytes.size() + 1);
  relay->feed(bytes.substr(0, cut), out);
  relay->feed(bytes.substr(cut), out);
  relay->finish(out);
  check_output(out);
  return 0;
}
