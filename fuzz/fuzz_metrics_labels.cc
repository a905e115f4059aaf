// The Prometheus renderer's label escaping: any label value renders on one line, and unescaping
// it gives the value back.
#include "fuzz_support.h"
#include "modelmux/metrics.h"

using namespace modelmux;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string value(reinterpret_cast<const char*>(data), size);
  MetricFamily family{"modelmux_fuzz_total", "help", "counter", {}};
  family.samples.push_back(Sample{{{"model", value}}, 1, std::nullopt});
  const std::string text = render_exposition({family});
  const std::string prefix = "modelmux_fuzz_total{model=\"";
  const size_t start = text.find(prefix);
  fuzz::require(start != std::string::npos, "the sample is rendered");
  std::string unescaped;
  size_t i = start + prefix.size();
  for (; i < text.size() && text[i] != '"'; ++i) {
    fuzz::require(text[i] != '\n', "a label value stays on its line");
    if (text[i] == '\\') {
      ++i;
      fuzz::require(i < text.size(), "an escape is complete");
      fuzz::require(text[i] == '\\' || text[i] == '"' || text[i] == 'n', "only \\\\ \\\" \\n");
      unescaped += text[i] == 'n' ? '\n' : text[i];
    } else {
      unescaped += text[i];
    }
  }
  fuzz::require(i < text.size(), "the label value is closed");
  fuzz::require(text.compare(i, 3, "\"} ") == 0, "the value follows the labels");
  fuzz::require(unescaped == value, "unescaping gives the value back");
  return 0;
}
