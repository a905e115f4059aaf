// The config loader on any text: errors with a line and column, or a config the registry and
// the reference checks accept; never a crash or an exception. Inputs naming ${file:...} or
// ${cred:...} are skipped: the fuzzer must not read the machine's files (or block on /dev/stdin).
#include "fuzz_support.h"
#include "modelmux/config.h"
#include "modelmux/registry.h"
#include "modelmux/router.h"

using namespace modelmux;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (text.find("${file:") != std::string::npos || text.find("${cred:") != std::string::npos) {
    return 0;
  }
  ConfigEnvironment env;
  env.getenv = [](const std::string& name) -> std::optional<std::string> {
    if (name == "SET") {
      return std::string("value");
    }
    return std::nullopt;
  };
  const auto load = load_config_text(text, "/nonexistent/fuzz.yaml", env);
  for (const auto& e : load.errors) {
    fuzz::require(!to_string(e).empty(), "an error says something");
  }
  if (load.ok()) {
    const auto registry = build_registry(load.config);
    (void)check_model_references(load.config, *registry);
    (void)registry->addressable_names();
  }
  return 0;
}
