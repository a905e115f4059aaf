// Exact token counts from the tokenizer endpoints of local model servers, for
// POST /v1/messages/count_tokens toward OpenAI-type targets: vLLM's POST /tokenize takes a chat
// request and answers {"count"}; llama.cpp's POST /apply-template renders a chat request to its
// prompt, and POST /tokenize {"content"} answers {"tokens": [...]}. Both sit at the server's
// root, not under /v1. Pure: the proxy sends the requests these write.
#pragma once

#include "modelmux/registry.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace modelmux {

enum class Tokenizer { none, vllm, llamacpp };

// The tokenizer a target's server has, known from its probe kind (probe: vllm | llamacpp).
Tokenizer tokenizer_of(const Target& target);

// vLLM: the /tokenize body for a chat completions body — its model, messages and tools, with
// the generation prompt added as a request would have it.
std::optional<std::string> vllm_tokenize_body(std::string_view chat_body);
// vLLM's answer {"count": N, ...}.
std::optional<int64_t> vllm_token_count(std::string_view answer);

// llama.cpp: /apply-template takes the chat body as it is; its answer {"prompt"} becomes the
// /tokenize body; that answer's tokens are counted.
std::optional<std::string> llamacpp_tokenize_body(std::string_view apply_template_answer);
std::optional<int64_t> llamacpp_token_count(std::string_view answer);

} // namespace modelmux
