// Request body validation and the model splice. The DOM parse validates the whole document
// (syntax, UTF-8, field types); an on-demand pass over the same padded bytes finds the byte
// offset of the model token, which the DOM does not keep.
#include "modelmux/request_body.h"

#include "modelmux/json.h"

#include <algorithm>

namespace modelmux {

namespace {

enum TypeBits : unsigned {
  k_string = 1,
  k_number = 2,
  k_integer = 4,
  k_bool = 8,
  k_array = 16,
  k_object = 32,
  k_null = 64,
};

struct FieldSpec {
  std::string_view name;
  unsigned types;
  bool required = false;
};

// The fields whose type modelmux checks per route; others pass through for the upstream to judge.
const std::vector<FieldSpec>& specs_for(ApiRoute route) {
  static const std::vector<FieldSpec> chat = {
      {"model", k_string, true},
      {"messages", k_array, true},
      {"stream", k_bool | k_null},
      {"stream_options", k_object | k_null},
      {"temperature", k_number | k_null},
      {"top_p", k_number | k_null},
      {"frequency_penalty", k_number | k_null},
      {"presence_penalty", k_number | k_null},
      {"max_tokens", k_integer | k_null},
      {"max_completion_tokens", k_integer | k_null},
      {"n", k_integer | k_null},
      {"seed", k_integer | k_null},
      {"stop", k_string | k_array | k_null},
      {"tools", k_array | k_null},
      {"tool_choice", k_string | k_object | k_null},
      {"parallel_tool_calls", k_bool | k_null},
      {"user", k_string | k_null},
      {"response_format", k_object | k_null},
      {"logprobs", k_bool | k_null},
      {"top_logprobs", k_integer | k_null},
      {"metadata", k_object | k_null},
  };
  static const std::vector<FieldSpec> messages = {
      {"model", k_string, true},
      {"messages", k_array, true},
      {"max_tokens", k_integer, true},
      {"system", k_string | k_array},
      {"stream", k_bool},
      {"temperature", k_number},
      {"top_p", k_number},
      {"top_k", k_integer},
      {"stop_sequences", k_array},
      {"tools", k_array},
      {"tool_choice", k_object},
      {"metadata", k_object},
      {"thinking", k_object},
  };
  static const std::vector<FieldSpec> completions = {
      {"model", k_string, true},
      {"prompt", k_string | k_array, true},
      {"stream", k_bool | k_null},
      {"stream_options", k_object | k_null},
      {"max_tokens", k_integer | k_null},
      {"temperature", k_number | k_null},
      {"top_p", k_number | k_null},
      {"n", k_integer | k_null},
      {"stop", k_string | k_array | k_null},
      {"user", k_string | k_null},
  };
  static const std::vector<FieldSpec> embeddings = {
      {"model", k_string, true},
      {"input", k_string | k_array, true},
      {"encoding_format", k_string | k_null},
      {"dimensions", k_integer | k_null},
      {"user", k_string | k_null},
  };
  static const std::vector<FieldSpec> responses = {
      {"model", k_string, true},
      {"input", k_string | k_array | k_null},
      {"instructions", k_string | k_null},
      {"stream", k_bool | k_null},
      {"temperature", k_number | k_null},
      {"top_p", k_number | k_null},
      {"max_output_tokens", k_integer | k_null},
      {"tools", k_array | k_null},
      {"tool_choice", k_string | k_object | k_null},
      {"parallel_tool_calls", k_bool | k_null},
      {"previous_response_id", k_string | k_null},
      {"store", k_bool | k_null},
      {"reasoning", k_object | k_null},
      {"text", k_object | k_null},
      {"metadata", k_object | k_null},
      {"user", k_string | k_null},
  };
  // Counting tokens takes a messages request without max_tokens.
  static const std::vector<FieldSpec> count_tokens = [] {
    auto specs = messages;
    specs.erase(specs.begin() + 2);
    return specs;
  }();
  switch (route) {
  case ApiRoute::count_tokens:
    return count_tokens;
  case ApiRoute::responses:
    return responses;
  case ApiRoute::chat_completions:
    return chat;
  case ApiRoute::messages:
    return messages;
  case ApiRoute::completions:
    return completions;
  case ApiRoute::embeddings:
    return embeddings;
  }
  return chat;
}

unsigned type_bit(const simdjson::dom::element& e) {
  using T = simdjson::dom::element_type;
  switch (e.type()) {
  case T::ARRAY:
    return k_array;
  case T::OBJECT:
    return k_object;
  case T::INT64:
  case T::UINT64:
    return k_integer | k_number;
  case T::DOUBLE:
    return k_number;
  case T::STRING:
    return k_string;
  case T::BOOL:
    return k_bool;
  case T::NULL_VALUE:
    return k_null;
  }
  return 0;
}

std::string_view type_name(unsigned bit) {
  if (bit & k_integer) {
    return "an integer";
  }
  if (bit & k_number) {
    return "a number";
  }
  if (bit & k_string) {
    return "a string";
  }
  if (bit & k_bool) {
    return "a boolean";
  }
  if (bit & k_array) {
    return "an array";
  }
  if (bit & k_object) {
    return "an object";
  }
  return "null";
}

std::string expected_types(unsigned types) {
  std::vector<std::string> names;
  for (unsigned bit : {k_string, k_integer, k_number, k_bool, k_array, k_object}) {
    if ((types & bit) && !(bit == k_number && (types & k_integer))) {
      names.emplace_back(type_name(bit));
    }
  }
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    out += (i == 0 ? "" : (i + 1 == names.size() ? " or " : ", ")) + names[i];
  }
  return out;
}

Error bad_field(std::string_view field, std::string message) {
  return make_error(ErrorKind::invalid_request, std::move(message), std::string(field));
}

Error wrong_type(std::string_view field, unsigned expected, unsigned got) {
  return bad_field(field, "'" + std::string(field) + "' must be " + expected_types(expected) +
                              ", got " + std::string(type_name(got)));
}

// Checks each message is an object with a string role.
Status check_messages(const simdjson::dom::array& messages) {
  size_t i = 0;
  for (const auto m : messages) {
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (m.type() != simdjson::dom::element_type::OBJECT) {
      return wrong_type(at, k_object, type_bit(m));
    }
    const auto role = m["role"];
    if (role.error()) {
      return bad_field(at + ".role", "'" + at + ".role' is required");
    }
    if (role.value_unsafe().type() != simdjson::dom::element_type::STRING) {
      return wrong_type(at + ".role", k_string, type_bit(role.value_unsafe()));
    }
    const auto content = m["content"];
    if (!content.error()) {
      const unsigned got = type_bit(content.value_unsafe());
      if (!(got & (k_string | k_array | k_null))) {
        return wrong_type(at + ".content", k_string | k_array, got);
      }
    }
    ++i;
  }
  return ok();
}

// Roughly four bytes of text per token, counting what a model reads: text, not the JSON around
// it and not inline image data, which providers bill as a fixed block.
int64_t estimate_tokens(const simdjson::dom::element& e, int depth = 0) {
  using T = simdjson::dom::element_type;
  if (depth > 64) {
    return 0;
  }
  switch (e.type()) {
  case T::STRING: {
    const std::string_view s = e.get_string().value_unsafe();
    if (s.size() > 256 && s.substr(0, 5) == "data:") {
      return 85;
    }
    return static_cast<int64_t>(s.size() + 3) / 4;
  }
  case T::ARRAY: {
    int64_t n = 0;
    const simdjson::dom::array items = e.get_array().value_unsafe();
    for (const auto v : items) {
      n += estimate_tokens(v, depth + 1);
    }
    return n;
  }
  case T::OBJECT: {
    int64_t n = 0;
    const simdjson::dom::object fields = e.get_object().value_unsafe();
    for (const auto field : fields) {
      if (field.key == "data" && field.value.type() == T::STRING) {
        n += 85; // base64 image block
      } else {
        n += estimate_tokens(field.value, depth + 1);
      }
    }
    return n;
  }
  default:
    return 1;
  }
}

// raw_json_token() includes the whitespace after a token.
std::string_view without_trailing_space(std::string_view token) {
  while (!token.empty() && (token.back() == ' ' || token.back() == '\n' || token.back() == '\r' ||
                            token.back() == '\t')) {
    token.remove_suffix(1);
  }
  return token;
}

// Per-thread parsers and padded scratch, reused across requests so the hot path allocates
// nothing once warm. A parser grown by one huge body is dropped so it does not pin memory.
using ThreadParsers = BodyParser;

constexpr size_t k_keep_parser_capacity = 256 * 1024;

ThreadParsers& thread_parsers(size_t body_size) {
  thread_local std::unique_ptr<ThreadParsers> parsers;
  if (!parsers ||
      (parsers->dom.capacity() > k_keep_parser_capacity && body_size <= k_keep_parser_capacity)) {
    parsers = std::make_unique<ThreadParsers>();
  }
  return *parsers;
}

} // namespace

