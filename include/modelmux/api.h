// The words at the bottom of modelmux: the wire protocols it speaks and the API routes it serves.
// A leaf: it includes nothing of modelmux's, so config, capability, registry and the translation
// pairs can all name a protocol or a route without a cycle.
#pragma once

namespace modelmux {

// A wire protocol: what a target speaks (mock targets answer in either of the first two), and
// what a client speaks. Responses is the OpenAI Responses API, which clients send and targets
// with `responses: true` take as is; openai is chat completions.
enum class Protocol { openai, anthropic, any, responses };

// A proxied route of the client-facing API (SPEC §4).
enum class ApiRoute {
  chat_completions,
  completions,
  embeddings,
  messages,
  responses,
  count_tokens
};

} // namespace modelmux
