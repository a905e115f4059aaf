// Routing by load and by capability over loopback (SPEC §10): a target's max_concurrency held
// at the upstream, its queue served in order, waits that run out moving on as skips, spill-over
// to a second target, slots given back when a client leaves or a hedge is cancelled, and
// capability skips on the chat, messages and responses routes.
#include "fake_upstream.h"
#include "modelmux/probe.h"
#include "modelmux/status.h"

#include <algorithm>
#include <atomic>

using namespace modelmux;
using namespace modelmux::testing;

namespace {

// A fake model server that holds each answer until the test lets one go, and remembers how
// many it held at once and in which order requests arrived (by their message text).
class HeldUpstream {
public:
  HeldUpstream()
      : m_server(
            [this](const httplib::Request& req, httplib::Response& res) { answer(req, res); }) {}
  ~HeldUpstream() {
    let_all_go();
    m_server.stop();
  }

  void let_one_go() {
    std::lock_guard lock(m_mutex);
    ++m_permits;
    m_cv.notify_all();
  }
  void let_all_go() {
    std::lock_guard lock(m_mutex);
    m_permits = 1 << 20;
    m_cv.notify_all();
  }
  // Blocks until n requests are held (or 20 s pass).
  bool wait_held(int n) {
    std::unique_lock lock(m_mutex);
    return m_cv.wait_for(lock, std::chrono::seconds(20), [&] { return m_held >= n; });
  }
  int max_held() {
    std::lock_guard lock(m_mutex);
    return m_max_held;
  }
  std::vector<std::string> order() {
    std::lock_guard lock(m_mutex);
    return m_order;
  }
  std::string base_url() const { return m_server.base_url(); }

private:
  void answer(const httplib::Request& req, httplib::Response& res) {
    std::unique_lock lock(m_mutex);
    const auto at = req.body.find("\"content\":\"");
    m_order.push_back(at == std::string::npos
                          ? std::string()
                          : req.body.substr(at + 11, req.body.find('"', at + 11) - at - 11));
    ++m_held;
    m_max_held = std::max(m_max_held, m_held);
    m_cv.notify_all();
    m_cv.wait(lock, [&] { return m_permits > 0; });
    --m_permits;
    --m_held;
    m_cv.notify_all();
    res.set_content(k_chat_completion, "application/json");
  }

  std::mutex m_mutex;
  std::condition_variable m_cv;
  int m_permits = 0;
  int m_held = 0;
  int m_max_held = 0;
  std::vector<std::string> m_order;
  FakeUpstream m_server;
};

std::string chat_saying(std::string_view model, const std::string& text, bool stream = false) {
  return std::string(R"({"model":")") + std::string(model) + R"(","stream":)" +
         (stream ? "true" : "false") + R"(,"messages":[{"role":"user","content":")" + text +
         R"("}]})";
}

// The slots of a registry entry, as the daemon sees them now.
TargetSlots::View slots_of(TestDaemon& d, std::string_view name) {
  const auto snapshot = d.app().snapshot();
  for (const auto& t : snapshot->registry->targets()) {
    if (t.name == name) {
      return snapshot->slots[t.index]->view();
    }
  }
  FAIL("no target " << name);
  return {};
}

// Waits (yielding, capped at 20 s) until pred holds: for states inside the daemon that no
// reply announces, such as a request having joined a queue.
template <typename Pred> bool eventually(Pred pred) {
  const auto cap = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > cap) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

struct Answer {
  int status = 0;
  std::string target;
  std::string attempts;
  std::string skipped;
};

Answer post(int port, const std::string& path, const std::string& body) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(std::chrono::seconds(20));
  const auto r = c.Post(path, body, "application/json");
  if (!r) {
    return {};
  }
  return {r->status, r->get_header_value("x-modelmux-target"),
          r->get_header_value("x-modelmux-attempts"), r->get_header_value("x-modelmux-skipped")};
}

std::string metric_line(TestDaemon& d, const std::string& prefix) {
  const std::string text = d.app().metrics_text();
  const auto at = text.find("\n" + prefix);
  return at == std::string::npos ? std::string()
                                 : text.substr(at + 1, text.find('\n', at + 1) - at - 1);
}

} // namespace

