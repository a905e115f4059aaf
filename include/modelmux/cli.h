// The command line: argument parsing, help texts, and the commands that do not serve
// (check, route, health, report, status, version). `serve` is the daemon itself and lives in
// main.cc.
#pragma once

#include "modelmux/capability.h"
#include "modelmux/result.h"

#include <ostream>
#include <string>
#include <vector>

namespace modelmux {

struct CliArgs {
  std::string command; // serve, check, route, health, version
  std::string config_path;
  std::string policy;
  std::vector<std::string> positional;
  bool help = false;
  bool deep = false; // health --deep
  std::string month; // report --month YYYY-MM
  bool json = false; // report --json
  std::string url;   // status, loadtest --url
  // loadtest
  int requests = 100;
  int concurrency = 10;
  bool stream = false;
  std::string route = "chat";
  Capabilities needs; // route --needs
};

Result<CliArgs> parse_cli(const std::vector<std::string>& argv);

// -c/--config, else $MODELMUX_CONFIG, else /etc/modelmux/config.yaml, else ./config.yaml.
std::string resolve_config_path(const CliArgs& args);

// The help text for a command ("" for the overview).
std::string usage(const std::string& command);

int run_check(const CliArgs& args, std::ostream& out, std::ostream& err);
int run_route(const CliArgs& args, std::ostream& out, std::ostream& err);
// Probes each target (or those MODEL names route to) once and prints a table; 1 if any is
// unhealthy.
int run_health(const CliArgs& args, std::ostream& out, std::ostream& err);
// The cost and savings report for a month from state_dir/usage.jsonl.
int run_report(const CliArgs& args, std::ostream& out, std::ostream& err);
// Where a running daemon is and the client key it takes: --url, else the config's listen
// address; the key from $MODELMUX_CLIENT_KEY, else the config's first client key.
struct DaemonAddress {
  std::string url;        // http://host:port, no trailing slash
  std::string key;        // "" when none is needed
  std::string configured; // the config's listen address as a URL, when the config was read
};
DaemonAddress daemon_address(const CliArgs& args);

// GET /api/status of a running daemon, printed as a summary; 1 when it cannot be reached.
int run_status(const CliArgs& args, std::ostream& out, std::ostream& err);
int run_version(std::ostream& out);

} // namespace modelmux
