// Config loading: schema, defaults, references, durations and sizes, and error reporting.
#include "modelmux/app.h"
#include "modelmux/config.h"

#include <cstdio>
#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <map>

using namespace modelmux;

namespace {

ConfigEnvironment env_with(std::map<std::string, std::string> vars,
                           std::optional<std::string> credentials_dir = std::nullopt) {
  ConfigEnvironment env;
  env.getenv = [vars](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) {
      return std::nullopt;
    }
    return it->second;
  };
  env.credentials_dir = std::move(credentials_dir);
  return env;
}

std::vector<std::string> error_lines(const std::string& yaml, const ConfigEnvironment& env = {}) {
  std::vector<std::string> out;
  for (const auto& e : load_snapshot_text(yaml, "test.yaml", env).errors) {
    out.push_back(to_string(e));
  }
  return out;
}

} // namespace

TEST_CASE("an empty config takes every default from SPEC") {
  const auto load = load_config_text("", "test.yaml", env_with({}));
  REQUIRE(load.ok());
  const auto& c = load.config;
  CHECK(c.listen.host == "127.0.0.1");
  CHECK(c.listen.port == 8080);
  CHECK(c.server.workers == 0); // auto: one per core
  CHECK(c.server.max_connections == 10000);
  CHECK(c.server.max_body_size == 8 * 1024 * 1024);
  CHECK(c.server.request_timeout == std::chrono::minutes(10));
  CHECK(c.routing.timeout == std::chrono::seconds(60));
  CHECK(c.routing.idle_timeout == std::chrono::seconds(30));
  CHECK(c.routing.hedge_after == Millis{0});
  CHECK(c.routing.fallback);
  CHECK(c.health.consecutive_failures == 3);
  CHECK(c.health.degraded.success_rate_below == doctest::Approx(0.90));
  CHECK(c.health.unhealthy.p95_latency_above == std::chrono::seconds(10));
  CHECK(c.logging.level == LogLevel::info);
  CHECK_FALSE(c.budget.monthly_micros);
}

TEST_CASE("the example config is valid and serves through a mock with no keys set") {
  const auto load = load_snapshot_file(MODELMUX_SOURCE_DIR "/config.example.yaml", env_with({}));
  for (const auto& e : load.errors) {
    FAIL(to_string(e));
  }
  REQUIRE(load.snapshot);
  const auto* demo = load.snapshot->registry->custom("demo");
  REQUIRE(demo != nullptr);
  CHECK(demo->endpoint.type == TargetType::mock);
  CHECK(load.snapshot->config->auth.client_keys.empty());
}

TEST_CASE("an unknown key is an error with its line, column and a did-you-mean") {
  const auto errors = error_lines("server:\n  worker_thread: 4\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] ==
        "test.yaml:2:3: server.worker_thread: unknown key (did you mean \"worker_threads\"?)");
}

TEST_CASE("every problem in a config is reported at once") {
  const auto errors = error_lines("listen: nowhere\n"
                                  "server:\n"
                                  "  max_body_size: 8MB\n"
                                  "  request_timeout: soon\n"
                                  "routing:\n"
                                  "  prefer: customs\n");
  REQUIRE(errors.size() == 4);
  CHECK(errors[0] ==
        "test.yaml:1:9: listen: expected HOST:PORT such as 127.0.0.1:8080 or [::1]:8080");
  CHECK(errors[1] == "test.yaml:3:18: server.max_body_size: expected a size such as 512KiB, "
                     "8MiB or 1GiB, got \"8MB\"");
  CHECK(errors[2] == "test.yaml:4:20: server.request_timeout: expected a duration such as "
                     "250ms, 30s, 5m or 1h, got \"soon\"");
  CHECK(errors[3] == "test.yaml:6:11: routing.prefer: expected custom or provider, got "
                     "\"customs\" (did you mean \"custom\"?)");
}