TEST_CASE("a target's max_concurrency holds at the upstream and its queue is served in order") {
  HeldUpstream local;
  TestDaemon d(fill(R"(
custom_models:
  - {id: local, endpoint: "{url}", model: m, probe: none, max_concurrency: 2, queue_timeout: 20s}
)",
                    {{"url", local.base_url()}}));
  std::vector<std::thread> clients;
  std::vector<Answer> answers(6);
  for (int i = 0; i < 6; ++i) {
    clients.emplace_back([&, i] {
      answers[i] =
          post(d.port(), "/v1/chat/completions", chat_saying("custom:local", std::to_string(i)));
    });
    // Each request arrives after the one before is held upstream or queued.
    if (i < 2) {
      REQUIRE(local.wait_held(i + 1));
    } else {
      REQUIRE(eventually([&] { return slots_of(d, "custom:local").queued == i - 1; }));
    }
  }
  CHECK(metric_line(d, "modelmux_queue_depth{") ==
        R"(modelmux_queue_depth{target="custom:local"} 4)");
  // One answer at a time: each frees a slot, which goes to the oldest waiter, which reaches the
  // upstream before the next answer frees another.
  for (int i = 0; i < 6; ++i) {
    local.let_one_go();
    if (i < 4) {
      REQUIRE(eventually([&] { return local.order().size() == static_cast<size_t>(i + 3); }));
    }
  }
  for (auto& t : clients) {
    t.join();
  }
  for (const auto& a : answers) {
    CHECK(a.status == 200);
    CHECK(a.target == "custom:local");
    CHECK(a.skipped.empty());
  }
  CHECK(local.max_held() == 2);
  CHECK(local.order() == std::vector<std::string>{"0", "1", "2", "3", "4", "5"});
  CHECK(slots_of(d, "custom:local").in_use == 0);
  CHECK(d.app().metrics_text().find(
            R"(modelmux_queue_wait_seconds_count{target="custom:local"} 4)") != std::string::npos);
}

TEST_CASE("a request that gets no slot within queue_timeout moves on as a skip, not a failure") {
  HeldUpstream local;
  FakeUpstream cloud(good_handler());
  TestDaemon d(fill(R"(
custom_models:
  - {id: local, endpoint: "{local}", model: m, probe: none, max_concurrency: 1,
     queue_timeout: 50ms, fallback: [custom:cloud]}
  - {id: cloud, endpoint: "{cloud}", model: m, probe: none}
)",
                    {{"local", local.base_url()}, {"cloud", cloud.base_url()}}));
  std::thread holder(
      [&] { post(d.port(), "/v1/chat/completions", chat_saying("custom:local", "a")); });
  REQUIRE(local.wait_held(1));
  const auto a = post(d.port(), "/v1/chat/completions", chat_saying("custom:local", "b"));
  CHECK(a.status == 200);
  CHECK(a.target == "custom:cloud");
  CHECK(a.attempts == "1"); // the busy target was not tried
  CHECK(a.skipped == "custom:local (busy: no slot within queue_timeout)");
  local.let_one_go();
  holder.join();
  // The wait counted against nothing: the local target served its one request and is healthy.
  const std::string metrics = d.app().metrics_text();
  CHECK(metrics.find(R"(modelmux_upstream_attempts_total{target="custom:local",outcome="ok"} 1)") !=
        std::string::npos);
  CHECK(metrics.find(R"(modelmux_target_state{target="custom:local"} 0)") != std::string::npos);
  CHECK(metrics.find(R"(modelmux_spills_total{from="custom:local",to="custom:cloud"} 1)") !=
        std::string::npos);
  // The status page and `modelmux status` read the slots and spills from /api/status.
  const std::string status = d.app().status_json(R"({"status":"ok","targets":[]})");
  CHECK(status.find(R"("spills":1,"slots":{"max":1,"in_use":0,"queued":0})") != std::string::npos);
  const auto text = status_text(status);
  REQUIRE(text);
  CHECK(text.value().find("0/1 q0") != std::string::npos);
}

