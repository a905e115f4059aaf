// The conversations behind previous_response_id (SPEC §4a): each stored response keeps the
// items it added — its request's input, then its output — and its parent, so a conversation is
// rebuilt by walking the chain, and a long one costs each turn once. Bounded by count, bytes and
// age; the oldest go first. An interface, so a shared store (Redis) can stand in for the local one.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace modelmux {

class ResponseStore {
public:
  using Clock = std::chrono::steady_clock;
  virtual ~ResponseStore() = default;

  // Keeps response id: parent is its previous_response_id (empty for none), items its input
  // and output items as comma-separated JSON.
  virtual void put(std::string id, std::string parent, std::string items,
                   Clock::time_point now) = 0;

  // The conversation up to and including response id, as a JSON array of items, oldest first;
  // nullopt when id, or a response it continues, is unknown or expired.
  virtual std::optional<std::string> conversation(std::string_view id,
                                                  Clock::time_point now) const = 0;
};

struct ResponseStoreLimits {
  size_t max_responses = 10000;
  size_t max_bytes = 256 * 1024 * 1024;
  std::chrono::seconds max_age{24 * 3600};
};

class MemoryResponseStore final : public ResponseStore {
public:
  explicit MemoryResponseStore(ResponseStoreLimits limits = {}) : m_limits(limits) {}

  void put(std::string id, std::string parent, std::string items, Clock::time_point now) override;
  std::optional<std::string> conversation(std::string_view id,
                                          Clock::time_point now) const override;

  size_t size() const;
  size_t bytes() const;

private:
  struct Entry {
    std::string parent;
    std::string items;
    Clock::time_point stored;
  };

  void evict(Clock::time_point now);

  ResponseStoreLimits m_limits;
  mutable std::mutex m_mutex;
  std::unordered_map<std::string, Entry> m_entries;
  std::deque<std::string> m_order; // ids, oldest first
  size_t m_bytes = 0;
};

} // namespace modelmux
