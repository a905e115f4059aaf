#include "modelmux/target_slots.h"

#include <algorithm>
#include <cmath>

namespace modelmux {

namespace {

// The moving average's weight of the newest service time: about the last ten count.
constexpr double k_service_weight = 0.2;

void call_all(const std::vector<std::function<void()>>& wakes) {
  for (const auto& wake : wakes) {
    wake();
  }
}

} // namespace

void TargetSlots::configure(SlotLimits limits) {
  std::vector<std::function<void()>> wakes;
  {
    std::lock_guard lock(m_mutex);
    m_limits = limits;
    wakes = grant_locked();
  }
  call_all(wakes);
}

bool TargetSlots::bounded() const {
  std::lock_guard lock(m_mutex);
  return m_limits.max_concurrency > 0;
}

TargetSlots::Admission TargetSlots::acquire(Clock::time_point now,
                                            std::chrono::milliseconds spill_after,
                                            std::function<void()> wake) {
  std::lock_guard lock(m_mutex);
  if (m_limits.max_concurrency <= 0 || (m_in_use < m_limits.max_concurrency && m_waiters.empty())) {
    ++m_in_use;
    return {Decision::granted, nullptr};
  }
  const int position = static_cast<int>(m_waiters.size()) + 1;
  if (spill_after.count() > 0) {
    const auto wait = expected_wait_locked(position);
    if (!wait || *wait > spill_after) {
      return {Decision::spill, nullptr};
    }
  }
  if (position > m_limits.max_queue) {
    return {Decision::full, nullptr};
  }
  auto waiter = std::make_shared<Waiter>();
  waiter->wake = std::move(wake);
  waiter->since = now;
  m_waiters.push_back(waiter);
  return {Decision::queued, std::move(waiter)};
}

bool TargetSlots::try_acquire() {
  std::lock_guard lock(m_mutex);
  if (m_limits.max_concurrency > 0 &&
      (m_in_use >= m_limits.max_concurrency || !m_waiters.empty())) {
    return false;
  }
  ++m_in_use;
  return true;
}

bool TargetSlots::leave(const std::shared_ptr<Waiter>& waiter) {
  std::lock_guard lock(m_mutex);
  if (waiter->granted) {
    return true;
  }
  const auto it = std::find(m_waiters.begin(), m_waiters.end(), waiter);
  if (it != m_waiters.end()) {
    m_waiters.erase(it);
  }
  return false;
}

void TargetSlots::release(Clock::duration held_for) {
  std::vector<std::function<void()>> wakes;
  {
    std::lock_guard lock(m_mutex);
    const double us = std::chrono::duration<double, std::micro>(held_for).count();
    m_service_us = m_service_us < 0 ? us : m_service_us + k_service_weight * (us - m_service_us);
    --m_in_use;
    wakes = grant_locked();
  }
  call_all(wakes);
}

std::vector<std::function<void()>> TargetSlots::grant_locked() {
  std::vector<std::function<void()>> wakes;
  while (!m_waiters.empty() &&
         (m_limits.max_concurrency <= 0 || m_in_use < m_limits.max_concurrency)) {
    auto waiter = std::move(m_waiters.front());
    m_waiters.pop_front();
    waiter->granted = true;
    ++m_in_use;
    wakes.push_back(std::move(waiter->wake));
  }
  return wakes;
}

std::optional<std::chrono::milliseconds> TargetSlots::expected_wait(int k) const {
  std::lock_guard lock(m_mutex);
  return expected_wait_locked(k);
}

std::optional<std::chrono::milliseconds> TargetSlots::expected_wait_locked(int k) const {
  if (m_service_us < 0 || m_limits.max_concurrency <= 0) {
    return std::nullopt;
  }
  const double rounds = std::ceil(static_cast<double>(k) / m_limits.max_concurrency);
  return std::chrono::milliseconds(
      static_cast<int64_t>(std::llround(rounds * m_service_us / 1000)));
}

TargetSlots::View TargetSlots::view() const {
  std::lock_guard lock(m_mutex);
  View v;
  v.limits = m_limits;
  v.in_use = m_in_use;
  v.queued = static_cast<int>(m_waiters.size());
  if (m_service_us >= 0) {
    v.service_time = std::chrono::milliseconds(static_cast<int64_t>(m_service_us / 1000));
  }
  return v;
}

} // namespace modelmux
