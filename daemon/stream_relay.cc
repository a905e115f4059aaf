// The stream relay's common part: SSE parsing, the end state, and the failure event. The
// relays themselves live in daemon/translation/ (chat_messages_stream.cc, responses_stream.cc).
#include "modelmux/stream_relay.h"

#include "modelmux/json.h"
#include "modelmux/protocol.h"

namespace modelmux {

void StreamRelay::feed(std::string_view bytes, std::string& out) {
  if (m_state != State::open) {
    return;
  }
  m_out = &out;
  m_sse.feed(bytes, *this);
  m_out = nullptr;
  if (m_sse.overflowed() && m_state == State::open) {
    end_as(State::malformed, "an event exceeded the size limit");
  }
}

void StreamRelay::finish(std::string& out) {
  if (m_state != State::open) {
    return;
  }
  m_out = &out;
  m_sse.finish(*this);
  if (m_state == State::open) {
    on_end(out);
  }
  m_out = nullptr;
}

void StreamRelay::on_event(std::string_view event, std::string_view data) {
  if (m_state == State::open) {
    on_data(event, data, *m_out);
  }
}

void StreamRelay::on_comment(std::string_view comment) {
  if (m_forward_comments && m_state == State::open) {
    m_out->append(":").append(comment).append("\n\n");
  }
}

void StreamRelay::write_failure(const Error& error, std::string& out) {
  if (m_client == Protocol::anthropic) {
    out.append("event: error\ndata: ").append(anthropic_error_body(error)).append("\n\n");
  } else {
    out.append("data: ").append(openai_error_body(error)).append("\n\n");
  }
}

void StreamRelay::end_as(State state, std::string problem) {
  m_state = state;
  m_problem = std::move(problem);
}

bool StreamRelay::parse(std::string_view data, simdjson::dom::object& out) {
  m_scratch.reserve(data.size() + simdjson::SIMDJSON_PADDING);
  m_scratch.assign(data);
  simdjson::dom::element root;
  if (m_parser.parse(m_scratch.data(), m_scratch.size(), false).get(root) || root.get(out)) {
    end_as(State::malformed, "an event's data is not a JSON object");
    return false;
  }
  return true;
}

} // namespace modelmux
