// Custom models registered at runtime through the admin API, persisted in
// state_dir/models.yaml. Each entry is validated exactly as a custom_models entry of the config
// is; its API keys are written only sealed (AES-256-GCM under state_dir/secret.key) and held in
// clear only in memory. The file is replaced atomically on every change.
#pragma once

#include "modelmux/config.h"
#include "modelmux/result.h"
#include "modelmux/secret_box.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace modelmux {

class RuntimeModels {
public:
  // Entries kept in memory only (no state_dir): for tests and `check`.
  RuntimeModels() = default;
  // Reads state_dir/models.yaml if there is one; its sealed keys need state_dir/secret.key.
  static Result<RuntimeModels> open(const std::string& state_dir);

  // A JSON object shaped like a custom_models entry of the config, checked like one. Returns the
  // model's id. References (${env:...}, ${file:...}) are refused: the API is not a way to read
  // the daemon's environment or files.
  Result<std::string> add(std::string_view json_body, const Config& config);
  // False when there is no such runtime model.
  Result<bool> remove(const std::string& id);

  // The entries as the config loader reads them, marked from_api.
  std::vector<CustomModelConfig> entries() const;
  size_t size() const { return m_entries.size(); }

private:
  Status persist();

  std::string m_state_dir;                      // empty: not persisted
  std::map<std::string, std::string> m_entries; // id -> the entry as YAML, keys in clear
};

} // namespace modelmux
