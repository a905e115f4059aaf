// Token counts of one answer: what the proxy reads from every protocol, the usage log keeps and
// prices, and the metrics count. A leaf: no parser, no network.
#pragma once

#include <cstdint>

namespace modelmux {

// Kept the way Anthropic reports them: input_tokens excludes the cached ones, which OpenAI folds
// into prompt_tokens. Converting never counts a token twice.
struct TokenUsage {
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  int64_t cache_read_tokens = 0;
  int64_t cache_write_tokens = 0;
  bool reported = false; // false: the upstream sent none

  int64_t prompt_tokens() const { return input_tokens + cache_read_tokens + cache_write_tokens; }
};

} // namespace modelmux
