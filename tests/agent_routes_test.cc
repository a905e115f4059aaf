// The routes coding agents and SDKs call besides the chat ones, over loopback: token counting
// (an Anthropic target, vLLM's and llama.cpp's tokenizers, and the estimate), one model's entry,
// and HEAD for reachability. Also the tokenizer requests and answers, pure.
#include "fake_upstream.h"
#include "modelmux/translation/token_count.h"

using namespace modelmux;
using namespace modelmux::testing;

namespace {

const std::string k_count_body =
    R"({"model":"MODEL","system":"Be brief.","messages":[{"role":"user","content":"count me"}],)"
    R"("tools":[{"name":"Bash","input_schema":{"type":"object"}}]})";

std::string count_body(const std::string& model) {
  std::string body = k_count_body;
  body.replace(body.find("MODEL"), 5, model);
  return body;
}

} // namespace

TEST_CASE(
    "vLLM's and llama.cpp's tokenizer requests and answers are read as their servers write them") {
  const auto vllm = vllm_tokenize_body(
      R"({"model":"qwen","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"stream":true})");
  REQUIRE(vllm.has_value());
  CHECK(
      *vllm ==
      R"({"model":"qwen","messages":[{"role":"user","content":"hi"}],"add_generation_prompt":true})");
  CHECK(vllm_token_count(R"({"count":42,"max_model_len":8192,"tokens":[1]})") == 42);
  CHECK_FALSE(vllm_token_count(R"({"count":-1})").has_value());
  CHECK_FALSE(vllm_token_count("<html>").has_value());
  CHECK(llamacpp_tokenize_body(R"({"prompt":"<|user|>\nhi"})") == R"({"content":"<|user|>\nhi"})");
  CHECK(llamacpp_token_count(R"({"tokens":[1,2,3]})") == 3);
  CHECK_FALSE(llamacpp_token_count(R"({"tokens":"no"})").has_value());
}

TEST_CASE("count_tokens is exact from an Anthropic target, vLLM and llama.cpp, else an estimate") {
  std::vector<std::string> paths;
  std::mutex m;
  auto seen = [&](const httplib::Request& req) {
    std::lock_guard lock(m);
    paths.push_back(req.path + " " + req.body);
  };
  FakeUpstream anthropic([&](const httplib::Request& req, httplib::Response& res) {
    seen(req);
    res.set_content(R"({"input_tokens":77})", "application/json");
  });
  FakeUpstream vllm([&](const httplib::Request& req, httplib::Response& res) {
    seen(req);
    if (req.path == "/tokenize") {
      res.set_content(R"({"count":55,"max_model_len":8192})", "application/json");
    } else {
      res.status = 404;
    }
  });
  FakeUpstream llamacpp([&](const httplib::Request& req, httplib::Response& res) {
    seen(req);
    if (req.path == "/apply-template") {
      res.set_content(R"({"prompt":"<s>system Be brief. user count me"})", "application/json");
    } else if (req.path == "/tokenize") {
      res.set_content(R"({"tokens":[1,2,3,4,5,6,7,8,9]})", "application/json");
    } else {
      res.status = 404;
    }
  });
  FakeUpstream plain([&](const httplib::Request& req, httplib::Response& res) {
    seen(req);
    res.status = 404;
  });
  TestDaemon d(fill(R"(
providers:
  claude: {type: anthropic, base_url: "{anthropic}", api_keys: [sk-ant-count]}
  vllm: {type: openai, base_url: "{vllm}", probe: vllm}
  llama: {type: openai, base_url: "{llama}", probe: llamacpp}
  plain: {type: openai, base_url: "{plain}"}
)",
                    {{"anthropic", anthropic.base_url()},
                     {"vllm", vllm.base_url()},
                     {"llama", llamacpp.base_url()},
                     {"plain", plain.base_url()}}));
  auto c = d.client();
  struct Expect {
    std::string model;
    std::string count;
    bool estimated;
  };
  for (const auto& e : {Expect{"claude:claude-x", "77", false}, Expect{"vllm:qwen", "55", false},
                        Expect{"llama:coder", "9", false}, Expect{"plain:m", "", true}}) {
    CAPTURE(e.model);
    const auto r = c.Post("/v1/messages/count_tokens", count_body(e.model), "application/json");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->has_header("x-modelmux-estimated") == e.estimated);
    if (!e.estimated) {
      CHECK(r->body == R"({"input_tokens":)" + e.count + "}");
    } else {
      CHECK(r->body.starts_with(R"({"input_tokens":)"));
    }
  }
  std::lock_guard lock(m);
  REQUIRE(paths.size() == 4);
  CHECK(paths[0].starts_with("/v1/messages/count_tokens {\"model\":\"claude-x\""));
  CHECK(paths[1].starts_with("/tokenize {\"model\":\"qwen\",\"messages\":[{\"role\":\"system\""));
  CHECK(paths[1].find(R"("tools":[{"type":"function")") != std::string::npos);
  CHECK(paths[2].starts_with("/apply-template {\"model\":\"coder\""));
  CHECK(paths[3] == R"(/tokenize {"content":"<s>system Be brief. user count me"})");
}

TEST_CASE("a count_tokens request without max_tokens is valid, one without messages is a 400") {
  TestDaemon d("custom_models:\n  - {id: demo, type: mock}\n");
  auto c = d.client();
  const auto ok = c.Post("/v1/messages/count_tokens", count_body("demo"), "application/json");
  REQUIRE(ok);
  CHECK(ok->status == 200);
  CHECK(ok->get_header_value("x-modelmux-estimated") == "true");
  const auto bad = c.Post("/v1/messages/count_tokens", R"({"model":"demo"})", "application/json");
  REQUIRE(bad);
  CHECK(bad->status == 400);
  CHECK(bad->body.find(R"("type":"error")") != std::string::npos);
  CHECK(bad->body.find("'messages' is required") != std::string::npos);
}

TEST_CASE(
    "GET /v1/models/{id} answers one entry or a 404, and HEAD / and HEAD /health answer 200") {
  TestDaemon d("custom_models:\n  - {id: demo, type: mock}\naliases:\n  code: custom:demo\n");
  auto c = d.client();
  const auto one = c.Get("/v1/models/code");
  REQUIRE(one);
  CHECK(one->status == 200);
  CHECK(one->body == R"({"id":"code","object":"model","created":0,"owned_by":"alias"})");
  const auto anthropic = c.Get("/v1/models/custom:demo", {{"anthropic-version", "2023-06-01"}});
  REQUIRE(anthropic);
  CHECK(anthropic->body.find(R"("type":"model","id":"custom:demo")") != std::string::npos);
  const auto missing = c.Get("/v1/models/nope");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  CHECK(missing->body.find("model_not_found") != std::string::npos);
  for (const char* path : {"/", "/health"}) {
    const auto head = c.Head(path);
    REQUIRE(head);
    CHECK(head->status == 200);
    CHECK(head->body.empty());
  }
}
