// The daemon over real loopback sockets against in-process fake upstreams: each route, stream
// and non-stream, headers, fallback before the first byte, and every edge of SPEC §6.
#include "fake_upstream.h"
#include "modelmux/upstream.h"

#include <atomic>

using namespace modelmux;
using namespace modelmux::testing;

namespace {

const char* k_chat_answer =
    R"({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"up","choices":[)"
    R"({"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],)"
    R"("usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}})";

std::string openai_target(const FakeUpstream& up, const std::string& extra = "") {
  return fill(R"(
providers:
  local:
    type: openai
    base_url: {url}
    api_keys: [sk-upstream-secret]
{extra}
custom_models:
  - id: demo
    type: mock
)",
              {{"url", up.base_url()}, {"extra", extra}});
}

} // namespace

TEST_CASE("a chat completion is forwarded with the model rewritten and the registry's key") {
  FakeUpstream up([](const httplib::Request&, httplib::Response& res) {
    res.set_content(k_chat_answer, "application/json");
  });
  TestDaemon d(openai_target(up));
  auto c = d.client();
  const auto r = c.Post(
      "/v1/chat/completions",
      httplib::Headers{{"Authorization", "Bearer client-own-key"}, {"x-request-id", "req-42"}},
      chat_body("local:qwen2.5:7b"), "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == k_chat_answer);
  CHECK(header(r, "x-modelmux-target") == "local:qwen2.5:7b");
  CHECK(header(r, "x-modelmux-attempts") == "1");
  CHECK(header(r, "x-request-id") == "req-42");
  const auto seen = up.seen();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].path == "/v1/chat/completions");
  CHECK(seen[0].body ==
        R"({"model":"qwen2.5:7b","stream":false,"messages":[{"role":"user","content":"hello"}]})");
  CHECK(seen[0].headers.find("Authorization")->second == "Bearer sk-upstream-secret");
  CHECK(seen[0].headers.find("x-request-id")->second == "req-42");
}

TEST_CASE("a request without x-request-id gets a new one") {
  TestDaemon d("custom_models:\n  - {id: demo, type: mock}\n");
  auto c = d.client();
  const auto a = c.Post("/v1/chat/completions", chat_body("demo"), "application/json");
  const auto b = c.Post("/v1/chat/completions", chat_body("demo"), "application/json");
  REQUIRE(a);
  REQUIRE(b);
  CHECK(header(a, "x-request-id").size() == 32);
  CHECK(header(a, "x-request-id") != header(b, "x-request-id"));
}

TEST_CASE("registry params are sent upstream only where the request omits them") {
  FakeUpstream up([](const httplib::Request&, httplib::Response& res) {
    res.set_content(k_chat_answer, "application/json");
  });
  TestDaemon d(fill(R"(
custom_models:
  - id: tuned
    endpoint: {url}
    model: served-name
    params: {temperature: 0.2, max_tokens: 4096, stop: ["###"]}
)",
                    {{"url", up.base_url()}}));
  auto c = d.client();
  REQUIRE(c.Post("/v1/chat/completions",
                 R"({"model":"custom:tuned","temperature":0.9,"messages":[]})",
                 "application/json"));
  CHECK(up.seen().at(0).body == R"({"max_tokens":4096,"stop":["###"],"model":"served-name",)"
                                R"("temperature":0.9,"messages":[]})");
}

TEST_CASE("a streamed chat is relayed chunk by chunk as the upstream sends it") {
  Latch first_seen_by_client;
  std::atomic<bool> upstream_waited{false};
  FakeUpstream up([&](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider(
        "text/event-stream", [&, step = 0](size_t, httplib::DataSink& sink) mutable {
          if (step == 0) {
            const std::string e = "data: {\"choices\":[{\"delta\":{\"content\":\"one\"}}]}\n\n";
            sink.write(e.data(), e.size());
          } else if (step == 1) {
            // The rest is held back until the client has the first chunk: proof that
            // modelmux relays without waiting for more.
            upstream_waited = first_seen_by_client.wait();
            const std::string e = "data: {\"choices\":[{\"delta\":{\"content\":\"two\"}}]}\n\n"
                                  "data: [DONE]\n\n";
            sink.write(e.data(), e.size());
          } else {
            sink.done();
          }
          ++step;
          return true;
        });
  });
  TestDaemon d(openai_target(up));
  const auto s = stream_post(d.port(), "/v1/chat/completions", chat_body("local:m", true),
                             [&](const std::string& chunk) {
                               if (chunk.find("one") != std::string::npos) {
                                 first_seen_by_client.open();
                               }
                             });
  CHECK(s.status == 200);
  CHECK(upstream_waited);
  CHECK(s.body == "data: {\"choices\":[{\"delta\":{\"content\":\"one\"}}]}\n\n"
                  "data: {\"choices\":[{\"delta\":{\"content\":\"two\"}}]}\n\n"
                  "data: [DONE]\n\n");
  CHECK(s.headers.find("x-modelmux-target")->second == "local:m");
  CHECK(s.headers.find("Content-Type")->second == "text/event-stream");
}

