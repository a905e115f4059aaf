// Whole answers replayed as streams and streams added up to whole answers (the response cache's
// two directions), per protocol, checked the way a client would check them: the stream is
// complete to the protocol's own reader, and it adds up to the answer it came from.
#include "modelmux/stream_relay.h"
#include "modelmux/translation/replay.h"
#include "modelmux/translation/responses.h"

#include <doctest/doctest.h>
#include <fstream>
#include <simdjson.h>
#include <sstream>

using namespace modelmux;

namespace {

std::string testdata(const std::string& path) {
  std::ifstream in(std::string(MODELMUX_SOURCE_DIR) + "/tests/testdata/translation/" + path);
  REQUIRE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// JSON equality as a client sees it: object keys in any order, a null or empty-list field the
// same as an absent one (a stream has no place for OpenAI's "refusal": null or "annotations": []).
bool same_json(simdjson::dom::element a, simdjson::dom::element b) {
  if (a.type() != b.type()) {
    return false;
  }
  switch (a.type()) {
  case simdjson::dom::element_type::OBJECT: {
    // A field that is null or an empty list reads as one that is absent.
    const auto blank = [](simdjson::dom::element e) {
      return e.is_null() || (e.is_array() && e.get_array().value_unsafe().size() == 0);
    };
    const auto covers = [&](simdjson::dom::object x, simdjson::dom::object y) {
      for (const auto field : x) {
        simdjson::dom::element other;
        if (y[field.key].get(other) ? !blank(field.value) : !same_json(field.value, other)) {
          return false;
        }
      }
      return true;
    };
    return covers(a.get_object().value_unsafe(), b.get_object().value_unsafe()) &&
           covers(b.get_object().value_unsafe(), a.get_object().value_unsafe());
  }
  case simdjson::dom::element_type::ARRAY: {
    const auto aa = a.get_array().value_unsafe();
    const auto ba = b.get_array().value_unsafe();
    if (aa.size() != ba.size()) {
      return false;
    }
    auto bi = ba.begin();
    for (const auto item : aa) {
      if (!same_json(item, *bi)) {
        return false;
      }
      ++bi;
    }
    return true;
  }
  default:
    return simdjson::minify(a) == simdjson::minify(b);
  }
}

bool same_json(const std::string& a, const std::string& b) {
  simdjson::dom::parser pa;
  simdjson::dom::parser pb;
  simdjson::dom::element ea;
  simdjson::dom::element eb;
  REQUIRE_FALSE(pa.parse(a).get(ea));
  REQUIRE_FALSE(pb.parse(b).get(eb));
  return same_json(ea, eb);
}

// The stream as the protocol's own reader takes it: complete, with this usage.
TokenUsage read_stream(Protocol protocol, const std::string& stream) {
  StreamOptions options;
  options.client_wants_usage = true;
  static const ResponsesContext context{};
  auto relay = protocol == Protocol::responses
                   ? make_responses_relay(Protocol::responses, options, context)
                   : make_stream_relay(protocol, protocol, options);
  std::string out;
  relay->feed(stream, out);
  relay->finish(out);
  CHECK_MESSAGE(relay->state() == StreamRelay::State::complete, relay->problem());
  return relay->usage();
}

} // namespace

TEST_CASE("an OpenAI answer replays as a complete stream that adds up to the same answer") {
  for (const auto* dir :
       {"response_openai_to_anthropic_tools", "response_openai_to_anthropic_text"}) {
    CAPTURE(dir);
    const std::string answer = testdata(std::string(dir) + "/input.json");
    const auto stream = stream_of_answer(Protocol::openai, answer, true);
    REQUIRE(stream);
    const auto usage = read_stream(Protocol::openai, stream.value());
    CHECK(usage.reported);
    CHECK(stream.value().ends_with("data: [DONE]\n\n"));
    const auto back = answer_of_stream(Protocol::openai, stream.value());
    REQUIRE(back);
    CHECK_MESSAGE(same_json(back.value(), answer), back.value());
  }
}

TEST_CASE("an OpenAI replay carries the usage chunk only when the client asked for it") {
  const std::string answer = testdata("response_openai_to_anthropic_text/input.json");
  const auto without = stream_of_answer(Protocol::openai, answer, false);
  REQUIRE(without);
  CHECK(without.value().find("\"usage\"") == std::string::npos);
  CHECK(stream_of_answer(Protocol::openai, answer, true).value().find("\"usage\"") !=
        std::string::npos);
}

TEST_CASE("an Anthropic message replays as a complete stream that adds up to the same message") {
  for (const auto* dir : {"response_anthropic_to_openai_tools", "response_anthropic_to_openai_text",
                          "response_anthropic_to_openai_max_tokens"}) {
    CAPTURE(dir);
    const std::string answer = testdata(std::string(dir) + "/input.json");
    const auto stream = stream_of_answer(Protocol::anthropic, answer, false);
    REQUIRE(stream);
    const auto usage = read_stream(Protocol::anthropic, stream.value());
    CHECK(usage.output_tokens > 0);
    CHECK(stream.value().find("event: message_stop") != std::string::npos);
    const auto back = answer_of_stream(Protocol::anthropic, stream.value());
    REQUIRE(back);
    CHECK_MESSAGE(same_json(back.value(), answer), back.value());
  }
}

TEST_CASE(
    "a Responses answer replays as a complete event stream that adds up to the same response") {
  for (const auto* dir :
       {"response_openai_to_responses_tools", "response_anthropic_to_responses_tools",
        "response_anthropic_to_responses_max_tokens"}) {
    CAPTURE(dir);
    const std::string answer = testdata(std::string(dir) + "/expected.json");
    const auto stream = stream_of_answer(Protocol::responses, answer, false);
    REQUIRE(stream);
    read_stream(Protocol::responses, stream.value());
    const auto back = answer_of_stream(Protocol::responses, stream.value());
    if (answer.find(R"("status":"incomplete")") != std::string::npos) {
      CHECK_FALSE(back); // only completed responses add up to one worth keeping
      continue;
    }
    REQUIRE(back);
    CHECK(same_json(back.value(), answer));
  }
}

TEST_CASE("real streams add up to whole answers, a cut or failed stream adds up to nothing") {
  const auto openai = answer_of_stream(Protocol::openai,
                                       testdata("stream_openai_passthrough_usage_kept/input.sse"));
  REQUIRE(openai);
  CHECK(openai.value().find(R"("object":"chat.completion")") != std::string::npos);
  CHECK(answer_of_stream(Protocol::anthropic, testdata("stream_anthropic_passthrough/input.sse")));
  CHECK(answer_of_stream(Protocol::responses, testdata("stream_responses_passthrough/input.sse")));
  CHECK_FALSE(answer_of_stream(Protocol::anthropic,
                               testdata("stream_anthropic_to_openai_error/input.sse")));
  CHECK_FALSE(answer_of_stream(
      Protocol::openai, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"cut\"}}]}\n\n"));
  CHECK_FALSE(answer_of_stream(Protocol::openai, "data: {\"error\":{\"message\":\"boom\"}}\n\n"));
  CHECK_FALSE(stream_of_answer(Protocol::anthropic, "not json", false));
  // A delta for a block that never started is a broken stream, not an answer to keep.
  CHECK_FALSE(answer_of_stream(
      Protocol::anthropic,
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\","
      "\"content\":[]}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\","
      "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n"
      "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
}