TEST_CASE("invalid YAML is reported with its line and column") {
  const auto errors = error_lines("providers:\n  openai: {type: openai\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].rfind("test.yaml:3:1: invalid YAML: ", 0) == 0);
}

TEST_CASE("a wrong type is named with its path") {
  const auto errors = error_lines("custom_models:\n  - id: x\n    type: mock\n    fallback: a\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] == "test.yaml:4:15: custom_models[0].fallback: expected a list");
}

TEST_CASE("duplicate keys and duplicate custom ids are errors") {
  const auto errors = error_lines("custom_models:\n"
                                  "  - {id: a, type: mock}\n"
                                  "  - {id: a, type: mock}\n"
                                  "routing:\n  timeout: 1s\n  timeout: 2s\n");
  REQUIRE(errors.size() == 2);
  CHECK(errors[0] == "test.yaml:3:10: custom_models[1].id: duplicate id \"a\"");
  CHECK(errors[1] == "test.yaml:6:3: routing.timeout: duplicate key");
}

TEST_CASE("environment references resolve, and an unset one is an error naming the key") {
  const std::string yaml = "providers:\n"
                           "  openai:\n"
                           "    type: openai\n"
                           "    base_url: https://api.openai.com/v1\n"
                           "    api_keys: [\"${env:OPENAI_API_KEY}\", \"k-${env:SECOND}\"]\n";
  SUBCASE("set") {
    const auto load = load_config_text(yaml, "test.yaml",
                                       env_with({{"OPENAI_API_KEY", "sk-1"}, {"SECOND", "2"}}));
    REQUIRE(load.ok());
    const auto& keys = load.config.providers.at(0).endpoint.api_keys;
    REQUIRE(keys.size() == 2);
    CHECK(keys[0].value == "sk-1");
    CHECK(keys[0].source == "${env:OPENAI_API_KEY}");
    CHECK(keys[1].value == "k-2");
  }
  SUBCASE("unset") {
    const auto errors = error_lines(yaml, env_with({{"SECOND", "2"}}));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0] == "test.yaml:5:16: providers.openai.api_keys[0]: environment variable "
                       "OPENAI_API_KEY is not set (referenced as ${env:OPENAI_API_KEY}; write "
                       "${env:OPENAI_API_KEY:-} to make it optional)");
  }
  SUBCASE("optional and unset adds no key") {
    const auto load = load_config_text("auth:\n  client_keys: [\"${env:MODELMUX_CLIENT_KEY:-}\"]\n",
                                       "test.yaml", env_with({}));
    REQUIRE(load.ok());
    CHECK(load.config.auth.client_keys.empty());
  }
}