TEST_CASE("an Anthropic message goes to an Anthropic target with x-api-key and a version") {
  FakeUpstream up([](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"id":"msg_1","type":"message","role":"assistant","content":[]})",
                    "application/json");
  });
  TestDaemon d(fill(R"(
providers:
  anthropic:
    type: anthropic
    base_url: {url}
    api_keys: [sk-ant-secret]
)",
                    {{"url", up.base_url()}}));
  auto c = d.client();
  const std::string body =
      R"({"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"x"}]})";
  SUBCASE("default version") {
    const auto r = c.Post("/v1/messages", httplib::Headers{{"x-api-key", "client-key"}}, body,
                          "application/json");
    REQUIRE(r);
    CHECK(r->status == 200);
    const auto seen = up.seen().at(0);
    CHECK(seen.path == "/v1/messages");
    CHECK(seen.headers.find("x-api-key")->second == "sk-ant-secret");
    CHECK(seen.headers.find("anthropic-version")->second == "2023-06-01");
    CHECK(seen.headers.count("Authorization") == 0);
  }
  SUBCASE("the client's version and beta flags are kept") {
    const auto r = c.Post("/v1/messages",
                          httplib::Headers{{"anthropic-version", "2024-01-01"},
                                           {"anthropic-beta", "prompt-caching-2024-07-31"}},
                          body, "application/json");
    REQUIRE(r);
    const auto seen = up.seen().at(0);
    CHECK(seen.headers.find("anthropic-version")->second == "2024-01-01");
    CHECK(seen.headers.find("anthropic-beta")->second == "prompt-caching-2024-07-31");
  }
}

TEST_CASE("completions and embeddings are forwarded to OpenAI-type targets") {
  FakeUpstream up([](const httplib::Request& req, httplib::Response& res) {
    res.set_content(R"({"object":"list","path":")" + req.path + "\"}", "application/json");
  });
  TestDaemon d(openai_target(up));
  auto c = d.client();
  auto r =
      c.Post("/v1/embeddings", R"({"model":"local:nomic-embed","input":"hi"})", "application/json");
  REQUIRE(r);
  CHECK(r->body == R"({"object":"list","path":"/v1/embeddings"})");
  r = c.Post("/v1/completions", R"({"model":"local:m","prompt":"once"})", "application/json");
  REQUIRE(r);
  CHECK(r->body == R"({"object":"list","path":"/v1/completions"})");
  CHECK(up.seen().at(1).body == R"({"model":"m","prompt":"once"})");
}

TEST_CASE("an Azure OpenAI target gets the deployment path, api-version and api-key") {
  Target t;
  t.endpoint.type = TargetType::azure_openai;
  t.endpoint.base_url = "https://acme.openai.azure.com";
  t.endpoint.api_version = "2024-10-21";
  t.endpoint.api_keys.push_back(Secret{"az-key", "inline"});
  auto r = build_upstream_request(t, ApiRoute::chat_completions, "gpt-4o", "{}", false, {});
  CHECK(r.path == "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21");
  CHECK(r.headers.get("api-key") == "az-key");
  CHECK_FALSE(r.headers.has("Authorization"));
  t.endpoint.deployment = "prod-4o";
  r = build_upstream_request(t, ApiRoute::embeddings, "ignored", "{}", false, {});
  CHECK(r.path == "/openai/deployments/prod-4o/embeddings?api-version=2024-10-21");
}