bool RequestBody::has_key(std::string_view key) const {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

Result<RequestBody> parse_request_body(ApiRoute route, std::string_view body) {
  return parse_request_body(route, body, thread_parsers(body.size()));
}

Result<RequestBody> parse_request_body(ApiRoute route, std::string_view body, BodyParser& p) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return make_error(ErrorKind::invalid_request,
                      "the request body is empty; send a JSON object with a \"model\" field");
  }
  p.scratch.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  p.scratch.assign(body.data(), body.size());

  RequestBody out;
  simdjson::dom::element root;
  if (const auto err = p.dom.parse(p.scratch.data(), body.size(), false).get(root); err) {
    return make_error(ErrorKind::invalid_request, "the request body is not valid JSON (" +
                                                      std::string(simdjson::error_message(err)) +
                                                      ")");
  }
  if (root.type() != simdjson::dom::element_type::OBJECT) {
    return make_error(ErrorKind::invalid_request, "the request body must be a JSON object");
  }
  out.root = root;
  const auto& specs = specs_for(route);
  const simdjson::dom::object top = root.get_object().value_unsafe();
  // Sized once: an SDK's request has a dozen top-level keys, and growing by doubling would
  // allocate four times for them, twice over.
  std::vector<std::string_view> keys;
  keys.reserve(top.size());
  out.keys.reserve(top.size());
  for (const auto field : top) {
    keys.push_back(field.key);
    for (const auto& spec : specs) {
      if (spec.name != field.key) {
        continue;
      }
      const unsigned got = type_bit(field.value);
      if (!(got & spec.types)) {
        return wrong_type(spec.name, spec.types, got);
      }
    }
  }
  // A key given twice (or spelled with escapes as another) is refused: modelmux would route by
  // one "model" while the upstream may read the other, so the request would be routed, billed
  // and served as different things.
  std::sort(keys.begin(), keys.end());
  if (const auto dup = std::adjacent_find(keys.begin(), keys.end()); dup != keys.end()) {
    return bad_field(*dup,
                     "'" + std::string(*dup) + "' appears more than once in the request body");
  }
  for (const auto& spec : specs) {
    if (spec.required && root[spec.name].error()) {
      return bad_field(spec.name, "'" + std::string(spec.name) + "' is required");
    }
  }
  out.model = std::string(root["model"].get_string().value_unsafe());
  if (out.model.empty()) {
    return bad_field("model", "'model' must not be empty");
  }
  if (const auto s = root["stream"]; !s.error() && s.value_unsafe().is_bool()) {
    out.stream = s.value_unsafe().get_bool().value_unsafe();
  }
  if (const auto u = root.at_pointer("/stream_options/include_usage"); !u.error()) {
    out.include_usage = u.value_unsafe().is_bool() && u.value_unsafe().get_bool().value_unsafe();
  }
  if (const auto m = root["messages"]; !m.error() && m.value_unsafe().is_array()) {
    if (auto st = check_messages(m.value_unsafe().get_array().value_unsafe()); !st) {
      return st.error();
    }
  }
  for (const char* key : {"messages", "system", "tools", "prompt", "input", "instructions"}) {
    if (const auto v = root[key]; !v.error()) {
      out.estimated_prompt_tokens += estimate_tokens(v.value_unsafe());
    }
  }

  // Locate the model token and the top-level keys in the client's own bytes.
  simdjson::ondemand::document doc;
  simdjson::padded_string_view padded(p.scratch.data(), body.size(), p.scratch.capacity());
  simdjson::ondemand::object obj;
  if (p.ondemand.iterate(padded).get(doc) || doc.get_object().get(obj)) {
    return make_error(ErrorKind::invalid_request, "the request body is not valid JSON");
  }
  const char* base = p.scratch.data();
  for (auto field_result : obj) {
    simdjson::ondemand::field field;
    if (std::move(field_result).get(field)) {
      return make_error(ErrorKind::invalid_request, "the request body is not valid JSON");
    }
    // raw() points just past the key's opening quote; the key ends at its closing quote.
    const char* key_begin = field.key().raw();
    const char* key_end = key_begin;
    while (*key_end != '"') {
      key_end += *key_end == '\\' ? 2 : 1;
    }
    const std::string_view key(key_begin, static_cast<size_t>(key_end - key_begin));
    if (key.find('\\') != std::string_view::npos) {
      // "mod\u0065l" is "model" to the upstream's parser; modelmux compares keys as written,
      // so an escaped top-level key could route by one model and serve another. No API field
      // name needs an escape.
      return make_error(ErrorKind::invalid_request,
                        "top-level keys with escape sequences are not accepted");
    }
    out.keys.push_back(body.substr(static_cast<size_t>(key_begin - base), key.size()));
    if (key == "model") {
      const std::string_view token = without_trailing_space(field.value().raw_json_token());
      out.model_begin = static_cast<size_t>(token.data() - base);
      out.model_end = out.model_begin + token.size();
    } else if (key == "max_tokens" || key == "max_completion_tokens" ||
               key == "max_output_tokens") {
      int64_t value = 0;
      if (!root[key].get(value)) {
        const std::string_view token = without_trailing_space(field.value().raw_json_token());
        const size_t begin = static_cast<size_t>(token.data() - base);
        out.token_limits.push_back({value, begin, begin + token.size()});
      }
    } else if (key == "stream_options") {
      simdjson::ondemand::value value = field.value();
      simdjson::ondemand::json_type type;
      std::string_view raw;
      if (value.type().get(type)) {
        return make_error(ErrorKind::invalid_request, "the request body is not valid JSON");
      }
      if (type == simdjson::ondemand::json_type::object) {
        simdjson::ondemand::object options;
        if (value.get_object().get(options) || options.raw_json().get(raw)) {
          return make_error(ErrorKind::invalid_request, "the request body is not valid JSON");
        }
      } else if (type == simdjson::ondemand::json_type::array) {
        // Only routes that do not check its type (Anthropic's has no stream_options) get here;
        // the whole array is the range, so a rewrite replaces all of it.
        simdjson::ondemand::array options;
        if (value.get_array().get(options) || options.raw_json().get(raw)) {
          return make_error(ErrorKind::invalid_request, "the request body is not valid JSON");
        }
      } else {
        raw = without_trailing_space(value.raw_json_token()); // a scalar: one token
      }
      out.stream_options_begin = static_cast<size_t>(raw.data() - base);
      out.stream_options_end = out.stream_options_begin + raw.size();
    }
  }
  out.object_start = body.find('{') + 1;
  return out;
}

