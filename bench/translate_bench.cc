// Translation throughput: MB of upstream SSE per second through each stream relay, fed in the
// slice sizes a socket delivers. The streams are realistic answers: many small text deltas,
// then two tool calls whose arguments arrive in fragments. Usage: modelmux_translate_bench
// [seconds per case, default 2].
#include "modelmux/stream_relay.h"
#include "modelmux/translation/responses.h"

#include <chrono>
#include <cstdio>
#include <string>

using namespace modelmux;
using Clock = std::chrono::steady_clock;

namespace {

std::string anthropic_stream(int deltas) {
  std::string s = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":"
                  "\"msg_bench\",\"type\":\"message\",\"role\":\"assistant\",\"model\":"
                  "\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":"
                  "null,\"usage\":{\"input_tokens\":1200,\"output_tokens\":1}}}\n\n"
                  "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":"
                  "0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
  for (int i = 0; i < deltas; ++i) {
    s += "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
         "\"delta\":{\"type\":\"text_delta\",\"text\":\" token\\\"s \\u00e9 ok\"}}\n\n";
  }
  s += "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n";
  for (int t = 1; t <= 2; ++t) {
    s += "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":" +
         std::to_string(t) + ",\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_" +
         std::to_string(t) + "\",\"name\":\"edit_file\",\"input\":{}}}\n\n";
    for (int i = 0; i < deltas / 4; ++i) {
      s += "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":" +
           std::to_string(t) +
           ",\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"pa\"}}\n\n";
    }
    s += "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":" +
         std::to_string(t) + "}\n\n";
  }
  s += "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
       "\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":900}}\n\n"
       "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
  return s;
}

std::string openai_stream(int deltas) {
  const std::string head = "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\","
                           "\"created\":1741569952,\"model\":\"qwen2.5-coder\",\"choices\":[{"
                           "\"index\":0,\"delta\":";
  const std::string tail = ",\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n";
  std::string s = head + "{\"role\":\"assistant\",\"content\":\"\"}" + tail;
  for (int i = 0; i < deltas; ++i) {
    s += head + "{\"content\":\" token\\\"s \\u00e9 ok\"}" + tail;
  }
  for (int t = 0; t < 2; ++t) {
    s += head + "{\"tool_calls\":[{\"index\":" + std::to_string(t) + ",\"id\":\"call_" +
         std::to_string(t) +
         "\",\"type\":\"function\",\"function\":{\"name\":\"edit_file\",\"arguments\":\"\"}}]}" +
         tail;
    for (int i = 0; i < deltas / 4; ++i) {
      s += head + "{\"tool_calls\":[{\"index\":" + std::to_string(t) +
           ",\"function\":{\"arguments\":\"{\\\"pa\"}}]}" + tail;
    }
  }
  s += head + "{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\n";
  s += "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,"
       "\"model\":\"qwen2.5-coder\",\"choices\":[],\"usage\":{\"prompt_tokens\":1200,"
       "\"completion_tokens\":900,\"total_tokens\":2100}}\n\ndata: [DONE]\n\n";
  return s;
}

ResponsesContext responses_context() {
  ResponsesContext context;
  context.id = "resp_bench";
  return context;
}

// A Responses stream, for the passthrough relay: the chat stream as modelmux translates it.
std::string responses_stream(const std::string& chat) {
  auto relay = make_responses_relay(Protocol::openai, StreamOptions{}, responses_context());
  std::string out;
  relay->feed(chat, out);
  relay->finish(out);
  return out;
}

void run(const char* name, const std::string& input, Protocol from, Protocol to, double seconds,
         size_t slice) {
  StreamOptions options;
  options.client_wants_usage = true;
  std::string out;
  out.reserve(input.size() * 3);
  size_t bytes = 0;
  size_t produced = 0;
  size_t streams = 0;
  const auto start = Clock::now();
  const auto until = start + std::chrono::duration<double>(seconds);
  while (Clock::now() < until) {
    auto relay = to == Protocol::responses
                     ? make_responses_relay(from, options, responses_context())
                     : make_stream_relay(from, to, options);
    for (size_t at = 0; at < input.size(); at += slice) {
      out.clear();
      relay->feed(std::string_view(input).substr(at, slice), out);
      produced += out.size();
    }
    out.clear();
    relay->finish(out);
    if (relay->state() != StreamRelay::State::complete) {
      std::fprintf(stderr, "%s: the stream did not complete\n", name);
      return;
    }
    bytes += input.size();
    ++streams;
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("%-28s %8.1f MB/s in  %8.1f MB/s out  %7.0f streams/s  (%zu-byte slices)\n", name,
              static_cast<double>(bytes) / elapsed / 1e6,
              static_cast<double>(produced) / elapsed / 1e6, static_cast<double>(streams) / elapsed,
              slice);
}

} // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  const auto anthropic = anthropic_stream(2000);
  const auto openai = openai_stream(2000);
  const auto responses = responses_stream(openai);
  for (size_t slice : {size_t(4096), size_t(64)}) {
    run("anthropic -> openai", anthropic, Protocol::anthropic, Protocol::openai, seconds, slice);
    run("openai -> anthropic", openai, Protocol::openai, Protocol::anthropic, seconds, slice);
    run("openai passthrough", openai, Protocol::openai, Protocol::openai, seconds, slice);
    run("anthropic passthrough", anthropic, Protocol::anthropic, Protocol::anthropic, seconds,
        slice);
    run("openai -> responses", openai, Protocol::openai, Protocol::responses, seconds, slice);
    run("anthropic -> responses", anthropic, Protocol::anthropic, Protocol::responses, seconds,
        slice);
    run("responses passthrough", responses, Protocol::responses, Protocol::responses, seconds,
        slice);
  }
  return 0;
}
