// The in-memory conversation store: a map of responses and a queue of their ids by age, the
// oldest evicted first when a bound is passed.
#include "modelmux/response_store.h"

#include <vector>

namespace modelmux {

void MemoryResponseStore::put(std::string id, std::string parent, std::string items,
                              Clock::time_point now) {
  if (id.empty()) {
    return;
  }
  const size_t size = id.size() + parent.size() + items.size();
  if (size > m_limits.max_bytes) {
    return; // one answer larger than the whole store is not kept
  }
  std::lock_guard lock(m_mutex);
  if (const auto it = m_entries.find(id); it != m_entries.end()) {
    return; // ids are unique; an upstream that repeats one keeps the first
  }
  m_bytes += size;
  m_order.push_back(id);
  m_entries.emplace(std::move(id), Entry{std::move(parent), std::move(items), now});
  evict(now);
}

void MemoryResponseStore::evict(Clock::time_point now) {
  while (!m_order.empty()) {
    const auto it = m_entries.find(m_order.front());
    const bool expired = it != m_entries.end() && now - it->second.stored > m_limits.max_age;
    if (!expired && m_entries.size() <= m_limits.max_responses && m_bytes <= m_limits.max_bytes) {
      return;
    }
    if (it != m_entries.end()) {
      m_bytes -= it->first.size() + it->second.parent.size() + it->second.items.size();
      m_entries.erase(it);
    }
    m_order.pop_front();
  }
}

std::optional<std::string> MemoryResponseStore::conversation(std::string_view id,
                                                             Clock::time_point now) const {
  std::lock_guard lock(m_mutex);
  std::vector<const Entry*> chain;
  std::string next(id);
  // Each step goes to an older response, so a chain is never longer than the store.
  while (!next.empty() && chain.size() <= m_entries.size()) {
    const auto it = m_entries.find(next);
    if (it == m_entries.end() || now - it->second.stored > m_limits.max_age) {
      return std::nullopt;
    }
    chain.push_back(&it->second);
    next = it->second.parent;
  }
  if (!next.empty()) {
    return std::nullopt;
  }
  std::string out = "[";
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    if ((*it)->items.empty()) {
      continue;
    }
    if (out.size() > 1) {
      out.push_back(',');
    }
    out += (*it)->items;
  }
  out.push_back(']');
  return out;
}

size_t MemoryResponseStore::size() const {
  std::lock_guard lock(m_mutex);
  return m_entries.size();
}

size_t MemoryResponseStore::bytes() const {
  std::lock_guard lock(m_mutex);
  return m_bytes;
}

} // namespace modelmux
