// Streams from a hostile upstream through each of the four relays, cut in two anywhere: every
// data line written to the client is JSON (or [DONE]), and a stream is only "complete" when the
// upstream's terminal event arrived.
#include "fuzz_support.h"
#include "modelmux/stream_relay.h"

using namespace modelmux;

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
  fuzz::check_sse_output(out);
  return 0;
}
