// A target's slots (SPEC §10): at most max_concurrency requests in flight, the rest waiting in a
// FIFO queue of at most max_queue for at most queue_timeout. Shared by every worker, so it
// locks, but only for a few instructions per admission and release, never across I/O; a target
// without a limit never reaches it. A waiter is woken by a callback the releasing thread calls
// after unlocking (on the event loop, a post to the waiter's own loop), so nothing is parked on a
// thread. Pure: time comes in as arguments.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

namespace modelmux {

struct SlotLimits {
  int max_concurrency = 0; // 0: unbounded
  int max_queue = 64;
  std::chrono::milliseconds queue_timeout{10'000};
};

class TargetSlots {
public:
  using Clock = std::chrono::steady_clock;

  struct Waiter {
    std::function<void()> wake;
    Clock::time_point since;
    bool granted = false; // read and written under the slots' lock
  };

  enum class Decision {
    granted, // a slot is held: release it when the attempt ends
    queued,  // wait for the waiter's wake (or queue_timeout), then leave()
    full,    // the queue is full: skip this target as busy
    spill,   // the expected wait is longer than spill_after: skip this target as busy
  };

  struct Admission {
    Decision decision = Decision::granted;
    std::shared_ptr<Waiter> waiter; // when queued
  };

  struct View {
    SlotLimits limits;
    int in_use = 0;
    int queued = 0;
    std::optional<std::chrono::milliseconds> service_time;
  };

  explicit TargetSlots(SlotLimits limits = {}) : m_limits(limits) {}

  // New limits on a reload: in-flight requests keep their slots; waiters that now fit are woken.
  void configure(SlotLimits limits);
  bool bounded() const;

  // Asks for a slot at now. With spill_after > 0, a request that would wait longer than that (by
  // the expected wait, below) is told to spill rather than queue. wake is kept only if queued.
  Admission acquire(Clock::time_point now, std::chrono::milliseconds spill_after,
                    std::function<void()> wake);
  // A slot now if one is free and no one waits for it; never queues (a hedge's second
  // contender takes one this way or does not race).
  bool try_acquire();
  // A waiter's wait ended, woken or timed out: true when it holds a slot (granted, perhaps just
  // as it timed out), false when it left the queue without one.
  bool leave(const std::shared_ptr<Waiter>& waiter);
  // Gives a slot back after held_for; the slot passes to the oldest waiter, if any.
  void release(Clock::duration held_for);

  // How long the k-th waiter (k >= 1) can expect to wait: ceil(k / max_concurrency) service
  // times; nullopt before any request has been served (then a spill decision spills).
  std::optional<std::chrono::milliseconds> expected_wait(int k) const;

  View view() const;

private:
  std::optional<std::chrono::milliseconds> expected_wait_locked(int k) const;
  // Grants free slots to waiters in order; returns their wakes, to call after unlocking.
  std::vector<std::function<void()>> grant_locked();

  mutable std::mutex m_mutex;
  SlotLimits m_limits;
  int m_in_use = 0;
  std::deque<std::shared_ptr<Waiter>> m_waiters;
  // Recent service time (a slot's hold, first byte to last), as a moving average in
  // microseconds; negative until the first release.
  double m_service_us = -1;
};

} // namespace modelmux

namespace modelmux {

// A slot held: given back when the lease ends (an attempt's end, whatever ended it: an answer,
// a failure, a client gone, a hedge cancelled), with how long it was held. An empty lease (a
// target without a limit) holds nothing.
class SlotLease {
public:
  SlotLease() = default;
  SlotLease(std::shared_ptr<TargetSlots> slots, TargetSlots::Clock::time_point since)
      : m_slots(std::move(slots)), m_since(since) {}
  SlotLease(SlotLease&& other) noexcept = default;
  SlotLease& operator=(SlotLease&& other) noexcept {
    if (this != &other) {
      release();
      m_slots = std::move(other.m_slots);
      m_since = other.m_since;
    }
    return *this;
  }
  SlotLease(const SlotLease&) = delete;
  SlotLease& operator=(const SlotLease&) = delete;
  ~SlotLease() { release(); }

  void release() {
    if (m_slots) {
      m_slots->release(TargetSlots::Clock::now() - m_since);
      m_slots.reset();
    }
  }

private:
  std::shared_ptr<TargetSlots> m_slots;
  TargetSlots::Clock::time_point m_since;
};

} // namespace modelmux
