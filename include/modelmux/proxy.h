// The proxy: one client request through validation, routing and the attempt loop to an answer.
// Each target in the chain is tried until one answers; a failure before the first byte reaches
// the client moves on to the next, so the client sees one clean answer or one clear error.
// After the first byte, a failure ends the stream with a terminal error event in the client's
// protocol, never with a clean end that looks complete.
#pragma once

#include "modelmux/app.h"
#include "modelmux/protocol.h"

#include <httplib.h>

namespace modelmux {

void handle_proxied(App& app, const Snapshot& snapshot, ApiRoute route, const httplib::Request& req,
                    httplib::Response& res);

// A new request id: 32 hex digits.
std::string new_request_id();

} // namespace modelmux
