// Reload, drain and the watchdog around a serving daemon.
#include "modelmux/lifecycle.h"

#include "modelmux/probe.h"

#include <httplib.h>
#include <thread>

namespace modelmux {

void log_config_errors(Log& log, const std::vector<ConfigError>& errors) {
  for (const auto& e : errors) {
    log.error("config_error", {{"error", to_string(e)}});
  }
}

namespace {

// Set once the server has stopped and drained; the watchdog and the drain timer wait on it.
class Done {
public:
  void set() {
    {
      std::lock_guard lock(m_mutex);
      m_done = true;
    }
    m_changed.notify_all();
  }
  // True when done within d.
  bool wait(std::chrono::steady_clock::duration d) {
    std::unique_lock lock(m_mutex);
    return m_changed.wait_for(lock, d, [&] { return m_done; });
  }

private:
  std::mutex m_mutex;
  std::condition_variable m_changed;
  bool m_done = false;
};

} // namespace

bool reload_config(App& app, const std::string& path, const ListenAddress& listening) {
  Log& log = app.log();
  auto reload = load_snapshot_file(path, ConfigEnvironment::process());
  if (!reload.snapshot) {
    log_config_errors(log, reload.errors);
    log.error("reload_failed", {{"reason", "invalid config; the old one keeps serving"}});
    app.reload_failed();
    return false;
  }
  const auto& next = reload.snapshot->config->listen;
  if (next.host != listening.host || next.port != listening.port) {
    log.warn("reload_listen_ignored", {{"reason", "a new listen address takes a restart"},
                                       {"listen", next.host + ":" + std::to_string(next.port)}});
  }
  app.reload(reload.snapshot);
  log.info("reloaded", {{"config", path}});
  return true;
}

int run_until_stopped(App& app, Server& server, const SystemdNotifier& notifier,
                      const sigset_t& signals, const std::string& config_path,
                      const ListenAddress& listening, int bound_port) {
  Log& log = app.log();
  Done done;

  // WATCHDOG=1 at half the interval, only while every event loop runs what is posted to it and
  // the server still answers its own /health.
  std::thread watchdog;
  if (const auto interval = notifier.watchdog_interval()) {
    const std::string host =
        is_loopback_host(listening.host) ? listening.host : std::string("127.0.0.1");
    watchdog = std::thread([&, interval, host] {
      httplib::Client self(host, bound_port);
      self.set_connection_timeout(std::chrono::seconds(1));
      self.set_read_timeout(std::chrono::seconds(2));
      while (!done.wait(*interval / 2)) {
        if (!server.loops_responsive(std::chrono::seconds(2))) {
          log.warn("watchdog_missed", {{"reason", "an event loop did not answer within 2 s"}});
          continue;
        }
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
        reload_config(app, config_path, listening);
        notifier.ready();
        continue;
      }
      log.info("stopping", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
      notifier.stopping();
      server.drain();
      // Requests in flight get up to request_timeout; after that the daemon exits anyway, with
      // the usage recorded so far written.
      const auto drain_limit = app.snapshot()->config->server.request_timeout;
      if (!done.wait(drain_limit + std::chrono::seconds(5))) {
        log.error("drain_timed_out", {{"reason", "requests still in flight were cut off"}});
        app.flush_usage();
        std::_Exit(1);
      }
      return;
    }
  });

  {
    Prober prober(app); // active health probes, each health.active.interval
    server.serve();     // returns once drained: every connection has ended
  }
  done.set();
  signal_thread.join();
  if (watchdog.joinable()) {
    watchdog.join();
  }
  return 0;
}

} // namespace modelmux
