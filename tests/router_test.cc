// The router: SPEC §3 resolution order, chains, policies and skips, with no sockets.
#include "fake_upstream.h"
#include "modelmux/router.h"

#include <doctest/doctest.h>

using namespace modelmux;

namespace {

const char* k_registry = R"(
providers:
  openai:
    type: openai
    base_url: https://api.openai.com/v1
    models:
      gpt-4o: {context_window: 128000, cost: {input: 2.50, output: 10.00}}
      gpt-4o-mini: {context_window: 128000, cost: {input: 0.15, output: 0.60}}
  anthropic:
    type: anthropic
    base_url: https://api.anthropic.com/v1
  fireworks:
    type: openai
    base_url: https://api.fireworks.ai/inference/v1
    models:
      llama-v3p1-70b: {}
  ollama:
    type: openai
    base_url: http://127.0.0.1:11434/v1
custom_models:
  - id: local-llama
    endpoint: http://127.0.0.1:8000/v1
    model: meta-llama/llama-3.1-70b
    context_window: 8000
    fallback: ["openai:gpt-4o-mini"]
  - id: coder
    provider: fireworks
    model: accounts/me/models/coder
    fallback: [local-llama]
  - id: demo
    type: mock
aliases:
  code: custom:coder
  reviewer: code
  writer: review-model
  review-model: anthropic:claude-sonnet-4-5
routing:
  auto: [custom:local-llama, openai:gpt-4o-mini]
  passthrough: ollama
)";

std::shared_ptr<const Snapshot> snapshot(const std::string& yaml = k_registry) {
  return testing::load_test_snapshot(yaml);
}

std::vector<std::string> chain_of(const Registry& r, std::string_view model,
                                  RouteOptions options = {}) {
  const auto route = resolve_route(r, model, options);
  REQUIRE_MESSAGE(route, (route ? "" : route.error().message));
  std::vector<std::string> labels;
  for (const auto& s : route->chain) {
    labels.push_back(s.label);
  }
  return labels;
}

using Labels = std::vector<std::string>;

} // namespace

TEST_CASE("custom:<id> resolves to that custom model, then its fallback list") {
  const auto s = snapshot();
  CHECK(chain_of(*s->registry, "custom:local-llama") ==
        Labels{"custom:local-llama", "openai:gpt-4o-mini"});
  const auto route = resolve_route(*s->registry, "custom:local-llama");
  CHECK(route->chain[0].upstream_model == "meta-llama/llama-3.1-70b");
  CHECK(route->chain[1].cost->input == 150'000);
}

TEST_CASE("fallback lists chain through other custom models without repeating a target") {
  const auto s = snapshot();
  CHECK(chain_of(*s->registry, "custom:coder") ==
        Labels{"custom:coder", "custom:local-llama", "openai:gpt-4o-mini"});
}

TEST_CASE("an unknown custom id is not found and names close matches") {
  const auto s = snapshot();
  const auto route = resolve_route(*s->registry, "custom:local-lama");
  REQUIRE_FALSE(route);
  CHECK(route.error().kind == ErrorKind::not_found);
  CHECK(route.error().param == "model");
  CHECK(route.error().message ==
        "model \"custom:local-lama\" does not exist in this modelmux registry; did you mean "
        "\"custom:local-llama\"?");
}

TEST_CASE("a provider prefix keeps colons and slashes in the upstream model name") {
  const auto s = snapshot();
  auto route = resolve_route(*s->registry, "ollama:llama3.1:70b");
  REQUIRE(route);
  CHECK(route->chain.size() == 1);
  CHECK(route->chain[0].target->name == "ollama");
  CHECK(route->chain[0].upstream_model == "llama3.1:70b");
  route = resolve_route(*s->registry, "fireworks:accounts/fireworks/models/llama-v3p1-8b");
  REQUIRE(route);
  CHECK(route->chain[0].upstream_model == "accounts/fireworks/models/llama-v3p1-8b");
}

TEST_CASE("a catalog entry gives a provider model its price and context window") {
  const auto s = snapshot();
  const auto route = resolve_route(*s->registry, "openai:gpt-4o");
  REQUIRE(route);
  CHECK(route->chain[0].context_window == 128000);
  CHECK(route->chain[0].cost->output == 10'000'000);
}

TEST_CASE("auto tries routing.auto in order, each entry with its fallbacks") {
  const auto s = snapshot();
  CHECK(chain_of(*s->registry, "auto") == Labels{"custom:local-llama", "openai:gpt-4o-mini"});
}

TEST_CASE("auto without routing.auto tries custom models, then catalog entries, in prefer order") {
  const std::string base = "providers:\n"
                           "  openai:\n    type: openai\n    base_url: https://api.openai.com/v1\n"
                           "    models: {gpt-4o-mini: {}}\n"
                           "custom_models:\n  - {id: a, type: mock}\n  - {id: b, type: mock}\n";
  SUBCASE("custom first by default") {
    const auto s = snapshot(base);
    CHECK(chain_of(*s->registry, "auto") == Labels{"custom:a", "custom:b", "openai:gpt-4o-mini"});
  }
  SUBCASE("provider first") {
    const auto s = snapshot(base + "routing: {prefer: provider}\n");
    CHECK(chain_of(*s->registry, "auto") == Labels{"openai:gpt-4o-mini", "custom:a", "custom:b"});
  }
}

TEST_CASE("aliases resolve through chains of aliases") {
  const auto s = snapshot();
  CHECK(chain_of(*s->registry, "reviewer") ==
        Labels{"custom:coder", "custom:local-llama", "openai:gpt-4o-mini"});
  CHECK(chain_of(*s->registry, "writer") == Labels{"anthropic:claude-sonnet-4-5"});
}

TEST_CASE("bare names resolve to a custom id, a catalog entry, then by family, then passthrough") {
  const auto s = snapshot();
  CHECK(chain_of(*s->registry, "demo") == Labels{"custom:demo"});
  CHECK(chain_of(*s->registry, "llama-v3p1-70b") == Labels{"fireworks:llama-v3p1-70b"});
  CHECK(chain_of(*s->registry, "gpt-4.1") == Labels{"openai:gpt-4.1"});
  CHECK(chain_of(*s->registry, "o3-mini") == Labels{"openai:o3-mini"});
  CHECK(chain_of(*s->registry, "claude-opus-4-1") == Labels{"anthropic:claude-opus-4-1"});
  CHECK(chain_of(*s->registry, "qwen2.5-coder:32b") == Labels{"ollama:qwen2.5-coder:32b"});
}

TEST_CASE("a bare name that matches nothing is not found, with close matches") {
  const auto s = snapshot("custom_models:\n  - {id: local-llama, type: mock}\n"
                          "aliases: {code: custom:local-llama}\n");
  const auto route = resolve_route(*s->registry, "locl-llama");
  REQUIRE_FALSE(route);
  CHECK(route.error().message ==
        "model \"locl-llama\" does not exist in this modelmux registry; did you mean "
        "\"local-llama\"?");
  const auto far = resolve_route(*s->registry, "zzzzzzzzzzzz");
  REQUIRE_FALSE(far);
  CHECK(far.error().message == "model \"zzzzzzzzzzzz\" does not exist in this modelmux "
                               "registry; GET /v1/models lists the names it serves");
}

TEST_CASE("gpt and claude names are not inferred when no provider of that name exists") {
  const auto s = snapshot("custom_models:\n  - {id: a, type: mock}\n");
  CHECK_FALSE(resolve_route(*s->registry, "gpt-4o"));
  CHECK_FALSE(resolve_route(*s->registry, "claude-sonnet-4-5"));
}

TEST_CASE("the policy header reorders the chain stably or cuts it to one") {
  const auto s = snapshot();
  RouteOptions options;
  SUBCASE("prefer-provider") {
    options.policy = Policy::prefer_provider;
    CHECK(chain_of(*s->registry, "custom:coder", options) ==
          Labels{"openai:gpt-4o-mini", "custom:coder", "custom:local-llama"});
  }
  SUBCASE("prefer-custom reorders the explicit auto list too") {
    const auto s2 = snapshot("providers:\n  openai:\n    type: openai\n"
                             "    base_url: https://api.openai.com/v1\n"
                             "custom_models:\n  - {id: a, type: mock}\n"
                             "routing: {auto: [openai:gpt-4o-mini, custom:a]}\n");
    options.policy = Policy::prefer_custom;
    CHECK(chain_of(*s2->registry, "auto", options) == Labels{"custom:a", "openai:gpt-4o-mini"});
  }
  SUBCASE("no-fallback") {
    options.policy = Policy::no_fallback;
    CHECK(chain_of(*s->registry, "custom:coder", options) == Labels{"custom:coder"});
  }
}

TEST_CASE("the policy header accepts its three values and rejects others") {
  CHECK(parse_policy("").value() == Policy::standard);
  CHECK(parse_policy("prefer-custom").value() == Policy::prefer_custom);
  CHECK(parse_policy("prefer-provider").value() == Policy::prefer_provider);
  CHECK(parse_policy("no-fallback").value() == Policy::no_fallback);
  const auto bad = parse_policy("fastest");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().kind == ErrorKind::invalid_request);
}