TEST_CASE("a target that fails before the first byte falls back, and the client sees one answer") {
  FakeUpstream good([](const httplib::Request&, httplib::Response& res) {
    res.set_content(k_chat_answer, "application/json");
  });
  FakeUpstream bad([](const httplib::Request&, httplib::Response& res) {
    res.status = 503;
    res.set_content(R"({"error":{"message":"overloaded"}})", "application/json");
  });
  const int dead = dead_port();
  const std::string yaml =
      fill(R"(
custom_models:
  - id: primary
    endpoint: http://127.0.0.1:{dead}/v1
    model: m
    fallback: [custom:flaky]
  - id: flaky
    endpoint: {bad}
    model: m
    fallback: [custom:good]
  - id: good
    endpoint: {good}
    model: m
)",
           {{"dead", std::to_string(dead)}, {"bad", bad.base_url()}, {"good", good.base_url()}});
  TestDaemon d(yaml);
  SUBCASE("non-stream") {
    auto c = d.client();
    const auto r = c.Post("/v1/chat/completions", chat_body("custom:primary"), "application/json");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == k_chat_answer);
    CHECK(header(r, "x-modelmux-target") == "custom:good");
    CHECK(header(r, "x-modelmux-attempts") == "3");
  }
  SUBCASE("stream") {
    FakeUpstream sse([](const httplib::Request&, httplib::Response& res) {
      res.set_content("data: {}\n\ndata: [DONE]\n\n", "text/event-stream");
    });
    TestDaemon d2(
        fill(R"(
custom_models:
  - {id: primary, endpoint: "http://127.0.0.1:{dead}/v1", model: m, fallback: [custom:flaky]}
  - {id: flaky, endpoint: "{bad}", model: m, fallback: [custom:sse]}
  - {id: sse, endpoint: "{sse}", model: m}
)",
             {{"dead", std::to_string(dead)}, {"bad", bad.base_url()}, {"sse", sse.base_url()}}));
    const auto s =
        stream_post(d2.port(), "/v1/chat/completions", chat_body("custom:primary", true));
    CHECK(s.status == 200);
    CHECK(s.body == "data: {}\n\ndata: [DONE]\n\n");
    CHECK(s.headers.find("x-modelmux-attempts")->second == "3");
  }
}

TEST_CASE("when every target fails the client gets a 502 listing each attempt, with no secret") {
  FakeUpstream bad([](const httplib::Request&, httplib::Response& res) {
    res.status = 500;
    res.set_content("boom", "text/plain");
  });
  const int dead = dead_port();
  TestDaemon d(fill(R"(
custom_models:
  - {id: a, endpoint: "http://127.0.0.1:{dead}/v1", model: m, api_key: sk-never-shown, fallback: [custom:b]}
  - {id: b, endpoint: "{bad}", model: m, api_key: sk-never-shown-either}
)",
                    {{"dead", std::to_string(dead)}, {"bad", bad.base_url()}}));
  auto c = d.client();
  SUBCASE("OpenAI shape") {
    const auto r = c.Post("/v1/chat/completions", chat_body("custom:a"), "application/json");
    REQUIRE(r);
    CHECK(r->status == 502);
    CHECK(error_message(r->body) ==
          "no target could answer model \"custom:a\": custom:a connect_error (connection refused "
          "or unreachable); custom:b http_5xx (HTTP 500)");
    CHECK(r->body.find("sk-never") == std::string::npos);
    CHECK(header(r, "x-modelmux-attempts") == "2");
  }
  SUBCASE("streaming clients get a real HTTP error too") {
    const auto s = stream_post(d.port(), "/v1/chat/completions", chat_body("custom:a", true));
    CHECK(s.status == 502);
    CHECK(error_message(s.body).rfind("no target could answer model", 0) == 0);
  }
  for (const auto& line : d.log_lines()) {
    CHECK(line.find("sk-never") == std::string::npos);
  }
}

TEST_CASE("an upstream 4xx is the client's error: returned as is, with no fallback") {
  FakeUpstream bad_request([](const httplib::Request&, httplib::Response& res) {
    res.status = 400;
    res.set_content(R"({"error":{"message":"messages must not be empty"}})", "application/json");
  });
  FakeUpstream never([](const httplib::Request&, httplib::Response& res) {
    res.set_content(k_chat_answer, "application/json");
  });
  TestDaemon d(fill(R"(
custom_models:
  - {id: a, endpoint: "{a}", model: m, fallback: [custom:b]}
  - {id: b, endpoint: "{b}", model: m}
)",
                    {{"a", bad_request.base_url()}, {"b", never.base_url()}}));
  auto c = d.client();
  const auto r = c.Post("/v1/chat/completions", chat_body("custom:a"), "application/json");
  REQUIRE(r);
  CHECK(r->status == 400);
  CHECK(r->body == R"({"error":{"message":"messages must not be empty"}})");
  CHECK(never.request_count() == 0);
  const auto s = stream_post(d.port(), "/v1/chat/completions", chat_body("custom:a", true));
  CHECK(s.status == 400);
  CHECK(never.request_count() == 0);
}

