// A running daemon's life after startup: serving with the prober beside it, SIGHUP reloads,
// SIGTERM/SIGINT drains, and the systemd watchdog that pings only while the server answers its
// own /health. main() builds the pieces and hands them here; the tests drive the same code.
#pragma once

#include "modelmux/app.h"
#include "modelmux/notify.h"
#include "modelmux/server.h"

#include <condition_variable>
#include <csignal>
#include <mutex>
#include <string>

namespace modelmux {

// Each config error as its own log line, file:line:column first.
void log_config_errors(Log& log, const std::vector<ConfigError>& errors);

// What a SIGHUP does: loads path again and swaps it in; a config that does not load is refused
// and the old one keeps serving. A changed listen address is ignored (it takes a restart), with
// a warning. Returns whether the new config was taken.
bool reload_config(App& app, const std::string& path, const ListenAddress& listening);

// Serves until a SIGTERM or SIGINT (taken from signals, which the caller has blocked in every
// thread) has drained the server; SIGHUP reloads in between. Requests in flight get up to
// server.request_timeout after a stop signal, and then the process exits 1 with the usage so far
// written. Returns 0 after a clean stop.
int run_until_stopped(App& app, Server& server, const SystemdNotifier& notifier,
                      const sigset_t& signals, const std::string& config_path,
                      const ListenAddress& listening, int bound_port);

} // namespace modelmux
