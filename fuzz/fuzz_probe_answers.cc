// A model server's answers to the probes that learn about it (Ollama's /api/show): whatever
// the bytes, reading them never crashes, and learns only real capabilities and positive context
// windows.
#include "fuzz_support.h"
#include "modelmux/probe.h"

using namespace modelmux;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  ProbeResult r;
  read_ollama_show(body, r);
  if (r.capabilities) {
    fuzz::require((r.capabilities->bits & ~Capabilities::all().bits) == 0,
                  "only known capabilities are learned");
    fuzz::require(r.capabilities->has(Capability::json_schema), "Ollama takes a JSON schema");
  }
  for (const auto& [model, window] : r.context_windows) {
    fuzz::require(window > 0, "a learned context window is positive");
  }
  return 0;
}