std::string rewrite_request_body(std::string_view body, const RequestBody& parsed,
                                 std::string_view upstream_model,
                                 const std::vector<Param>& defaults, bool ask_usage,
                                 std::optional<int64_t> max_output_tokens) {
  std::string out;
  out.reserve(body.size() + upstream_model.size() + 96);
  out.append(body.substr(0, parsed.object_start));
  const bool rewrite_options =
      ask_usage && !parsed.include_usage && parsed.has_key("stream_options");
  if (ask_usage && !parsed.has_key("stream_options")) {
    out.append("\"stream_options\":{\"include_usage\":true},");
  }
  for (const auto& param : defaults) {
    const bool present = parsed.has_key(param.key) ||
                         // The two spellings of the token limit are one setting; never send both.
                         (param.key == "max_tokens" && parsed.has_key("max_completion_tokens")) ||
                         (param.key == "max_completion_tokens" && parsed.has_key("max_tokens"));
    if (present) {
      continue;
    }
    append_json_string(out, param.key);
    out.push_back(':');
    out.append(param.json);
    out.push_back(',');
  }
  // The splices — model, stream_options, clamped token limits — in the order they occur.
  struct Splice {
    size_t begin;
    size_t end;
    std::string text;
  };
  std::vector<Splice> splices;
  std::string model_token;
  append_json_string(model_token, upstream_model);
  splices.push_back({parsed.model_begin, parsed.model_end, std::move(model_token)});
  if (rewrite_options) {
    // The client's options, with include_usage set: modelmux drops the usage chunk again.
    std::string options;
    JsonWriter w(options);
    w.begin_object();
    simdjson::dom::object client_options;
    if (!parsed.root["stream_options"].get(client_options)) {
      for (const auto field : client_options) {
        if (field.key != "include_usage") {
          w.key(field.key).raw(simdjson::minify(field.value));
        }
      }
    }
    w.field("include_usage", true).end_object();
    splices.push_back({parsed.stream_options_begin, parsed.stream_options_end, std::move(options)});
  }
  if (max_output_tokens) {
    for (const auto& limit : parsed.token_limits) {
      if (limit.value > *max_output_tokens) {
        splices.push_back({limit.begin, limit.end, std::to_string(*max_output_tokens)});
      }
    }
  }
  std::sort(splices.begin(), splices.end(),
            [](const Splice& a, const Splice& b) { return a.begin < b.begin; });
  size_t at = parsed.object_start;
  for (const auto& s : splices) {
    out.append(body.substr(at, s.begin - at));
    out.append(s.text);
    at = s.end;
  }
  out.append(body.substr(at));
  return out;
}

} // namespace modelmux
