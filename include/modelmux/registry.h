// The registry: the targets a config defines, resolved and indexed for the router. A target is
// one endpoint plus credentials (a provider, or a custom model); health is kept per target.
// Built once per config load and shared read-only by every request on that config.
#pragma once

#include "modelmux/api.h"
#include "modelmux/config.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace modelmux {

Protocol protocol_of(TargetType type);

struct Target {
  size_t index = 0;
  std::string name; // "openai" for a provider, "custom:local-llama" for a custom model
  bool is_custom = false;
  EndpointSettings endpoint;
  Millis timeout{0};      // time to first byte, with routing.timeout applied
  Millis idle_timeout{0}; // longest silence in a stream, with routing.idle_timeout applied

  // Custom models only.
  std::string id;
  std::string upstream_model;
  std::string display_name;
  std::string description;
  std::optional<int64_t> context_window;
  std::optional<Price> cost;
  std::vector<ModelRef> fallback;

  // Providers only.
  std::vector<CatalogEntry> catalog;

  Protocol protocol() const { return protocol_of(endpoint.type); }
  const CatalogEntry* catalog_entry(std::string_view model) const;
};

class Registry {
public:
  const std::vector<Target>& targets() const { return m_targets; }
  const Target* provider(std::string_view name) const;
  const Target* custom(std::string_view id) const;
  const AliasConfig* alias(std::string_view name) const;
  const std::vector<AliasConfig>& aliases() const { return m_aliases; }
  const RoutingConfig& routing() const { return m_routing; }

  // Every name a client may send, as /v1/models lists them: custom:<id>, aliases, catalog
  // entries as <provider>:<model>, and "auto".
  std::vector<std::string> addressable_names() const;

private:
  friend struct RegistryBuilder;
  std::vector<Target> m_targets;
  std::vector<AliasConfig> m_aliases;
  RoutingConfig m_routing;
};

// Builds the registry from a validated config.
std::shared_ptr<const Registry> build_registry(const Config& config);

} // namespace modelmux
