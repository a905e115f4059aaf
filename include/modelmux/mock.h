// The mock target: answers locally, with no network, in whichever protocol the route speaks. It
// echoes the last user message, reports usage, streams when asked, and can be told to fail, so
// the example config serves with no model server and no keys. Pure: the caller decides on
// failure and supplies the time and id.
#pragma once

#include "modelmux/protocol.h"
#include "modelmux/request_body.h"

#include <string>
#include <vector>

namespace modelmux {

struct MockReply {
  int status = 200;
  std::string content_type;
  std::string body;                // a non-stream answer, or an error
  std::vector<std::string> events; // a stream: each a whole SSE event, blank line included
};

struct MockRequest {
  ApiRoute route = ApiRoute::chat_completions;
  const RequestBody* body = nullptr;
  std::string_view model; // the name the mock reports as its model
  std::string_view id;    // response id suffix
  int64_t created = 0;    // unix seconds
  bool fail = false;      // answer a 500 as a failing upstream would
};

MockReply mock_reply(const MockRequest& request);

// The text the mock answers with: the last user message's text.
std::string mock_echo_text(ApiRoute route, const simdjson::dom::element& root);

} // namespace modelmux