TEST_CASE("with spill_after, the overflow goes to the next target while the first stays at its "
          "limit") {
  HeldUpstream local;
  FakeUpstream cloud(good_handler());
  TestDaemon d(fill(R"(
custom_models:
  - {id: local, endpoint: "{local}", model: m, probe: none, max_concurrency: 2,
     fallback: [custom:cloud]}
  - {id: cloud, endpoint: "{cloud}", model: m, probe: none}
routing:
  spill_after: 100ms
)",
                    {{"local", local.base_url()}, {"cloud", cloud.base_url()}}));
  // One slow answer (the fake holds it 150 ms) teaches modelmux the local service time.
  std::thread slow_answer([&] {
    REQUIRE(local.wait_held(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    local.let_one_go();
  });
  REQUIRE(post(d.port(), "/v1/chat/completions", chat_saying("custom:local", "warm")).target ==
          "custom:local");
  slow_answer.join();
  std::vector<std::thread> holders;
  for (int i = 0; i < 2; ++i) {
    holders.emplace_back(
        [&] { post(d.port(), "/v1/chat/completions", chat_saying("custom:local", "h")); });
  }
  REQUIRE(local.wait_held(2));
  // The expected wait for a slot is a whole answer, 150 ms: past spill_after, so every request
  // over the limit goes to the cloud at once, and none waits.
  std::vector<std::thread> overflow;
  std::atomic<int> to_cloud{0};
  for (int i = 0; i < 8; ++i) {
    overflow.emplace_back([&] {
      const auto a = post(d.port(), "/v1/chat/completions", chat_saying("custom:local", "o"));
      if (a.status == 200 && a.target == "custom:cloud" &&
          a.skipped == "custom:local (busy: expected wait over spill_after)") {
        ++to_cloud;
      }
    });
  }
  for (auto& t : overflow) {
    t.join();
  }
  CHECK(to_cloud == 8);
  CHECK(local.max_held() == 2);
  CHECK(slots_of(d, "custom:local").queued == 0);
  local.let_all_go();
  for (auto& t : holders) {
    t.join();
  }
  CHECK(d.app().metrics_text().find(
            R"(modelmux_spills_total{from="custom:local",to="custom:cloud"} 8)") !=
        std::string::npos);
}

TEST_CASE("a busy target with no other to move on to answers 503 with retry-after") {
  HeldUpstream local;
  TestDaemon d(fill(R"(
custom_models:
  - {id: local, endpoint: "{local}", model: m, probe: none, max_concurrency: 1, max_queue: 0}
)",
                    {{"local", local.base_url()}}));
  std::thread holder(
      [&] { post(d.port(), "/v1/chat/completions", chat_saying("custom:local", "a")); });
  REQUIRE(local.wait_held(1));
  auto c = d.client();
  const auto r = c.Post(
      "/v1/messages",
      R"({"model":"custom:local","max_tokens":8,"messages":[{"role":"user","content":"b"}]})",
      "application/json");
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(r->get_header_value("retry-after") == "1");
  CHECK(r->body.find(R"("type":"error")") != std::string::npos); // Anthropic's error shape
  CHECK(error_message(r->body).find("custom:local (busy: queue full)") != std::string::npos);
  local.let_one_go();
  holder.join();
}

TEST_CASE("a stream's slot is given back when its client goes away") {
  Latch first_sent;
  Latch go_on;
  FakeUpstream local([&](const httplib::Request& req, httplib::Response& res) {
    if (req.body.find("\"stream\":true") == std::string::npos) {
      res.set_content(k_chat_completion, "application/json");
      return;
    }
    res.set_chunked_content_provider("text/event-stream", [&](size_t, httplib::DataSink& s) {
      const std::string e = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n";
      s.write(e.data(), e.size());
      first_sent.open();
      go_on.wait();
      for (int i = 0; i < 2000; ++i) {
        if (!s.write(e.data(), e.size())) {
          return false;
        }
      }
      return false;
    });
  });
  TestDaemon d(fill(R"(
custom_models:
  - {id: local, endpoint: "{local}", model: m, probe: none, max_concurrency: 1, queue_timeout: 20s}
)",
                    {{"local", local.base_url()}}));
  httplib::Client c("127.0.0.1", d.port());
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.body = chat_saying("custom:local", "s", true);
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [](const char*, size_t, uint64_t, uint64_t) { return false; }; // leaves
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  c.send(req, res, err);
  REQUIRE(first_sent.wait());
  CHECK(slots_of(d, "custom:local").in_use == 1);
  go_on.open(); // the next bytes find the client gone
  CHECK(eventually([&] { return slots_of(d, "custom:local").in_use == 0; }));
  CHECK(post(d.port(), "/v1/chat/completions", chat_saying("custom:local", "next")).status == 200);
}

TEST_CASE("a hedge that loses gives its slot back at once") {
  Latch release;
  FakeUpstream slow([&](const httplib::Request&, httplib::Response& res) {
    release.wait();
    res.set_content(k_chat_completion, "application/json");
  });
  FakeUpstream fast(good_handler());
  {
    TestDaemon d(fill(R"(
custom_models:
  - {id: slow, endpoint: "{slow}", model: m, probe: none, max_concurrency: 1, fallback: [custom:fast]}
  - {id: fast, endpoint: "{fast}", model: m, probe: none, max_concurrency: 1}
routing:
  hedge_after: 50ms
)",
                      {{"slow", slow.base_url()}, {"fast", fast.base_url()}}));
    const auto a = post(d.port(), "/v1/chat/completions", chat_saying("custom:slow", "h"));
    CHECK(a.status == 200);
    CHECK(a.target == "custom:fast");
    // The slow target still has not answered, but its cancelled attempt holds no slot.
    CHECK(slots_of(d, "custom:slow").in_use == 0);
    CHECK(slots_of(d, "custom:fast").in_use == 0);
  }
  release.open();
}

