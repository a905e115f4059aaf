// The daemon's life after startup, without signals: a SIGHUP's reload, taken or refused.
#include "fake_upstream.h"
#include "modelmux/lifecycle.h"

#include <filesystem>
#include <fstream>
#include <unistd.h>

using namespace modelmux;
using namespace modelmux::testing;

namespace {

void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

} // namespace

TEST_CASE("a reload swaps in a new config, and a broken one is refused while the old keeps "
          "serving") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("modelmux-lifecycle-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = (dir / "config.yaml").string();
  write_file(path, "custom_models:\n  - {id: first, type: mock}\n");
  std::vector<std::string> lines;
  Log log([&](std::string_view line) { lines.emplace_back(line); });
  auto load = load_snapshot_file(path, ConfigEnvironment::process());
  REQUIRE(load.snapshot);
  App app(load.snapshot, log);
  const ListenAddress listening = load.snapshot->config->listen;

  write_file(path, "custom_models:\n  - {id: second, type: mock}\n");
  CHECK(reload_config(app, path, listening));
  CHECK(app.snapshot()->registry->custom("second") != nullptr);
  CHECK(app.snapshot()->registry->custom("first") == nullptr);

  write_file(path, "custom_models:\n  - {id: third, type: mock, base_ur: x}\n");
  CHECK_FALSE(reload_config(app, path, listening));
  CHECK(app.snapshot()->registry->custom("second") != nullptr);
  bool said_why = false;
  bool said_refused = false;
  for (const auto& l : lines) {
    said_why = said_why || l.find("base_ur: unknown key") != std::string::npos;
    said_refused = said_refused || l.find("reload_failed") != std::string::npos;
  }
  CHECK(said_why);
  CHECK(said_refused);

  write_file(path, "listen: 127.0.0.1:9999\ncustom_models:\n  - {id: fourth, type: mock}\n");
  CHECK(reload_config(app, path, listening));
  CHECK(lines.back().find("reloaded") != std::string::npos);
  bool warned = false;
  for (const auto& l : lines) {
    warned = warned || l.find("reload_listen_ignored") != std::string::npos;
  }
  CHECK(warned);
  std::filesystem::remove_all(dir);
}

TEST_CASE("the watchdog sees every event loop answer while serving, and none once stopped") {
  TestDaemon d("server: {workers: 3}\ncustom_models:\n  - {id: demo, type: mock}\n");
  CHECK(d.server().loops_responsive(std::chrono::seconds(5)));
  d.server().stop();
  CHECK_FALSE(d.server().loops_responsive(std::chrono::milliseconds(200)));
}
