// What several modelmux instances share through Redis (SPEC §12), as the rest of modelmux sees
// it: the budget's spend, key cooldowns after a 429, and values under keys (the response cache,
// the Responses API's conversations). Nothing here waits on the network: writes are queued and
// sent in batches, a read's answer comes back later through a callback (the caller bounds how long
// it waits), and while the link is down every call returns at once. The implementation
// (daemon/net/redis_link.cc) owns the sockets.
#pragma once

#include "modelmux/shared_spend.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace modelmux {

struct SharedStatus {
  enum class State { connecting, up, down };
  State state = State::connecting;
  std::string url;           // as configured (it carries no credentials)
  int64_t since_ms = 0;      // when the state began (UTC ms)
  std::string why;           // for down: the last error, with no secret in it
  int64_t unsent_micros = 0; // spend waiting to reach Redis
  int64_t dropped = 0;       // writes dropped since start because the queue was full
};
std::string_view state_name(SharedStatus::State state);

// A cooldown one instance saw and the others apply: the registry entry ("openai",
// "custom:local"), the upstream model, which key (key_fingerprint), until when (UTC ms).
struct SharedCooldown {
  std::string entry;
  std::string model;
  std::string key_id;
  int64_t until_ms = 0;
};
// 16 hex digits of the key's SHA-256: names a key across instances without carrying it.
std::string key_fingerprint(std::string_view key);
// A cooldown as one pub/sub message and back; nullopt for anything else.
std::string encode_cooldown(const SharedCooldown& c);
std::optional<SharedCooldown> decode_cooldown(std::string_view message);

class SharedState {
public:
  virtual ~SharedState() = default;

  virtual SharedStatus status() const = 0;
  // The budget's shared spend: add() from the usage writer, month()/day() for the budget check.
  virtual SharedSpend& spend() = 0;

  // Stores value under key (the prefix is added) for ttl; dropped when the link is down.
  virtual void put(std::string key, std::string value, std::chrono::milliseconds ttl) = 0;
  // Reads key: done runs once, on the link's thread, with the value or nullopt (absent, link
  // down, or an error). It must not block.
  virtual void get(std::string key, std::function<void(std::optional<std::string>)> done) = 0;

  virtual void publish_cooldown(const SharedCooldown& cooldown) = 0;
  // Called on the link's thread for each cooldown another instance published.
  virtual void on_cooldown(std::function<void(const SharedCooldown&)> listener) = 0;
};

} // namespace modelmux
