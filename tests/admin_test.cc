// The admin API over loopback: auth, validation like the config, a runtime model serving with
// its key, persistence across a restart with the key sealed on disk, and removal.
#include "fake_upstream.h"
#include "modelmux/secret_box.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

using namespace modelmux;
using namespace modelmux::testing;

namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

httplib::Headers admin(const std::string& key = "admin-secret") {
  return {{"Authorization", "Bearer " + key}};
}

} // namespace

TEST_CASE("admin writes need the admin key, and are refused outright without one configured") {
  TestDaemon open_daemon("custom_models:\n  - {id: demo, type: mock}\n");
  auto r = open_daemon.client().Post("/api/models/custom", admin(), R"({"id":"x","type":"mock"})",
                                     "application/json");
  REQUIRE(r);
  CHECK(r->status == 403);
  TestDaemon d("auth: {admin_key: admin-secret}\ncustom_models:\n  - {id: demo, type: mock}\n");
  auto c = d.client();
  r = c.Post("/api/models/custom", R"({"id":"x","type":"mock"})", "application/json");
  REQUIRE(r);
  CHECK(r->status == 401);
  r = c.Post("/api/models/custom", admin("admin-secreT"), R"({"id":"x","type":"mock"})",
             "application/json");
  REQUIRE(r);
  CHECK(r->status == 401);
  r = c.Delete("/api/models/custom/x", admin("nope"));
  REQUIRE(r);
  CHECK(r->status == 401);
}

TEST_CASE("a runtime model is validated like the config, serves with its key, and survives a "
          "restart with the key sealed on disk") {
  FakeUpstream upstream([](const httplib::Request&, httplib::Response& res) {
    res.set_content(k_chat_completion, "application/json");
  });
  const auto state =
      std::filesystem::temp_directory_path() / ("modelmux-admin-" + std::to_string(::getpid()));
  std::filesystem::remove_all(state);
  const std::string yaml = "auth: {admin_key: admin-secret}\n"
                           "custom_models:\n  - {id: demo, type: mock}\n";
  const std::string entry = fill(R"({"id": "runtime", "endpoint": "{url}", "model": "llama3",
      "api_key": "sk-runtime-secret-123", "display_name": "Registered at runtime"})",
                                 {{"url", upstream.base_url()}});
  {
    TestDaemon d(yaml);
    REQUIRE(d.app().open_runtime_models(state.string()));
    auto c = d.client();
    // Refused like a bad config entry, naming the field.
    auto r = c.Post("/api/models/custom", admin(), R"({"id": "bad", "type": "openia"})",
                    "application/json");
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK_MESSAGE(error_message(r->body).rfind("type: ", 0) == 0, r->body);
    r = c.Post("/api/models/custom", admin(),
               R"({"id": "sneaky", "endpoint": "${env:HOME}", "model": "m"})", "application/json");
    REQUIRE(r);
    CHECK(r->status == 400);
    r = c.Post("/api/models/custom", admin(), R"({"id": "demo", "type": "mock"})",
               "application/json");
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(error_message(r->body) == "custom:demo is defined in the config file; choose another id");

    r = c.Post("/api/models/custom", admin(), entry, "application/json");
    REQUIRE(r);
    CHECK(r->status == 201);
    CHECK(r->body == R"({"id":"custom:runtime","model_id":"custom:runtime","registered":true})");
    r = c.Post("/v1/chat/completions", chat_body("custom:runtime"), "application/json");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(upstream.seen().back().headers.find("Authorization")->second ==
          "Bearer sk-runtime-secret-123");
    const auto listed = c.Get("/api/models/custom");
    REQUIRE(listed);
    CHECK(listed->body.find(R"("id":"custom:runtime","source":"api")") != std::string::npos);
    CHECK(listed->body.find(R"("has_api_key":true)") != std::string::npos);
    CHECK(listed->body.find("sk-runtime") == std::string::npos);
    for (const auto& line : d.log_lines()) {
      CHECK_MESSAGE(line.find("sk-runtime") == std::string::npos, line);
    }
  }
  // On disk: the model in models.yaml, its key only sealed; secret.key readable by us alone.
  const auto models = slurp(state / "models.yaml");
  CHECK(models.find("runtime") != std::string::npos);
  CHECK(models.find("api_key_sealed: v1:") != std::string::npos);
  for (const auto& entry_file : std::filesystem::directory_iterator(state)) {
    CHECK_MESSAGE(slurp(entry_file.path()).find("sk-runtime-secret") == std::string::npos,
                  entry_file.path());
  }
  struct stat key_stat {};
  REQUIRE(::stat((state / "secret.key").c_str(), &key_stat) == 0);
  CHECK((key_stat.st_mode & 0777) == 0600);
  CHECK(key_stat.st_size == 32);

  {
    TestDaemon restarted(yaml);
    REQUIRE(restarted.app().open_runtime_models(state.string()));
    auto c = restarted.client();
    auto r = c.Post("/v1/chat/completions", chat_body("custom:runtime"), "application/json");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(upstream.seen().back().headers.find("Authorization")->second ==
          "Bearer sk-runtime-secret-123");
    r = c.Delete("/api/models/custom/custom:runtime", admin());
    REQUIRE(r);
    CHECK(r->status == 200);
    r = c.Post("/v1/chat/completions", chat_body("custom:runtime"), "application/json");
    REQUIRE(r);
    CHECK(r->status == 404);
    r = c.Delete("/api/models/custom/runtime", admin());
    REQUIRE(r);
    CHECK(r->status == 404);
  }
  CHECK(slurp(state / "models.yaml").find("runtime") == std::string::npos);
  std::filesystem::remove_all(state);
}