TEST_CASE("a stream that breaks after the first byte ends with an error event, not [DONE]") {
  FakeUpstream up([](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("text/event-stream",
                                     [](size_t offset, httplib::DataSink& sink) {
                                       if (offset == 0) {
                                         const std::string e = "data: {\"n\":1}\n\n";
                                         return sink.write(e.data(), e.size());
                                       }
                                       return false; // the connection is cut mid-answer
                                     });
  });
  TestDaemon d(openai_target(up));
  const auto s = stream_post(d.port(), "/v1/chat/completions", chat_body("local:m", true));
  CHECK(s.status == 200);
  CHECK(s.body.rfind("data: {\"n\":1}\n\n", 0) == 0);
  CHECK(s.body.find("data: {\"error\":") != std::string::npos);
  CHECK(s.body.find("[DONE]") == std::string::npos);
}

TEST_CASE("client keys are required when configured, as Bearer or x-api-key") {
  TestDaemon d("auth:\n  client_keys: [ck-1, ck-2]\ncustom_models:\n  - {id: demo, type: mock}\n");
  auto c = d.client();
  SUBCASE("missing key, OpenAI shape") {
    const auto r = c.Post("/v1/chat/completions", chat_body("demo"), "application/json");
    REQUIRE(r);
    CHECK(r->status == 401);
    CHECK(r->body == R"({"error":{"message":"missing or wrong client key: send it as )"
                     R"(\"Authorization: Bearer KEY\" or \"x-api-key: KEY\"",)"
                     R"("type":"invalid_request_error","param":null,"code":"invalid_api_key"}})");
  }
  SUBCASE("wrong key, Anthropic shape") {
    const auto r = c.Post("/v1/messages", httplib::Headers{{"x-api-key", "ck-3"}},
                          R"({"model":"demo","max_tokens":1,"messages":[]})", "application/json");
    REQUIRE(r);
    CHECK(r->status == 401);
    CHECK(r->body.rfind(R"({"type":"error","error":{"type":"authentication_error",)", 0) == 0);
  }
  SUBCASE("right keys") {
    auto r = c.Post("/v1/chat/completions", httplib::Headers{{"Authorization", "Bearer ck-2"}},
                    chat_body("demo"), "application/json");
    REQUIRE(r);
    CHECK(r->status == 200);
    r = c.Post("/v1/messages", httplib::Headers{{"x-api-key", "ck-1"}},
               R"({"model":"demo","max_tokens":1,"messages":[]})", "application/json");
    REQUIRE(r);
    CHECK(r->status == 200);
  }
  SUBCASE("the model list needs a key too") {
    const auto r = c.Get("/v1/models");
    REQUIRE(r);
    CHECK(r->status == 401);
  }
}

TEST_CASE("a body over max_body_size is refused with 413 in the route's protocol") {
  TestDaemon d("server: {max_body_size: 2KiB}\ncustom_models:\n  - {id: demo, type: mock}\n");
  auto c = d.client();
  const std::string big = R"({"model":"demo","messages":[{"role":"user","content":")" +
                          std::string(4096, 'x') + "\"}]}";
  auto r = c.Post("/v1/chat/completions", big, "application/json");
  REQUIRE(r);
  CHECK(r->status == 413);
  CHECK(error_message(r->body) == "the request body is larger than server.max_body_size");
  auto c2 = d.client();
  r = c2.Post("/v1/messages", big, "application/json");
  REQUIRE(r);
  CHECK(r->status == 413);
  CHECK(r->body.rfind(R"({"type":"error","error":{"type":"request_too_large",)", 0) == 0);
}

TEST_CASE("malformed and wrong-typed requests get a 400 naming the problem") {
  TestDaemon d("custom_models:\n  - {id: demo, type: mock}\n");
  auto c = d.client();
  auto r = c.Post("/v1/chat/completions", R"({"model": "demo", )", "application/json");
  REQUIRE(r);
  CHECK(r->status == 400);
  CHECK(error_message(r->body).rfind("the request body is not valid JSON", 0) == 0);
  r = c.Post("/v1/chat/completions", R"({"model": ["demo"], "messages": []})", "application/json");
  REQUIRE(r);
  CHECK(r->status == 400);
  CHECK(r->body == R"({"error":{"message":"'model' must be a string, got an array",)"
                   R"("type":"invalid_request_error","param":"model","code":null}})");
  r = c.Post("/v1/messages", R"({"model":"demo","max_tokens":"ten","messages":[]})",
             "application/json");
  REQUIRE(r);
  CHECK(r->status == 400);
  CHECK(r->body == R"({"type":"error","error":{"type":"invalid_request_error",)"
                   R"("message":"'max_tokens' must be an integer, got a string"}})");
}

