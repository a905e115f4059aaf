// The budget's shared spend: counters per period, and the view the budget check reads.
#include "modelmux/shared_spend.h"

#include "modelmux/usage.h"

namespace modelmux {

std::string SharedSpend::month_period(int64_t ts_ms) {
  return "month:" + rfc3339_utc(ts_ms).substr(0, 7);
}

std::string SharedSpend::day_period(int64_t ts_ms) {
  return "day:" + rfc3339_utc(ts_ms).substr(0, 10);
}

void SharedSpend::add(int64_t ts_ms, int64_t micros) {
  if (micros <= 0) {
    return;
  }
  std::lock_guard lock(m_mutex);
  for (const bool is_month : {true, false}) {
    auto& c = counter_locked(ts_ms, is_month);
    c.pending += micros;
    publish_locked(c);
  }
}

SharedSpend::Counter& SharedSpend::counter_locked(int64_t ts_ms, bool is_month) {
  auto& c = m_counters[is_month ? month_period(ts_ms) : day_period(ts_ms)];
  c.is_month = is_month;
  c.index = is_month ? utc_month_index(ts_ms) : utc_day_index(ts_ms);
  return c;
}

std::vector<SharedSpend::Increment> SharedSpend::take(int64_t now_ms) {
  std::lock_guard lock(m_mutex);
  const auto month = month_period(now_ms);
  const auto day = day_period(now_ms);
  counter_locked(now_ms, true);
  counter_locked(now_ms, false);
  std::vector<Increment> out;
  for (auto it = m_counters.begin(); it != m_counters.end();) {
    auto& [period, c] = *it;
    const bool current = period == month || period == day;
    if (!current && c.pending == 0 && c.inflight == 0) {
      it = m_counters.erase(it); // a past period with nothing owed: done with
      continue;
    }
    if (c.pending > 0 || current) {
      out.push_back({period, c.pending});
      c.inflight += c.pending;
      c.pending = 0;
    }
    ++it;
  }
  return out;
}

void SharedSpend::acknowledge(const std::string& period, int64_t sent, int64_t total) {
  std::lock_guard lock(m_mutex);
  const auto found = m_counters.find(period);
  if (found == m_counters.end()) {
    return;
  }
  auto& c = found->second;
  c.inflight -= sent;
  c.total = total;
  publish_locked(c);
}

void SharedSpend::restore(const std::string& period, int64_t sent) {
  std::lock_guard lock(m_mutex);
  const auto found = m_counters.find(period);
  if (found == m_counters.end()) {
    return;
  }
  auto& c = found->second;
  c.inflight -= sent;
  c.pending += sent;
  publish_locked(c);
}

void SharedSpend::publish_locked(const Counter& c) {
  if (!c.total) {
    return;
  }
  // The total the store gave already holds what was in flight when it answered; what is in
  // flight now or pending is this instance's spend since.
  View& view = c.is_month ? m_month : m_day;
  if (c.index < view.index.load()) {
    return; // a past period's late answer: the view has moved on
  }
  view.value.store(*c.total + c.inflight + c.pending);
  view.index.store(c.index);
}

std::optional<int64_t> SharedSpend::read(const View& view, int64_t index) const {
  const int64_t value = view.value.load();
  if (view.index.load() != index || value < 0) {
    return std::nullopt;
  }
  return value;
}

std::optional<int64_t> SharedSpend::month(int64_t now_ms) const {
  return read(m_month, utc_month_index(now_ms));
}

std::optional<int64_t> SharedSpend::day(int64_t now_ms) const {
  return read(m_day, utc_day_index(now_ms));
}

int64_t SharedSpend::unsent() const {
  std::lock_guard lock(m_mutex);
  int64_t sum = 0;
  for (const auto& [period, c] : m_counters) {
    if (period.starts_with("month:")) {
      sum += c.pending + c.inflight;
    }
  }
  return sum;
}

} // namespace modelmux
