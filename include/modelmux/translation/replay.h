// A whole answer as a stream and a stream as a whole answer, in one protocol: what the response
// cache (SPEC §11) needs to answer a stream request from a stored answer and a whole request from
// a stored stream. Both directions keep every part the SDKs read — role, text, tool calls and
// their arguments, thinking, finish or stop reason, usage — and end as a complete answer does
// ([DONE]; message_stop; response.completed). Pure: bytes in, bytes out.
#pragma once

#include "modelmux/protocol.h"
#include "modelmux/result.h"

#include <string>
#include <string_view>

namespace modelmux {

// The SSE a client of protocol would have received for this whole answer. include_usage: an
// OpenAI chat client asked for the usage chunk (stream_options.include_usage); the other
// protocols always carry usage.
Result<std::string> stream_of_answer(Protocol protocol, std::string_view answer,
                                     bool include_usage);

// The whole answer a complete stream in protocol adds up to; an error if the stream is not
// complete (no terminal event), carried an error event, or adds up to an answer that would not
// replay as a stream.
Result<std::string> answer_of_stream(Protocol protocol, std::string_view stream);

} // namespace modelmux
