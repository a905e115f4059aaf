// The budget's spend as several instances share it (SPEC §12), kept apart from the wire: each
// instance adds what its requests cost, sends the increments in batches, and learns the fleet's
// totals from the answers (an increment of 0 reads them). Its view of a period is the last total
// the shared store gave plus what it spent since, so the budget check reads two atomics and
// never waits on the network; while the store is away the increments wait here (one number per
// period, so memory stays bounded) and are sent when it is back: the spend is reconciled.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace modelmux {

class SharedSpend {
public:
  // A request of this instance cost micros at ts_ms (UTC milliseconds).
  void add(int64_t ts_ms, int64_t micros);

  struct Increment {
    std::string period; // "month:2026-12" or "day:2026-12-03"
    int64_t micros = 0; // 0 reads the total
  };
  // What to send now: every period with spend not yet sent, and this month and day (to learn what
  // the other instances spent). The amounts are in flight until acknowledged or restored.
  std::vector<Increment> take(int64_t now_ms);
  // The store added sent to period and answered with the fleet's total.
  void acknowledge(const std::string& period, int64_t sent, int64_t total);
  // An increment that never reached the store: it waits to be sent again.
  void restore(const std::string& period, int64_t sent);

  // The fleet's spend in now_ms's month and day as this instance knows it; nullopt until the
  // store has answered for that period (the caller uses its own count then).
  std::optional<int64_t> month(int64_t now_ms) const;
  std::optional<int64_t> day(int64_t now_ms) const;
  // Spend not yet acknowledged by the store, over every period.
  int64_t unsent() const;

  static std::string month_period(int64_t ts_ms);
  static std::string day_period(int64_t ts_ms);

private:
  struct Counter {
    bool is_month = false;
    int64_t index = 0;    // utc_month_index or utc_day_index of the period
    int64_t pending = 0;  // added, not sent
    int64_t inflight = 0; // sent, not acknowledged
    std::optional<int64_t> total;
  };
  struct View {
    std::atomic<int64_t> index{-1}; // utc month or day index the value is for
    std::atomic<int64_t> value{-1}; // -1: unknown
  };
  Counter& counter_locked(int64_t ts_ms, bool is_month);
  void publish_locked(const Counter& c);
  std::optional<int64_t> read(const View& view, int64_t index) const;

  mutable std::mutex m_mutex;
  std::map<std::string, Counter> m_counters;
  View m_month;
  View m_day;
};

} // namespace modelmux