TEST_CASE("a sealed value opens only with its key and unchanged") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("modelmux-seal-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const auto key = load_or_create_secret_key((dir / "secret.key").string());
  REQUIRE(key);
  const auto again = load_or_create_secret_key((dir / "secret.key").string());
  REQUIRE(again);
  CHECK(key.value() == again.value());
  const auto a = seal(key.value(), "sk-123");
  const auto b = seal(key.value(), "sk-123");
  CHECK(a != b); // a fresh nonce each time
  CHECK(a.find("sk-123") == std::string::npos);
  CHECK(open_sealed(key.value(), a) == "sk-123");
  std::string tampered = a;
  tampered[10] = tampered[10] == 'A' ? 'B' : 'A';
  CHECK_FALSE(open_sealed(key.value(), tampered));
  SecretKey other{};
  CHECK_FALSE(open_sealed(other, a));
  std::filesystem::remove_all(dir);
}

TEST_CASE("reloads and admin registrations racing each other are all applied") {
  const auto state =
      std::filesystem::temp_directory_path() / ("modelmux-race-" + std::to_string(::getpid()));
  std::filesystem::remove_all(state);
  std::filesystem::create_directories(state);
  const auto yaml = [&](int generation) {
    return "state_dir: " + state.string() +
           "\nauth: {admin_key: admin-secret}\ncustom_models:\n  - {id: demo, type: mock}\n"
           "aliases:\n  generation-" +
           std::to_string(generation) + ": custom:demo\n";
  };
  TestDaemon d(yaml(0));
  REQUIRE(d.app().open_runtime_models(state.string()));
  constexpr int k_rounds = 200;
  // Each side checks, once its change returned, that the change is served: a publish that
  // overwrote it with a snapshot computed before it would show here. Configs are loaded
  // before the race, as SIGHUP loads the file before it publishes.
  std::vector<std::shared_ptr<const Snapshot>> configs;
  for (int i = 1; i <= k_rounds; ++i) {
    configs.push_back(load_test_snapshot(yaml(i)));
  }
  // The generation of the config a snapshot serves.
  const auto generation_of = [](const Snapshot& snapshot) {
    for (const auto& alias : snapshot.registry->aliases()) {
      if (alias.name.rfind("generation-", 0) == 0) {
        return std::stoi(alias.name.substr(11));
      }
    }
    return -1;
  };
  std::mutex m;
  std::vector<std::string> lost;
  std::atomic<int> reloaded{0};
  std::thread reloader([&] {
    for (int i = 1; i <= k_rounds; ++i) {
      d.app().reload(configs[static_cast<size_t>(i - 1)]);
      reloaded = i;
      if (generation_of(*d.app().snapshot()) < i) {
        std::lock_guard lock(m);
        lost.push_back("reload " + std::to_string(i) + " was undone");
      }
    }
  });
  std::thread registrar([&] {
    for (int i = 0; i < k_rounds; ++i) {
      const std::string id = "runtime-" + std::to_string(i);
      const auto registered = d.app().register_model(R"({"id":")" + id + R"(","type":"mock"})");
      const int done = reloaded.load();
      const auto now = d.app().snapshot();
      std::lock_guard lock(m);
      if (!registered) {
        lost.push_back(id + ": " + registered.error().message);
      } else if (now->registry->custom(id) == nullptr) {
        lost.push_back("registration " + id + " was undone");
      } else if (generation_of(*now) < done) {
        lost.push_back("registration " + id + " undid reload " + std::to_string(done));
      }
    }
  });
  reloader.join();
  registrar.join();
  CHECK_MESSAGE(lost.empty(), (lost.empty() ? "" : lost.front())
                                  << " and " << lost.size() - 1 << " more");
  const auto snapshot = d.app().snapshot();
  for (int i = 0; i < k_rounds; ++i) {
    CAPTURE(i);
    CHECK(snapshot->registry->custom("runtime-" + std::to_string(i)) != nullptr);
  }
  CHECK(snapshot->registry->alias("generation-" + std::to_string(k_rounds)) != nullptr);
  std::filesystem::remove_all(state);
}

