// modelmux's entry point: parse arguments, load the config, build the app, bind, serve, drain.
// The only file the tests do not link.
#include "modelmux/app.h"
#include "modelmux/cli.h"
#include "modelmux/notify.h"
#include "modelmux/probe.h"
#include "modelmux/server.h"

#include <condition_variable>
#include <csignal>
#include <iostream>
#include <mutex>
#include <pthread.h>
#include <thread>

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

void log_config_errors(Log& log, const std::vector<ConfigError>& errors) {
  for (const auto& e : errors) {
    log.error("config_error", {{"error", to_string(e)}});
  }
}

int serve(const CliArgs& args) {
  Log log;
  // Block the daemon's signals before any thread starts, so every thread inherits the mask.
  const sigset_t signals = daemon_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

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

  // Set once the server has stopped and drained; the watchdog and the drain timer wait on it.
  std::mutex done_mutex;
  std::condition_variable done_cv;
  bool done = false;
  auto wait_done = [&](std::chrono::steady_clock::duration d) {
    std::unique_lock lock(done_mutex);
    return done_cv.wait_for(lock, d, [&] { return done; });
  };

  // WATCHDOG=1 at half the interval, only while the server still answers its own /health.
  std::thread watchdog;
  if (const auto interval = notifier.watchdog_interval()) {
    const std::string host =
        is_loopback_host(config.listen.host) ? config.listen.host : std::string("127.0.0.1");
    watchdog = std::thread([&, interval, host, bound = port.value()] {
      httplib::Client self(host, bound);
      self.set_connection_timeout(std::chrono::seconds(1));
      self.set_read_timeout(std::chrono::seconds(2));
      while (!wait_done(*interval / 2)) {
        const auto r = self.Get("/health");
        if (r && r->status == 200) {
          notifier.watchdog();
        } else {
          log.warn("watchdog_missed", {{"reason", "the server did not answer its own /health"}});
        }
      }
    });
  }

  std::thread signal_thread([&] {
    for (;;) {
      int sig = 0;
      sigwait(&signals, &sig);
      if (sig == SIGHUP) {
        notifier.reloading();
        auto reload = load_snapshot_file(path, ConfigEnvironment::process());
        if (!reload.snapshot) {
          log_config_errors(log, reload.errors);
          log.error("reload_failed", {{"reason", "invalid config; the old one keeps serving"}});
          app.reload_failed();
        } else {
          const auto& next = reload.snapshot->config->listen;
          if (next.host != config.listen.host || next.port != config.listen.port) {
            log.warn("reload_listen_ignored",
                     {{"reason", "a new listen address takes a restart"},
                      {"listen", next.host + ":" + std::to_string(next.port)}});
          }
          app.reload(reload.snapshot);
          log.info("reloaded", {{"config", path}});
        }
        notifier.ready();
        continue;
      }
      log.info("stopping", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
      notifier.stopping();
      server.drain();
      // Requests in flight get up to request_timeout; after that the daemon exits anyway, with
      // the usage recorded so far written.
      const auto drain_limit = app.snapshot()->config->server.request_timeout;
      if (!wait_done(drain_limit + std::chrono::seconds(5))) {
        log.error("drain_timed_out", {{"reason", "requests still in flight were cut off"}});
        app.flush_usage();
        std::_Exit(1);
      }
      return;
    }
  });

  {
    Prober prober(app); // active health probes, each health.active.interval
    server.serve();     // returns once stopped and the requests in flight have finished
  }
  {
    std::lock_guard lock(done_mutex);
    done = true;
  }
  done_cv.notify_all();
  signal_thread.join();
  if (watchdog.joinable()) {
    watchdog.join();
  }
  log.info("stopped");
  return 0;
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
  if (args->command == "health") {
    return run_health(args.value(), std::cout, std::cerr);
  }
  if (args->command == "serve") {
    return serve(args.value());
  }
  std::cerr << usage("");
  return 2;
}
