// The client's request body: validated once with simdjson (malformed JSON and wrong-typed fields
// are 400s naming the field), the "model" value located by byte offset, and the upstream body
// produced by splicing: the new model name and any registry defaults go in, every other byte of
// the client's body goes out untouched. No parse-and-reserialize on the proxy path.
#pragma once

#include "modelmux/config.h"
#include "modelmux/protocol.h"
#include "modelmux/result.h"

#include <optional>
#include <simdjson.h>
#include <string>
#include <string_view>
#include <vector>

namespace modelmux {

struct RequestBody {
  std::string model; // as the client named it
  bool stream = false;
  bool include_usage = false; // stream_options.include_usage
  int64_t estimated_prompt_tokens = 0;
  // Byte range of the model's JSON string token (quotes included) in the body.
  size_t model_begin = 0;
  size_t model_end = 0;
  // Byte range of the stream_options value, when the client sent one.
  size_t stream_options_begin = 0;
  size_t stream_options_end = 0;
  // The output token limits the client set (max_tokens, max_completion_tokens,
  // max_output_tokens): value and byte range, for clamping to a target's max_output_tokens.
  struct TokenLimit {
    int64_t value = 0;
    size_t begin = 0;
    size_t end = 0;
  };
  std::vector<TokenLimit> token_limits;
  // Byte offset just past the opening '{' of the top-level object.
  size_t object_start = 0;
  // The top-level keys, as views into the body's own bytes.
  std::vector<std::string_view> keys;
  // The parsed document; valid as long as the parser it was read with is not reused.
  simdjson::dom::element root;

  bool has_key(std::string_view key) const;
};

// The parsers a request body is read with, and the padded copy they read. The parsed document
// lives in them: a request that waits on the network between reading its body and using it
// (an event loop serves others meanwhile) holds its own, borrowed from its worker.
struct BodyParser {
  simdjson::dom::parser dom;
  simdjson::ondemand::parser ondemand;
  std::string scratch;
};

// Validates body for route and locates what the proxy needs. body and parser must outlive the
// result.
Result<RequestBody> parse_request_body(ApiRoute route, std::string_view body, BodyParser& parser);
// The same with this thread's parser: the result is valid until the thread parses another body.
Result<RequestBody> parse_request_body(ApiRoute route, std::string_view body);

// The body to send upstream: the client's bytes with the model replaced by upstream_model and
// each default param inserted where the client did not set it. With ask_usage, a stream also asks
// for stream_options.include_usage (SPEC §5: usage is exact wherever the upstream can give it).
// A token limit above max_output_tokens is clamped to it.
std::string rewrite_request_body(std::string_view body, const RequestBody& parsed,
                                 std::string_view upstream_model,
                                 const std::vector<Param>& defaults, bool ask_usage = false,
                                 std::optional<int64_t> max_output_tokens = {});

} // namespace modelmux
