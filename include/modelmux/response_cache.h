// The exact response cache (SPEC §11): the key a request is stored under, whether a request is
// cached at all, and the store. The key is the route, the resolved target chain and the
// request's canonical JSON (object keys sorted, strings unescaped and written one way, numbers
// as written, the top-level stream and stream_options left out), hashed with SHA-256. Entries are
// whole, successful answers in the client's protocol; a stream request replays them as a stream
// (translation/replay.h). The store is an interface so a shared one (Redis) can stand behind it;
// MemoryCache is the local one, bounded by bytes with least-recently-used eviction and a TTL.
// Pure: time comes in as arguments, and no lock is held across anything but a map operation.
#pragma once

#include "modelmux/config.h"
#include "modelmux/protocol.h"
#include "modelmux/result.h"
#include "modelmux/token_usage.h"

#include <chrono>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace simdjson::dom {
class element;
} // namespace simdjson::dom

namespace modelmux {

// The request's JSON written one way: keys sorted, strings unescaped and re-escaped minimally,
// numbers, true, false and null as written, no whitespace. Top-level keys in `leave_out` are
// dropped. An error for a body that is not a JSON object.
Result<std::string> canonical_json(std::string_view body,
                                   const std::vector<std::string_view>& leave_out = {});

// 64 hex digits: SHA-256 of the route, the chain's target names and the canonical body.
std::string cache_key(ApiRoute route, const std::vector<std::string>& chain,
                      std::string_view canonical_body);

enum class CacheUse { use, bypass };
// Whether a request is looked up and stored: the client's x-modelmux-cache header (use |
// bypass, "" when absent) and the config's `when` (deterministic: temperature 0 or a seed).
CacheUse cache_use(CacheWhen when, std::string_view header, simdjson::dom::element root);

struct CachedAnswer {
  std::string body;        // the whole answer, in the client's protocol
  std::string target;      // the target that served it, by its one name
  TokenUsage usage;        // as the original answer reported it
  int64_t cost_micros = 0; // what it cost then: what each hit saves
  size_t bytes() const { return body.size() + target.size() + sizeof(CachedAnswer); }
};

// A stored answer as bytes, for a shared store (SPEC §12): a version line, the target, the cost
// and the usage on one line each, then the body as it is. decode is given whatever the store
// holds, so anything but what encode wrote is nullopt.
std::string encode_cached_answer(const CachedAnswer& answer);
std::optional<CachedAnswer> decode_cached_answer(std::string_view bytes);

struct CacheStats {
  size_t entries = 0;
  size_t bytes = 0;
};

class CacheStore {
public:
  using Clock = std::chrono::steady_clock;
  virtual ~CacheStore() = default;
  // The answer stored under key and not expired at now, or null.
  virtual std::shared_ptr<const CachedAnswer> get(const std::string& key,
                                                  Clock::time_point now) = 0;
  virtual void put(const std::string& key, std::shared_ptr<const CachedAnswer> answer,
                   Clock::time_point now) = 0;
  virtual CacheStats stats() const = 0;
};

class MemoryCache : public CacheStore {
public:
  MemoryCache(size_t max_bytes, std::chrono::milliseconds ttl)
      : m_max_bytes(max_bytes), m_ttl(ttl) {}

  // A reload's new limits; entries over the new size leave, least recently used first.
  void configure(size_t max_bytes, std::chrono::milliseconds ttl);

  std::shared_ptr<const CachedAnswer> get(const std::string& key, Clock::time_point now) override;
  void put(const std::string& key, std::shared_ptr<const CachedAnswer> answer,
           Clock::time_point now) override;
  CacheStats stats() const override;

private:
  struct Entry {
    std::string key;
    std::shared_ptr<const CachedAnswer> answer;
    Clock::time_point expires;
    size_t bytes = 0;
  };
  void evict_locked();
  void erase_locked(std::list<Entry>::iterator it);

  mutable std::mutex m_mutex;
  size_t m_max_bytes;
  std::chrono::milliseconds m_ttl;
  size_t m_bytes = 0;
  std::list<Entry> m_lru; // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> m_index;
};

} // namespace modelmux