TEST_CASE("the registration shape of the routers modelmux replaces is accepted and answers "
          "custom:<model_id>") {
  FakeUpstream upstream([](const httplib::Request& req, httplib::Response& res) {
    CHECK(req.get_header_value("Authorization") == "Bearer sk-router-shape-1");
    CHECK(req.body.find(R"("model":"meta-llama/Llama-3.1-8B")") != std::string::npos);
    res.set_content(k_chat_completion, "application/json");
  });
  TestDaemon d("auth: {admin_key: admin-secret}\ncustom_models:\n  - {id: demo, type: mock}\n");
  auto c = d.client();
  const std::string body =
      fill(R"({"model_name": "Llama 3.1 8B", "model_id": "meta-llama/Llama-3.1-8B",
      "endpoint_url": "{url}/chat/completions", "provider": "openai-compatible",
      "api_key": "sk-router-shape-1"})",
           {{"url", upstream.base_url()}});
  auto r = c.Post("/api/models/custom", admin(), body, "application/json");
  REQUIRE(r);
  CHECK(r->status == 201);
  CHECK(r->body.find(R"("model_id":"custom:meta-llama/Llama-3.1-8B")") != std::string::npos);
  const auto listed = c.Get("/api/models/custom");
  REQUIRE(listed);
  CHECK(listed->body.find("Llama 3.1 8B") != std::string::npos);
  CHECK(listed->body.find("sk-router-shape-1") == std::string::npos);
  r = c.Post(
      "/v1/chat/completions",
      R"({"model":"custom:meta-llama/Llama-3.1-8B","messages":[{"role":"user","content":"hi"}]})",
      "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
  // A provider that contradicts the path, and an unknown field, are 400s naming them.
  r = c.Post("/api/models/custom", admin(),
             R"({"model_id": "x", "endpoint_url": "http://127.0.0.1:1/v1/messages",
                 "provider": "openai-compatible"})",
             "application/json");
  REQUIRE(r);
  CHECK(r->status == 400);
  CHECK(r->body.find("endpoint_url is an Anthropic /messages URL") != std::string::npos);
  r = c.Post("/api/models/custom", admin(),
             R"({"model_id": "x", "endpoint_url": "http://127.0.0.1:1/v1", "temperature": 1})",
             "application/json");
  REQUIRE(r);
  CHECK(r->status == 400);
  CHECK(r->body.find("temperature: unknown key") != std::string::npos);
}
