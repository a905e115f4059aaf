// The registry: targets resolved from the config, with lookups by name.
#include "modelmux/registry.h"

#include <algorithm>

namespace modelmux {

Protocol protocol_of(TargetType type) {
  switch (type) {
  case TargetType::openai:
  case TargetType::azure_openai:
    return Protocol::openai;
  case TargetType::anthropic:
    return Protocol::anthropic;
  case TargetType::mock:
    return Protocol::any;
  }
  return Protocol::openai;
}

const CatalogEntry* Target::catalog_entry(std::string_view model) const {
  for (const auto& e : catalog) {
    if (e.name == model) {
      return &e;
    }
  }
  return nullptr;
}

const Target* Registry::provider(std::string_view name) const {
  for (const auto& t : m_targets) {
    if (!t.is_custom && t.name == name) {
      return &t;
    }
  }
  return nullptr;
}

const Target* Registry::custom(std::string_view id) const {
  for (const auto& t : m_targets) {
    if (t.is_custom && t.id == id) {
      return &t;
    }
  }
  return nullptr;
}

const AliasConfig* Registry::alias(std::string_view name) const {
  for (const auto& a : m_aliases) {
    if (a.name == name) {
      return &a;
    }
  }
  return nullptr;
}

std::vector<std::string> Registry::addressable_names() const {
  std::vector<std::string> names;
  for (const auto& t : m_targets) {
    if (t.is_custom) {
      names.push_back(t.name);
    }
  }
  for (const auto& a : m_aliases) {
    names.push_back(a.name);
  }
  for (const auto& t : m_targets) {
    for (const auto& e : t.catalog) {
      names.push_back(t.name + ":" + e.name);
    }
  }
  names.emplace_back("auto");
  return names;
}

struct RegistryBuilder {
  static std::shared_ptr<const Registry> build(const Config& config) {
    auto r = std::make_shared<Registry>();
    const auto& routing = config.routing;
    auto finish = [&](Target& t) {
      t.index = r->m_targets.size();
      t.timeout = t.endpoint.timeout.value_or(routing.timeout);
      t.idle_timeout = t.endpoint.idle_timeout.value_or(routing.idle_timeout);
    };
    for (const auto& p : config.providers) {
      Target t;
      t.name = p.name;
      t.endpoint = p.endpoint;
      t.catalog = p.models;
      finish(t);
      r->m_targets.push_back(std::move(t));
    }
    for (const auto& m : config.custom_models) {
      Target t;
      t.name = "custom:" + m.id;
      t.is_custom = true;
      t.id = m.id;
      t.endpoint = m.endpoint;
      t.upstream_model = m.model;
      t.display_name = m.display_name.empty() ? m.id : m.display_name;
      t.description = m.description;
      t.context_window = m.context_window;
      t.cost = m.cost;
      t.fallback = m.fallback;
      // A custom model on a provider takes its price and window from the provider's catalog
      // when it does not set them itself.
      if (!m.provider.empty()) {
        for (const auto& p : config.providers) {
          if (p.name != m.provider) {
            continue;
          }
          for (const auto& e : p.models) {
            if (e.name == m.model) {
              t.context_window = t.context_window ? t.context_window : e.context_window;
              t.cost = t.cost ? t.cost : e.cost;
            }
          }
        }
      }
      finish(t);
      r->m_targets.push_back(std::move(t));
    }
    r->m_aliases = config.aliases;
    r->m_routing = config.routing;
    return r;
  }
};

std::shared_ptr<const Registry> build_registry(const Config& config) {
  return RegistryBuilder::build(config);
}

} // namespace modelmux