TEST_CASE("an unknown model is a 404 naming close matches, in the route's protocol") {
  TestDaemon d("custom_models:\n  - {id: local-llama, type: mock}\n");
  auto c = d.client();
  auto r = c.Post("/v1/chat/completions", chat_body("custom:local-lama"), "application/json");
  REQUIRE(r);
  CHECK(r->status == 404);
  CHECK(r->body.find(R"("code":"model_not_found")") != std::string::npos);
  CHECK(error_message(r->body).find("did you mean \"custom:local-llama\"") != std::string::npos);
  r = c.Post("/v1/messages", R"({"model":"nope","max_tokens":1,"messages":[]})",
             "application/json");
  REQUIRE(r);
  CHECK(r->status == 404);
  CHECK(r->body.rfind(R"({"type":"error","error":{"type":"not_found_error",)", 0) == 0);
}

TEST_CASE("the mock answers both protocols, streamed and not, and can be told to fail") {
  TestDaemon d("custom_models:\n  - {id: demo, type: mock}\n"
               "  - {id: broken, type: mock, mock: {fail_rate: 1}, fallback: [custom:demo]}\n");
  auto c = d.client();
  auto r = c.Post("/v1/chat/completions", chat_body("demo"), "application/json");
  REQUIRE(r);
  CHECK(r->body.find(R"("message":{"role":"assistant","content":"hello")") != std::string::npos);
  CHECK(r->body.find(R"("usage":{"prompt_tokens":)") != std::string::npos);
  const auto s = stream_post(d.port(), "/v1/messages",
                             R"({"model":"demo","max_tokens":5,"stream":true,)"
                             R"("messages":[{"role":"user","content":"two words"}]})");
  CHECK(s.body.rfind("event: message_start\n", 0) == 0);
  CHECK(s.body.find(R"("delta":{"type":"text_delta","text":"two "})") != std::string::npos);
  CHECK(s.body.find("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n") !=
        std::string::npos);
  r = c.Post("/v1/chat/completions", chat_body("custom:broken"), "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(header(r, "x-modelmux-target") == "custom:demo");
  CHECK(header(r, "x-modelmux-attempts") == "2");
}

TEST_CASE("GET /v1/models lists every addressable name and /health answers") {
  TestDaemon d("providers:\n  openai:\n    type: openai\n    base_url: https://api.openai.com/v1\n"
               "    models: {gpt-4o-mini: {}}\n"
               "custom_models:\n  - {id: demo, type: mock}\naliases: {code: custom:demo}\n");
  auto c = d.client();
  auto r = c.Get("/v1/models");
  REQUIRE(r);
  CHECK(
      r->body ==
      R"({"object":"list","data":[{"id":"custom:demo","object":"model","created":0,"owned_by":"custom"},)"
      R"({"id":"code","object":"model","created":0,"owned_by":"alias"},)"
      R"({"id":"openai:gpt-4o-mini","object":"model","created":0,"owned_by":"openai"},)"
      R"({"id":"auto","object":"model","created":0,"owned_by":"modelmux"}]})");
  r = c.Get("/health");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(
      r->body.rfind(R"({"status":"ok","targets":[{"target":"openai:gpt-4o-mini","state":"healthy")",
                    0) == 0);
  r = c.Get("/nope");
  REQUIRE(r);
  CHECK(r->status == 404);
}

TEST_CASE("64 slow streams held open do not stop a fresh short request from being answered") {
  constexpr int k_streams = 64;
  Counter started;
  Latch release;
  FakeUpstream up([&](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("text/event-stream",
                                     [&, step = 0](size_t, httplib::DataSink& sink) mutable {
                                       if (step++ == 0) {
                                         const std::string e = "data: {}\n\n";
                                         sink.write(e.data(), e.size());
                                         started.add();
                                         return true;
                                       }
                                       release.wait();
                                       const std::string e = "data: [DONE]\n\n";
                                       sink.write(e.data(), e.size());
                                       sink.done();
                                       return true;
                                     });
  });
  TestDaemon d(openai_target(up));
  std::vector<std::thread> clients;
  std::atomic<int> completed{0};
  for (int i = 0; i < k_streams; ++i) {
    clients.emplace_back([&] {
      const auto s = stream_post(d.port(), "/v1/chat/completions", chat_body("local:m", true));
      if (s.status == 200 && s.body == "data: {}\n\ndata: [DONE]\n\n") {
        ++completed;
      }
    });
  }
  const bool all_started = started.wait_for_count(k_streams);
  CHECK(all_started);
  auto c = d.client();
  const auto r = c.Post("/v1/chat/completions", chat_body("demo"), "application/json");
  release.open(); // before any assertion can end the test, so every stream thread finishes
  REQUIRE(r);
  CHECK(r->status == 200);
  for (auto& t : clients) {
    t.join();
  }
  CHECK(completed == k_streams);
}
