// The systemd notification protocol (sd_notify(3)) without libsystemd: datagrams of
// "KEY=VALUE" lines to the socket named by $NOTIFY_SOCKET, which may be a path or, starting
// with '@', an abstract socket. With no $NOTIFY_SOCKET every call does nothing, so the same
// binary runs under systemd and in a terminal.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace modelmux {

class SystemdNotifier {
public:
  // From $NOTIFY_SOCKET, and $WATCHDOG_USEC when $WATCHDOG_PID is unset or this process.
  static SystemdNotifier from_environment();

  SystemdNotifier() = default;
  SystemdNotifier(std::string socket, std::optional<std::chrono::microseconds> watchdog)
      : m_socket(std::move(socket)), m_watchdog(watchdog) {}

  bool enabled() const { return !m_socket.empty(); }
  // Sends one message; false if it could not be sent (systemd is told nothing then).
  bool send(std::string_view message) const;

  bool ready() const { return send("READY=1"); }
  // RELOADING=1 with the CLOCK_MONOTONIC time systemd (>= 253) uses to match the READY=1.
  bool reloading() const;
  bool stopping() const { return send("STOPPING=1"); }
  bool watchdog() const { return send("WATCHDOG=1"); }

  // How often systemd expects WATCHDOG=1; none without WatchdogSec=.
  std::optional<std::chrono::microseconds> watchdog_interval() const { return m_watchdog; }

private:
  std::string m_socket;
  std::optional<std::chrono::microseconds> m_watchdog;
};

} // namespace modelmux