TEST_CASE("routing.fallback off keeps only the first target") {
  const auto s = snapshot(std::string(k_registry) + "  fallback: false\n");
  CHECK(chain_of(*s->registry, "custom:coder") == Labels{"custom:coder"});
}

TEST_CASE("a target whose context window is smaller than the prompt is skipped") {
  const auto s = snapshot();
  RouteOptions options;
  options.estimated_prompt_tokens = 20000;
  const auto route = resolve_route(*s->registry, "custom:local-llama", options);
  REQUIRE(route);
  CHECK(route->chain.size() == 1);
  CHECK(route->chain[0].label == "openai:gpt-4o-mini");
  REQUIRE(route->skipped.size() == 1);
  CHECK(route->skipped[0].label == "custom:local-llama");
  options.estimated_prompt_tokens = 500000;
  const auto none = resolve_route(*s->registry, "custom:local-llama", options);
  REQUIRE_FALSE(none);
  CHECK(none.error().kind == ErrorKind::invalid_request);
}

TEST_CASE(
    "unusable targets are skipped while another can serve, and tried in order when none can") {
  const auto s = snapshot();
  RouteOptions options;
  options.usable = [](const RouteStep& step) { return step.target->name != "custom:coder"; };
  CHECK(chain_of(*s->registry, "custom:coder", options) ==
        Labels{"custom:local-llama", "openai:gpt-4o-mini"});
  options.usable = [](const RouteStep&) { return false; };
  CHECK(chain_of(*s->registry, "custom:coder", options) ==
        Labels{"custom:coder", "custom:local-llama", "openai:gpt-4o-mini"});
}

TEST_CASE("the explanation says how a name resolved") {
  const auto s = snapshot();
  RouteOptions options;
  options.explain = true;
  const auto route = resolve_route(*s->registry, "reviewer", options);
  REQUIRE(route);
  REQUIRE(route->explanation.size() >= 3);
  CHECK(route->explanation[0] == "\"reviewer\" is an alias for \"code\"");
  CHECK(route->explanation[1] == "\"code\" is an alias for \"custom:coder\"");
  CHECK(route->explanation[2] == "\"custom:coder\" is the custom model \"coder\"");
}
