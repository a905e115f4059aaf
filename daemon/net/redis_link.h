// The link to Redis behind SharedState (SPEC §12): its own thread and event loop, one connection
// for commands (pipelined: a batch of everything queued is written at once, answers matched in
// order) and one subscribed to the cooldown channel, plain TCP or TLS (rediss://). RESP is
// written and read by hiredis (redisFormatCommandArgv, redisReader); the sockets are Asio's.
// When Redis is unreachable the link says so once, keeps reconnecting with a backoff, and
// every call returns at once.
#pragma once

#include "modelmux/config.h"
#include "modelmux/log.h"
#include "modelmux/shared_state.h"

#include <memory>

namespace modelmux::net {

std::unique_ptr<SharedState> make_redis_link(const RedisConfig& config, Log& log);

} // namespace modelmux::net
