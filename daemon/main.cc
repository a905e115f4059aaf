// modelmux's entry point: parse arguments, load the config, build the app, bind, serve, drain.
// The only file the tests do not link.
#include "modelmux/app.h"
#include "modelmux/cli.h"
#include "modelmux/lifecycle.h"
#include "modelmux/loadtest.h"

#include <csignal>
#include <iostream>
#include <pthread.h>
#include <sys/resource.h>

using namespace modelmux;

namespace {

// Signals are taken by one thread with sigwait, so no handler runs on a request thread.
sigset_t daemon_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

int serve(const CliArgs& args) {
  Log log;
  // Block the daemon's signals before any thread starts, so every thread inherits the mask.
  const sigset_t signals = daemon_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  // Each open stream holds two descriptors (client and upstream); the soft limit (often 1024)
  // is raised to the hard one, as nginx's worker_rlimit_nofile or a unit's LimitNOFILE would.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }

  const std::string path = resolve_config_path(args);
  auto load = load_snapshot_file(path, ConfigEnvironment::process());
  if (!load.snapshot) {
    log_config_errors(log, load.errors);
    log.error("startup_failed", {{"reason", "invalid config"}, {"config", path}});
    return 1;
  }
  const auto& config = *load.snapshot->config;
  if (config.server.worker_threads_set) {
    log.warn("config_ignored", {{"key", "server.worker_threads"},
                                {"reason", "requests run on event loops now (server.workers); "
                                           "a stream holds no thread"}});
  }

  App app(load.snapshot, log);
  const std::string usage_path = config.state_dir + "/usage.jsonl";
  if (auto opened = app.open_usage_log(usage_path); !opened) {
    log.error("startup_failed", {{"reason", opened.error().message}});
    return 1;
  }
  if (auto opened = app.open_runtime_models(config.state_dir); !opened) {
    log.error("startup_failed", {{"reason", opened.error().message}});
    return 1;
  }
  Server server(app);
  const auto port = server.bind(config.listen.host, config.listen.port);
  if (!port) {
    log.error("startup_failed", {{"reason", port.error().message}});
    return 1;
  }
  const std::string address = config.listen.host + ":" + std::to_string(port.value());
  log.info("listening", {{"address", address}, {"config", path}, {"version", MODELMUX_VERSION}});
  const auto notifier = SystemdNotifier::from_environment();
  notifier.ready();

  const int status =
      run_until_stopped(app, server, notifier, signals, path, config.listen, port.value());
  log.info("stopped");
  return status;
}

} // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> argv_list(argv, argv + argc);
  const auto args = parse_cli(argv_list);
  if (!args) {
    std::cerr << "modelmux: " << args.error().message << "\n\n" << usage("");
    return 2;
  }
  if (args->help) {
    std::cout << usage(args->command);
    return 0;
  }
  if (args->command == "version") {
    return run_version(std::cout);
  }
  if (args->command == "check") {
    return run_check(args.value(), std::cout, std::cerr);
  }
  if (args->command == "route") {
    return run_route(args.value(), std::cout, std::cerr);
  }
  if (args->command == "report") {
    return run_report(args.value(), std::cout, std::cerr);
  }
  if (args->command == "status") {
    return run_status(args.value(), std::cout, std::cerr);
  }
  if (args->command == "loadtest") {
    return run_loadtest(args.value(), std::cout, std::cerr);
  }
  if (args->command == "health") {
    return run_health(args.value(), std::cout, std::cerr);
  }
  if (args->command == "serve") {
    return serve(args.value());
  }
  std::cerr << usage("");
  return 2;
}
