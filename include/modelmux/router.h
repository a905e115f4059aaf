// The router: a pure function from (registry, model name, policy, health view, prompt size) to
// the ordered chain of targets to try, with the reasons behind it (SPEC §3).
#pragma once

#include "modelmux/registry.h"
#include "modelmux/result.h"

#include <functional>
#include <string>
#include <vector>

namespace modelmux {

enum class Policy { standard, prefer_custom, prefer_provider, no_fallback };

// Parses the x-modelmux-policy header; an empty value is the standard policy.
Result<Policy> parse_policy(std::string_view header);

struct RouteStep {
  const Target* target = nullptr;
  std::string upstream_model;
  std::string label; // "custom:local-llama" or "openai:gpt-4o"
  std::optional<int64_t> context_window;
  std::optional<Price> cost;
};

struct SkippedStep {
  std::string label;
  std::string reason;
};

struct Route {
  std::vector<RouteStep> chain;
  std::vector<SkippedStep> skipped;
  std::vector<std::string> explanation; // how the name resolved, one sentence each
};

struct RouteOptions {
  Policy policy = Policy::standard;
  int64_t estimated_prompt_tokens = 0;
  // Whether a step's target may serve now (health, budget); null means all may. Targets that
  // may not are skipped while another in the chain can serve.
  std::function<bool(const RouteStep&)> usable;
  // A context window a server reported about itself (a probe read it), for targets the config
  // gives none; null means none is known.
  std::function<std::optional<int64_t>(const Target&, std::string_view upstream_model)>
      learned_context_window;
  // What the request needs of a target (tools, vision, ...); targets lacking any are skipped.
  Capabilities needs;
  // What a server said its model can do, for targets whose config gives no capabilities; null
  // or nullopt means all.
  std::function<std::optional<Capabilities>(const Target&)> learned_capabilities;
  // Fill Route::explanation (for `modelmux route`); off on the request path.
  bool explain = false;
};

// Resolves model to its chain of targets, or a not_found error naming close matches.
Result<Route> resolve_route(const Registry& registry, std::string_view model,
                            const RouteOptions& options = {});

// Checks every model name the config refers to (aliases, fallbacks, routing.auto,
// reference_model): each must resolve, aliases must not form a cycle, and the reference model
// must have a price.
std::vector<ConfigError> check_model_references(const Config& config, const Registry& registry);

} // namespace modelmux
