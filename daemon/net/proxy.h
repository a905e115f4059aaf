// The proxy on the event loop: one client request through validation, routing and the attempt
// loop to an answer, as a coroutine on the worker that accepted it. Each target in the chain is
// tried until one answers; a failure before the first byte reaches the client moves on to the
// next, so the client sees one clean answer or one clear error. After the first byte, a failure
// ends the stream with a terminal error event in the client's protocol, never with a clean end
// that looks complete.
#pragma once

#include "modelmux/app.h"
#include "modelmux/http.h"
#include "net/client_reply.h"
#include "net/worker.h"

#include <memory>

namespace modelmux::net {

Task<void> serve_proxied(Worker& worker, App& app, std::shared_ptr<const Snapshot> snapshot,
                         ApiRoute route, const HttpRequest& request, ClientReply& reply);

} // namespace modelmux::net