TEST_CASE("a request needing a capability skips targets without it on chat, messages and "
          "responses") {
  FakeUpstream small(good_handler());
  FakeUpstream big([](const httplib::Request& req, httplib::Response& res) {
    const bool anthropic = req.path.find("/messages") != std::string::npos;
    res.set_content(anthropic
                        ? R"({"id":"m","type":"message","role":"assistant","model":"m",)"
                          R"("content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn",)"
                          R"("usage":{"input_tokens":1,"output_tokens":1}})"
                        : k_chat_completion,
                    "application/json");
  });
  TestDaemon d(fill(R"(
custom_models:
  - {id: small, endpoint: "{small}", model: s, probe: none, capabilities: [tools],
     fallback: [custom:big]}
  - {id: big, endpoint: "{big}", model: b, probe: none}
  - {id: text-only, endpoint: "{small}", model: s, probe: none, capabilities: []}
)",
                    {{"small", small.base_url()}, {"big", big.base_url()}}));
  const std::string image_chat =
      R"({"model":"custom:small","messages":[{"role":"user","content":[)"
      R"({"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]})";
  const std::string image_messages =
      R"({"model":"custom:small","max_tokens":8,"messages":[{"role":"user","content":[)"
      R"({"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]}]})";
  const std::string image_responses =
      R"({"model":"custom:small","input":[{"role":"user","content":[)"
      R"({"type":"input_image","image_url":"data:image/png;base64,AAAA"}]}]})";
  for (const auto& [path, body] :
       std::vector<std::pair<std::string, std::string>>{{"/v1/chat/completions", image_chat},
                                                        {"/v1/messages", image_messages},
                                                        {"/v1/responses", image_responses}}) {
    CAPTURE(path);
    const auto a = post(d.port(), path, body);
    CHECK(a.status == 200);
    CHECK(a.target == "custom:big");
    CHECK(a.attempts == "1");
    CHECK(a.skipped == "custom:small (lacks vision)");

    std::string to_text_only = body;
    to_text_only.replace(to_text_only.find("custom:small"), 12, "custom:text-only");
    auto c = d.client();
    const auto r = c.Post(path, to_text_only, "application/json");
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(error_message(r->body).find("needs vision") != std::string::npos);
  }
  CHECK(small.request_count() == 0);
  // Tools are something small has: it serves those.
  const auto tools = post(d.port(), "/v1/chat/completions",
                          R"({"model":"custom:small","messages":[{"role":"user","content":"x"}],)"
                          R"("tools":[{"type":"function","function":{"name":"f"}}]})");
  CHECK(tools.target == "custom:small");
}

TEST_CASE("an Ollama probe learns what its model can do, and requests it cannot take skip it") {
  FakeUpstream ollama([](const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/api/tags") {
      res.set_content(R"({"models":[{"name":"llama3.1"}]})", "application/json");
    } else if (req.path == "/api/show") {
      CHECK(req.body == R"({"model":"llama3.1"})");
      res.set_content(R"({"capabilities":["completion","tools"],)"
                      R"("model_info":{"llama.context_length":8192}})",
                      "application/json");
    } else {
      res.set_content(k_chat_completion, "application/json");
    }
  });
  FakeUpstream cloud(good_handler());
  TestDaemon d(fill(R"(
custom_models:
  - {id: local, endpoint: "{ollama}", model: llama3.1, probe: ollama, fallback: [custom:cloud]}
  - {id: cloud, endpoint: "{cloud}", model: m, probe: none}
health:
  active: {interval: 1h}
)",
                    {{"ollama", ollama.base_url()}, {"cloud", cloud.base_url()}}));
  const std::string image =
      R"({"model":"custom:local","messages":[{"role":"user","content":[)"
      R"({"type":"image_url","image_url":{"url":"data:image/png;base64,AA"}}]}]})";
  // Before the probe nothing is known, and the config says nothing: everything is allowed.
  CHECK(post(d.port(), "/v1/chat/completions", image).target == "custom:local");
  Prober prober(d.app());
  prober.probe_all();
  CHECK(d.app().snapshot()->health[0]->learned_context_window("llama3.1") == 8192);
  const auto a = post(d.port(), "/v1/chat/completions", image);
  CHECK(a.target == "custom:cloud");
  CHECK(a.skipped == "custom:local (lacks vision)");
  CHECK(post(d.port(), "/v1/chat/completions", chat_saying("custom:local", "text")).target ==
        "custom:local");
}
