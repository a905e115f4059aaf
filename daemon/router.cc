// The router: model name to chain of targets, per SPEC §3. Pure: no clock, no sockets.
#include "modelmux/router.h"

#include "modelmux/text.h"

#include <algorithm>

namespace modelmux {

Result<Policy> parse_policy(std::string_view header) {
  if (header.empty()) {
    return Policy::standard;
  }
  if (header == "prefer-custom") {
    return Policy::prefer_custom;
  }
  if (header == "prefer-provider") {
    return Policy::prefer_provider;
  }
  if (header == "no-fallback") {
    return Policy::no_fallback;
  }
  return make_error(ErrorKind::invalid_request,
                    "x-modelmux-policy must be prefer-custom, prefer-provider or no-fallback, "
                    "got \"" +
                        std::string(header) + "\"");
}

namespace {

constexpr int k_max_depth = 32;

RouteStep provider_step(const Target& p, std::string_view model) {
  RouteStep s;
  s.target = &p;
  s.upstream_model = std::string(model);
  s.label = p.name + ":" + s.upstream_model;
  if (const auto* e = p.catalog_entry(model)) {
    s.context_window = e->context_window;
    s.cost = e->cost;
  }
  return s;
}

RouteStep custom_step(const Target& c) {
  RouteStep s;
  s.target = &c;
  s.upstream_model = c.upstream_model;
  s.label = c.name;
  s.context_window = c.context_window;
  s.cost = c.cost;
  return s;
}

std::string quoted(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

class Resolver {
public:
  Resolver(const Registry& registry, std::vector<std::string>* why)
      : m_registry(registry), m_why(why) {}

  // The targets a name stands for before fallbacks: one, or the auto list.
  Result<std::vector<RouteStep>> heads(std::string_view name, int depth) {
    if (depth > k_max_depth) {
      return make_error(ErrorKind::not_found,
                        "model " + quoted(name) + " resolves through too many aliases");
    }
    if (starts_with(name, "custom:")) {
      const auto id = name.substr(7);
      if (const auto* t = m_registry.custom(id)) {
        say(quoted(name) + " is the custom model " + quoted(id));
        return std::vector<RouteStep>{custom_step(*t)};
      }
      return not_found(name);
    }
    if (const size_t colon = name.find(':'); colon != std::string_view::npos && colon > 0) {
      const auto prefix = name.substr(0, colon);
      const auto rest = name.substr(colon + 1);
      if (const auto* p = m_registry.provider(prefix); p != nullptr && !rest.empty()) {
        say(quoted(name) + " names provider " + quoted(prefix) + ", upstream model " +
            quoted(rest));
        return std::vector<RouteStep>{provider_step(*p, rest)};
      }
    }
    if (name == "auto") {
      return auto_heads(depth);
    }
    if (const auto* a = m_registry.alias(name)) {
      if (std::find(m_alias_stack.begin(), m_alias_stack.end(), a->name) != m_alias_stack.end()) {
        std::string cycle;
        for (const auto& s : m_alias_stack) {
          cycle += s + " -> ";
        }
        return make_error(ErrorKind::not_found, "alias cycle: " + cycle + a->name);
      }
      say(quoted(name) + " is an alias for " + quoted(a->target.text));
      m_alias_stack.push_back(a->name);
      auto r = heads(a->target.text, depth + 1);
      m_alias_stack.pop_back();
      return r;
    }
    return bare(name);
  }

  Result<std::vector<RouteStep>> bare(std::string_view name) {
    if (const auto* t = m_registry.custom(name)) {
      say(quoted(name) + " is the id of custom model " + t->name);
      return std::vector<RouteStep>{custom_step(*t)};
    }
    for (const auto& t : m_registry.targets()) {
      if (!t.is_custom && t.catalog_entry(name) != nullptr) {
        say(quoted(name) + " is in the catalog of provider " + quoted(t.name));
        return std::vector<RouteStep>{provider_step(t, name)};
      }
    }
    const bool openai_name = starts_with(name, "gpt-") || starts_with(name, "o1") ||
                             starts_with(name, "o3") || starts_with(name, "o4");
    if (openai_name) {
      if (const auto* p = m_registry.provider("openai")) {
        say(quoted(name) + " looks like an OpenAI model; provider \"openai\" serves it");
        return std::vector<RouteStep>{provider_step(*p, name)};
      }
    }
    if (starts_with(name, "claude-")) {
      if (const auto* p = m_registry.provider("anthropic")) {
        say(quoted(name) + " looks like an Anthropic model; provider \"anthropic\" serves it");
        return std::vector<RouteStep>{provider_step(*p, name)};
      }
    }
    if (const auto& pt = m_registry.routing().passthrough) {
      if (const auto* p = m_registry.provider(pt->text)) {
        say(quoted(name) + " matches nothing configured; routing.passthrough sends it to " +
            quoted(p->name));
        return std::vector<RouteStep>{provider_step(*p, name)};
      }
    }
    return not_found(name);
  }

  Result<std::vector<RouteStep>> auto_heads(int depth) {
    const auto& routing = m_registry.routing();
    std::vector<RouteStep> out;
    if (!routing.auto_chain.empty()) {
      say("\"auto\" tries routing.auto in order");
      for (const auto& ref : routing.auto_chain) {
        auto r = heads(ref.text, depth + 1);
        if (!r) {
          return r.error();
        }
        for (auto& s : r.value()) {
          out.push_back(std::move(s));
        }
      }
      return out;
    }
    const bool custom_first = routing.prefer == Prefer::custom;
    say(custom_first ? "\"auto\" tries every custom model, then every catalog entry"
                     : "\"auto\" tries every catalog entry, then every custom model");
    for (int pass = 0; pass < 2; ++pass) {
      const bool want_custom = (pass == 0) == custom_first;
      for (const auto& t : m_registry.targets()) {
        if (t.is_custom != want_custom) {
          continue;
        }
        if (t.is_custom) {
          out.push_back(custom_step(t));
        } else {
          for (const auto& e : t.catalog) {
            out.push_back(provider_step(t, e.name));
          }
        }
      }
    }
    if (out.empty()) {
      return make_error(ErrorKind::not_found,
                        "model \"auto\" has nothing to try: set routing.auto, or configure custom "
                        "models or provider catalogs");
    }
    return out;
  }

  // Appends step and, when fallback is on, its fallback list, once each.
  Status add_with_fallbacks(RouteStep step, std::vector<RouteStep>& chain, bool fallback,
                            int depth) {
    if (depth > k_max_depth) {
      return make_error(ErrorKind::not_found, "fallback lists nest too deeply at " + step.label);
    }
    for (const auto& s : chain) {
      if (s.label == step.label) {
        return ok();
      }
    }
    const Target* t = step.target;
    chain.push_back(std::move(step));
    if (!fallback) {
      return ok();
    }
    for (const auto& ref : t->fallback) {
      auto r = heads(ref.text, depth + 1);
      if (!r) {
        return r.error();
      }
      say(t->name + " falls back to " + quoted(ref.text));
      for (auto& s : r.value()) {
        if (auto st = add_with_fallbacks(std::move(s), chain, fallback, depth + 1); !st) {
          return st.error();
        }
      }
    }
    return ok();
  }

private:
  void say(std::string sentence) {
    if (m_why != nullptr) {
      m_why->push_back(std::move(sentence));
    }
  }

  Error not_found(std::string_view name) {
    std::vector<std::string> candidates = m_registry.addressable_names();
    for (const auto& t : m_registry.targets()) {
      if (t.is_custom) {
        candidates.push_back(t.id);
      }
      for (const auto& e : t.catalog) {
        candidates.push_back(e.name);
      }
    }
    std::string message = "model " + quoted(name) + " does not exist in this modelmux registry";
    const auto near = close_matches(name, candidates, 3);
    if (!near.empty()) {
      std::vector<std::string> q;
      for (const auto& n : near) {
        q.push_back(quoted(n));
      }
      message += "; did you mean " + join_alternatives(q, " or ") + "?";
    } else {
      message += "; GET /v1/models lists the names it serves";
    }
    return make_error(ErrorKind::not_found, message, "model");
  }

  const Registry& m_registry;
  std::vector<std::string>* m_why;
  std::vector<std::string> m_alias_stack;
};

} // namespace

Result<Route> resolve_route(const Registry& registry, std::string_view model,
                            const RouteOptions& options) {
  Route route;
  Resolver resolver(registry, options.explain ? &route.explanation : nullptr);
  auto heads = resolver.heads(model, 0);
  if (!heads) {
    return heads.error();
  }
  const bool fallback = registry.routing().fallback && options.policy != Policy::no_fallback;
  std::vector<RouteStep> chain;
  for (auto& h : heads.value()) {
    if (auto st = resolver.add_with_fallbacks(std::move(h), chain, fallback, 0); !st) {
      return st.error();
    }
    if (!fallback) {
      break;
    }
  }

  if (options.policy == Policy::prefer_custom || options.policy == Policy::prefer_provider) {
    const bool custom_first = options.policy == Policy::prefer_custom;
    std::stable_partition(chain.begin(), chain.end(),
                          [&](const RouteStep& s) { return s.target->is_custom == custom_first; });
    if (options.explain) {
      route.explanation.push_back(custom_first ? "policy prefer-custom puts custom models first"
                                               : "policy prefer-provider puts providers first");
    }
  }

  // Skip targets whose context window cannot hold the prompt.
  std::vector<RouteStep> fits;
  for (auto& s : chain) {
    if (!s.context_window && options.learned_context_window) {
      s.context_window = options.learned_context_window(*s.target, s.upstream_model);
    }
    if (s.context_window && options.estimated_prompt_tokens > *s.context_window) {
      route.skipped.push_back(
          SkippedStep{s.label, "context window of " + std::to_string(*s.context_window) +
                                   " tokens is smaller than the prompt (~" +
                                   std::to_string(options.estimated_prompt_tokens) + " tokens)"});
    } else {
      fits.push_back(std::move(s));
    }
  }
  if (fits.empty()) {
    return make_error(ErrorKind::invalid_request,
                      "the prompt (~" + std::to_string(options.estimated_prompt_tokens) +
                          " tokens) does not fit the context window of any target for model \"" +
                          std::string(model) + "\"",
                      "messages");
  }

  // Skip targets that cannot do what the request needs (tools, images, ...); none left is the
  // client's error, named, rather than an answer from a model that ignored half the request.
  if (!options.needs.empty()) {
    std::vector<RouteStep> able;
    std::string targets;
    for (auto& s : fits) {
      auto offered = s.target->endpoint.capabilities;
      if (!offered && options.learned_capabilities) {
        offered = options.learned_capabilities(*s.target);
      }
      const auto lacks = options.needs.missing_from(offered.value_or(Capabilities::all()));
      if (lacks.empty()) {
        able.push_back(std::move(s));
      } else {
        route.skipped.push_back(SkippedStep{s.label, "lacks " + to_string(lacks)});
        targets += (targets.empty() ? "" : ", ") + s.label;
      }
    }
    if (able.empty()) {
      return make_error(ErrorKind::invalid_request,
                        "the request needs " + to_string(options.needs) +
                            ", which no target for model \"" + std::string(model) + "\" has (" +
                            targets + ")",
                        "model");
    }
    fits = std::move(able);
  }

  // Skip targets that may not serve now while another can; when none can, try them all.
  if (options.usable) {
    std::vector<RouteStep> usable;
    std::vector<RouteStep> held;
    for (auto& s : fits) {
      (options.usable(s) ? usable : held).push_back(std::move(s));
    }
    if (usable.empty()) {
      if (options.explain) {
        route.explanation.push_back("no target is available; trying them in order anyway");
      }
      fits = std::move(held);
    } else {
      for (const auto& s : held) {
        route.skipped.push_back(SkippedStep{s.label, "unavailable (unhealthy or over budget)"});
      }
      fits = std::move(usable);
    }
  }

  if (!fallback && fits.size() > 1) {
    fits.resize(1);
  }
  route.chain = std::move(fits);
  return route;
}

std::vector<ConfigError> check_model_references(const Config& config, const Registry& registry) {
  std::vector<ConfigError> errors;
  auto check = [&](const ModelRef& ref, const std::string& path) {
    RouteOptions options;
    const auto r = resolve_route(registry, ref.text, options);
    if (!r) {
      errors.push_back(
          ConfigError{config.path, ref.mark.line, ref.mark.column, path, r.error().message});
    }
    return r;
  };
  for (const auto& a : config.aliases) {
    // Resolving the alias itself (not its target) makes a cycle read from this alias round.
    check(ModelRef{a.name, a.target.mark}, "aliases." + a.name);
  }
  for (size_t i = 0; i < config.custom_models.size(); ++i) {
    const auto& m = config.custom_models[i];
    for (size_t j = 0; j < m.fallback.size(); ++j) {
      check(m.fallback[j],
            "custom_models[" + std::to_string(i) + "].fallback[" + std::to_string(j) + "]");
    }
  }
  for (size_t i = 0; i < config.routing.auto_chain.size(); ++i) {
    check(config.routing.auto_chain[i], "routing.auto[" + std::to_string(i) + "]");
  }
  if (config.routing.reference_model) {
    const auto& ref = *config.routing.reference_model;
    const auto r = check(ref, "routing.reference_model");
    if (r && !r->chain.front().cost) {
      errors.push_back(ConfigError{config.path, ref.mark.line, ref.mark.column,
                                   "routing.reference_model",
                                   "\"" + ref.text +
                                       "\" has no price: give it a cost in its provider's "
                                       "models catalog (USD per 1M tokens)"});
    }
  }
  return errors;
}

} // namespace modelmux
