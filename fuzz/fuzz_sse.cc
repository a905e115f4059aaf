// The incremental SSE parser: any bytes, split anywhere, give the same events as when fed whole.
#include "fuzz_support.h"
#include "modelmux/sse.h"

#include <string>
#include <vector>

using namespace modelmux;

namespace {

struct Recorder : SseHandler {
  std::vector<std::string> seen;
  void on_event(std::string_view event, std::string_view data) override {
    seen.push_back(std::string(event) + '\0' + std::string(data));
  }
  void on_comment(std::string_view comment) override {
    seen.push_back(std::string("comment") + '\n' + std::string(comment));
  }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  Recorder whole;
  SseParser a;
  a.feed(bytes, whole);
  const bool whole_ok = a.finish(whole);

  Recorder split;
  SseParser b;
  const size_t cut = bytes.empty() ? 0 : data[0] % (bytes.size() + 1);
  b.feed(bytes.substr(0, cut), split);
  b.feed(bytes.substr(cut), split);
  const bool split_ok = b.finish(split);
  fuzz::require(whole.seen == split.seen, "split input gives the same events");
  fuzz::require(whole_ok == split_ok, "split input ends the same way");
  return 0;
}
