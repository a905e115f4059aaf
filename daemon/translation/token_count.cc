// Tokenizer requests and answers of vLLM and llama.cpp.
#include "modelmux/translation/token_count.h"

#include "modelmux/json.h"
#include "translation/dom.h"

namespace modelmux {

using namespace dom;

Tokenizer tokenizer_of(const Target& target) {
  if (target.endpoint.type != TargetType::openai) {
    return Tokenizer::none;
  }
  switch (target.endpoint.probe) {
  case ProbeKind::vllm:
    return Tokenizer::vllm;
  case ProbeKind::llamacpp:
    return Tokenizer::llamacpp;
  default:
    return Tokenizer::none;
  }
}

std::optional<std::string> vllm_tokenize_body(std::string_view chat_body) {
  object root;
  if (parse_answer(chat_body, root)) {
    return std::nullopt;
  }
  std::string out;
  JsonWriter w(out);
  w.begin_object();
  for (const char* key : {"model", "messages", "tools"}) {
    if (const auto v = field_of(root, key)) {
      write_element(w.key(key), *v);
    }
  }
  w.field("add_generation_prompt", true).end_object();
  return out;
}

std::optional<int64_t> vllm_token_count(std::string_view answer) {
  object root;
  int64_t count = 0;
  if (parse_answer(answer, root) || root["count"].get(count) || count < 0) {
    return std::nullopt;
  }
  return count;
}

std::optional<std::string> llamacpp_tokenize_body(std::string_view apply_template_answer) {
  object root;
  std::string_view prompt;
  if (parse_answer(apply_template_answer, root) || root["prompt"].get(prompt)) {
    return std::nullopt;
  }
  std::string out;
  JsonWriter(out).begin_object().field("content", prompt).end_object();
  return out;
}

std::optional<int64_t> llamacpp_token_count(std::string_view answer) {
  object root;
  array tokens;
  if (parse_answer(answer, root) || root["tokens"].get(tokens)) {
    return std::nullopt;
  }
  return static_cast<int64_t>(tokens.size());
}

} // namespace modelmux
