// Relaying an upstream SSE stream to the client, a slice at a time. Between protocols each event
// is translated as it arrives, keeping only per-block state (never the accumulated text); within
// one protocol each event is relayed as is, but for the usage chunk the client did not ask for.
// Either way the relay knows whether the stream reached its protocol's terminal event, so a
// broken stream is never passed off as a complete answer, and it keeps the token counts.
#pragma once

#include "modelmux/protocol.h"
#include "modelmux/sse.h"
#include "modelmux/translate.h"

#include <memory>
#include <simdjson.h>
#include <string>
#include <string_view>

namespace modelmux {

struct StreamOptions {
  // OpenAI clients get the usage chunk only when they asked for it (stream_options.include_usage).
  bool client_wants_usage = false;
  // "created" for OpenAI chunks made from an Anthropic stream, which has none.
  int64_t created = 0;
  // For Anthropic's message_start, which must carry input tokens before an OpenAI upstream has
  // reported any; the exact count follows in message_delta, which the SDKs take as final.
  int64_t estimated_input_tokens = 0;
};

class StreamRelay : private SseHandler {
public:
  enum class State {
    open,           // still going
    complete,       // the terminal event arrived ([DONE] or a finish_reason; message_stop)
    upstream_error, // the upstream sent an error event; out has it in the client's protocol
    malformed,      // an event was not what the protocol allows; nothing was written for it
  };

  ~StreamRelay() override = default;

  // Feeds upstream bytes; appends what the client should receive to out.
  virtual void feed(std::string_view bytes, std::string& out);
  // The upstream ended: appends the closing events a complete stream still owes. If state() is
  // still open afterwards, the stream was cut short.
  virtual void finish(std::string& out);

  // Relays the upstream's keep-alive comments from now on. Off until the client has its first
  // byte: a comment must not commit a request that could still fall back.
  virtual void forward_comments() { m_forward_comments = true; }

  // Appends the client protocol's terminal error event for a stream that broke off after its
  // first byte (OpenAI: data: {"error"}; Anthropic: event: error; Responses: response.failed),
  // so the client never takes a broken answer for a complete one.
  virtual void write_failure(const Error& error, std::string& out);

  // A stream to a Responses client: its response id and the output items it carried, for the
  // conversation store (empty for other clients).
  virtual std::string_view response_id() const { return {}; }
  virtual std::string_view output_items() const { return {}; }

  State state() const { return m_state; }
  // Why the stream is malformed or in error, for the attempt list.
  const std::string& problem() const { return m_problem; }
  const TokenUsage& usage() const { return m_usage; }
  // Bytes of answer text and tool arguments relayed, for estimating output tokens when the
  // upstream reports no usage.
  size_t output_bytes() const { return m_output_bytes; }

protected:
  explicit StreamRelay(const StreamOptions& options, Protocol client = Protocol::openai)
      : m_options(options), m_client(client) {}

  virtual void on_data(std::string_view event, std::string_view data, std::string& out) = 0;
  virtual void on_end(std::string& out) = 0;

  // Settles the stream: complete, or failed for problem.
  void end_as(State state, std::string problem);
  // Parses data; false (and the stream malformed) if it is not a JSON object.
  bool parse(std::string_view data, simdjson::dom::object& object);

  StreamOptions m_options;
  Protocol m_client;
  TokenUsage m_usage;
  size_t m_output_bytes = 0;

private:
  void on_event(std::string_view event, std::string_view data) override;
  void on_comment(std::string_view comment) override;

  State m_state = State::open;
  std::string m_problem;
  SseParser m_sse;
  simdjson::dom::parser m_parser;
  std::string m_scratch; // padded copy of the event being parsed
  std::string* m_out = nullptr;
  bool m_forward_comments = false;
};

// The relay for an upstream speaking `upstream` to a client speaking `client`. A Responses
// client needs its response's context: make_responses_relay.
std::unique_ptr<StreamRelay> make_stream_relay(Protocol upstream, Protocol client,
                                               const StreamOptions& options);

struct ResponsesContext;
// The relay to a Responses client from an upstream speaking chat completions (Protocol::openai),
// Anthropic messages, or Responses itself (Protocol::responses, relayed as is).
std::unique_ptr<StreamRelay> make_responses_relay(Protocol upstream, const StreamOptions& options,
                                                  const ResponsesContext& context);

} // namespace modelmux