TEST_CASE("file and credential references read files and trim the trailing newline") {
  const auto dir = std::filesystem::temp_directory_path() / "modelmux-config-test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "key.txt") << "sk-from-file\n";
  std::ofstream(dir / "admin") << "admin-secret\n";
  const std::string yaml = "auth:\n"
                           "  client_keys: [\"${file:key.txt}\"]\n"
                           "  admin_key: \"${cred:admin}\"\n";
  SUBCASE("present") {
    const auto load =
        load_config_text(yaml, (dir / "config.yaml").string(), env_with({}, dir.string()));
    REQUIRE(load.ok());
    CHECK(load.config.auth.client_keys.at(0).value == "sk-from-file");
    CHECK(load.config.auth.admin_key->value == "admin-secret");
  }
  SUBCASE("no credentials directory") {
    const auto load = load_config_text(yaml, (dir / "config.yaml").string(), env_with({}));
    REQUIRE(load.errors.size() == 1);
    CHECK(load.errors[0].path == "auth.admin_key");
    CHECK(load.errors[0].message.find("$CREDENTIALS_DIRECTORY is not set") != std::string::npos);
  }
  SUBCASE("missing file") {
    const auto load = load_config_text("auth:\n  admin_key: \"${file:nope.txt}\"\n",
                                       (dir / "config.yaml").string(), env_with({}));
    REQUIRE(load.errors.size() == 1);
    CHECK(load.errors[0].message == "${file:nope.txt} cannot be read: No such file or directory");
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("durations and sizes parse with their units and reject anything else") {
  CHECK(parse_duration("250ms") == Millis{250});
  CHECK(parse_duration("30s") == Millis{30'000});
  CHECK(parse_duration("5m") == Millis{300'000});
  CHECK(parse_duration("1h") == Millis{3'600'000});
  CHECK(parse_duration("0") == Millis{0});
  CHECK_FALSE(parse_duration("30"));
  CHECK_FALSE(parse_duration("1.5s"));
  CHECK_FALSE(parse_duration("-1s"));
  CHECK_FALSE(parse_duration("s"));
  CHECK(parse_size("8MiB") == 8 * 1024 * 1024);
  CHECK(parse_size("512KiB") == 512 * 1024);
  CHECK(parse_size("1GiB") == int64_t{1} << 30);
  CHECK(parse_size("100") == 100);
  CHECK_FALSE(parse_size("8MB"));
  CHECK_FALSE(parse_size("MiB"));
}

TEST_CASE("prices are exact millionths of a dollar") {
  const auto load = load_config_text("providers:\n  p:\n    type: openai\n"
                                     "    base_url: http://127.0.0.1:1/v1\n"
                                     "    models:\n"
                                     "      m: {cost: {input: 2.50, output: 0.075}}\n",
                                     "test.yaml", env_with({}));
  REQUIRE(load.ok());
  const auto& cost = *load.config.providers.at(0).models.at(0).cost;
  CHECK(cost.input == 2'500'000);
  CHECK(cost.output == 75'000);
}

TEST_CASE("a custom model on a provider takes its endpoint, keys and timeouts") {
  const auto load = load_config_text("providers:\n"
                                     "  fireworks:\n"
                                     "    type: openai\n"
                                     "    base_url: https://api.fireworks.ai/inference/v1\n"
                                     "    api_keys: [fw-key]\n"
                                     "    timeout: 7s\n"
                                     "custom_models:\n"
                                     "  - id: coder\n"
                                     "    provider: fireworks\n"
                                     "    model: accounts/me/models/coder\n",
                                     "test.yaml", env_with({}));
  REQUIRE(load.ok());
  const auto& m = load.config.custom_models.at(0);
  CHECK(m.endpoint.base_url == "https://api.fireworks.ai/inference/v1");
  CHECK(m.endpoint.api_keys.at(0).value == "fw-key");
  CHECK(m.endpoint.timeout == std::chrono::seconds(7));
}

TEST_CASE("a custom model naming an unknown provider gets a suggestion") {
  const auto errors = error_lines("providers:\n  openai: {type: openai, base_url: "
                                  "https://api.openai.com/v1}\n"
                                  "custom_models:\n  - {id: x, provider: opneai, model: m}\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] == "test.yaml:4:23: custom_models[0].provider: no provider named \"opneai\" "
                     "(did you mean \"openai\"?)");
}

TEST_CASE("alias cycles and unresolvable references are config errors with positions") {
  const auto errors = error_lines("custom_models:\n"
                                  "  - {id: a, type: mock, fallback: [custom:nope]}\n"
                                  "aliases:\n"
                                  "  one: two\n"
                                  "  two: one\n");
  REQUIRE(errors.size() == 3);
  CHECK(errors[0] == "test.yaml:4:8: aliases.one: alias cycle: one -> two -> one");
  CHECK(errors[1] == "test.yaml:5:8: aliases.two: alias cycle: two -> one -> two");
  CHECK(errors[2].rfind("test.yaml:2:36: custom_models[0].fallback[0]: model \"custom:nope\" "
                        "does not exist",
                        0) == 0);
}

TEST_CASE("a reference model needs a price") {
  const auto errors = error_lines("providers:\n  openai: {type: openai, base_url: "
                                  "https://api.openai.com/v1}\n"
                                  "routing:\n  reference_model: openai:gpt-4o\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].rfind("test.yaml:4:20: routing.reference_model: \"openai:gpt-4o\" has no price",
                        0) == 0);
}

TEST_CASE("loopback addresses are told apart from the rest") {
  CHECK(is_loopback_host("127.0.0.1"));
  CHECK(is_loopback_host("127.1.2.3"));
  CHECK(is_loopback_host("::1"));
  CHECK(is_loopback_host("localhost"));
  CHECK_FALSE(is_loopback_host("0.0.0.0"));
  CHECK_FALSE(is_loopback_host("192.168.1.10"));
  CHECK_FALSE(is_loopback_host("::"));
}
