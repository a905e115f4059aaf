// Active probes and the thread that runs them.
#include "modelmux/probe.h"

#include "modelmux/blocking_client.h"
#include "modelmux/json.h"

#include <simdjson.h>

namespace modelmux {

namespace {

using Clock = std::chrono::steady_clock;

// Whether a probe answer is what the endpoint promises: a JSON object for the model lists.
bool well_formed(ProbeKind kind, const std::string& body) {
  if (kind != ProbeKind::models && kind != ProbeKind::ollama) {
    return true; // /health answers vary: empty, "OK", or JSON
  }
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  return !parser.parse(body).get(root) && root.is_object();
}

ProbeResult judge(const UpstreamReply& reply, ProbeKind kind, Clock::time_point started) {
  ProbeResult r;
  r.latency = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  if (reply.status == 401 || reply.status == 403) {
    r.detail = "key rejected (HTTP " + std::to_string(reply.status) + ")";
  } else if (reply.outcome != Outcome::ok) {
    r.detail = reply.detail;
  } else if (!well_formed(kind, reply.body)) {
    r.detail = "HTTP " + std::to_string(reply.status) + " but the answer is not well-formed";
  } else {
    r.passed = true;
    r.detail = "HTTP " + std::to_string(reply.status);
  }
  return r;
}

} // namespace

std::optional<UpstreamRequest> probe_request(const Target& target) {
  const auto& ep = target.endpoint;
  if (ep.type == TargetType::mock || ep.probe == ProbeKind::none) {
    return std::nullopt;
  }
  // Credentials as a real request would carry them, then the probe's own method and path.
  auto r = build_upstream_request(target, ApiRoute::chat_completions, target.upstream_model, {},
                                  false, ClientHeaders{});
  r.method = "GET";
  switch (ep.probe) {
  case ProbeKind::models:
    if (ep.type == TargetType::azure_openai) {
      r.path =
          parse_base_url(ep.base_url).path_prefix + "/openai/models?api-version=" + ep.api_version;
    } else {
      r.path = parse_base_url(ep.base_url).path_prefix + "/models";
    }
    break;
  case ProbeKind::ollama:
    r.path = "/api/tags"; // at the server's root, not under /v1
    break;
  case ProbeKind::vllm:
  case ProbeKind::llamacpp:
    r.path = "/health";
    break;
  case ProbeKind::none:
    return std::nullopt;
  }
  return r;
}

namespace {

// vLLM lists max_model_len with each model in GET /v1/models.
void read_model_windows(const std::string& body, ProbeResult& r) {
  simdjson::dom::parser parser;
  simdjson::dom::array models;
  if (parser.parse(body)["data"].get(models)) {
    return;
  }
  for (const auto m : models) {
    std::string_view id;
    int64_t window = 0;
    if (!m["id"].get(id) && !m["max_model_len"].get(window) && window > 0) {
      r.context_windows.emplace_back(std::string(id), window);
    }
  }
}

// llama.cpp reports the context it was started with in GET /props.
void read_llamacpp_window(const std::string& body, ProbeResult& r) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  int64_t window = 0;
  if (!parser.parse(body).get(root) &&
      (!root["default_generation_settings"]["n_ctx"].get(window) || !root["n_ctx"].get(window)) &&
      window > 0) {
    r.context_windows.emplace_back("", window);
  }
}

// Ollama's POST /api/show says what a model can do ("capabilities": ["completion", "tools",
// "vision", "thinking"], since Ollama 0.6.4) and its context length (model_info's
// "<family>.context_length"). Every Ollama model takes a JSON schema (its "format").
} // namespace

void read_ollama_show(const std::string& body, ProbeResult& r) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(body).get(root)) {
    return;
  }
  if (simdjson::dom::array listed; !root["capabilities"].get(listed)) {
    Capabilities caps;
    caps.add(Capability::json_schema);
    for (const auto c : listed) {
      std::string_view name;
      if (c.get(name)) {
        continue;
      }
      if (name == "tools") {
        caps.add(Capability::tools);
      } else if (name == "vision") {
        caps.add(Capability::vision);
      } else if (name == "thinking") {
        caps.add(Capability::reasoning);
      }
    }
    r.capabilities = caps;
  }
  if (simdjson::dom::object info; !root["model_info"].get(info)) {
    for (const auto field : info) {
      int64_t window = 0;
      if (field.key.ends_with(".context_length") && !field.value.get(window) && window > 0) {
        r.context_windows.emplace_back("", window);
      }
    }
  }
}

namespace {

// After a passing probe, asks the server what it knows about itself, where it can say.
void learn_about_server(const Target& target, ClientPool& pool, std::chrono::milliseconds timeout,
                        ProbeResult& r) {
  const auto kind = target.endpoint.probe;
  if (kind == ProbeKind::ollama && target.is_custom) {
    auto request = probe_request(target);
    request->method = "POST";
    request->path = "/api/show";
    request->body = R"({"model":)";
    append_json_string(request->body, target.upstream_model);
    request->body += "}";
    request->headers.set("Content-Type", "application/json");
    const auto reply = send_buffered(pool, std::move(*request), timeout);
    if (reply.outcome == Outcome::ok) {
      read_ollama_show(reply.body, r);
    }
    return;
  }
  if (kind != ProbeKind::vllm && kind != ProbeKind::llamacpp) {
    return;
  }
  auto request = probe_request(target);
  request->path = kind == ProbeKind::vllm
                      ? parse_base_url(target.endpoint.base_url).path_prefix + "/models"
                      : "/props";
  const auto reply = send_buffered(pool, std::move(*request), timeout);
  if (reply.outcome == Outcome::ok) {
    if (kind == ProbeKind::vllm) {
      read_model_windows(reply.body, r);
    } else {
      read_llamacpp_window(reply.body, r);
    }
  }
}

} // namespace

ProbeResult probe_target(const Target& target, ClientPool& pool,
                         std::chrono::milliseconds timeout) {
  auto request = probe_request(target);
  if (!request) {
    ProbeResult r;
    r.passed = true;
    r.skipped = true;
    r.detail = target.endpoint.type == TargetType::mock ? "mock target" : "probe: none";
    return r;
  }
  const auto started = Clock::now();
  const auto reply = send_buffered(pool, std::move(*request), timeout);
  auto r = judge(reply, target.endpoint.probe, started);
  if (r.passed) {
    if (target.endpoint.probe == ProbeKind::models) {
      read_model_windows(reply.body, r);
    }
    learn_about_server(target, pool, timeout, r);
  }
  return r;
}

ProbeResult deep_probe_target(const Target& target, ClientPool& pool,
                              std::string_view upstream_model, std::chrono::milliseconds timeout) {
  if (target.endpoint.type == TargetType::mock) {
    ProbeResult r;
    r.passed = true;
    r.skipped = true;
    r.detail = "mock target";
    return r;
  }
  std::string body = R"({"model":)";
  append_json_string(body, upstream_model);
  body += R"(,"max_tokens":1,"messages":[{"role":"user","content":"ping"}]})";
  const bool anthropic = target.protocol() == Protocol::anthropic;
  auto request =
      build_upstream_request(target, anthropic ? ApiRoute::messages : ApiRoute::chat_completions,
                             upstream_model, std::move(body), false, ClientHeaders{});
  const auto started = Clock::now();
  auto r = judge(send_buffered(pool, std::move(request), timeout), ProbeKind::models, started);
  if (r.passed) {
    r.detail += ", one token from " + std::string(upstream_model);
  }
  return r;
}

Prober::Prober(App& app) : m_app(app), m_thread([this] { run(); }) {}

Prober::~Prober() {
  {
    std::lock_guard lock(m_mutex);
    m_stopping = true;
  }
  m_wake.notify_all();
  m_thread.join();
}

void Prober::probe_all() {
  const auto snapshot = m_app.snapshot();
  const auto timeout = snapshot->config->health.active_timeout;
  for (const auto& t : snapshot->registry->targets()) {
    {
      std::lock_guard lock(m_mutex);
      if (m_stopping) {
        return;
      }
    }
    const auto r = probe_target(t, *snapshot->pools[t.index], timeout);
    if (!r.skipped) {
      const bool changed =
          snapshot->health[t.index]->record_probe(r.passed, r.detail, Clock::now());
      if (!r.context_windows.empty()) {
        snapshot->health[t.index]->learn_context_windows(r.context_windows);
      }
      if (r.capabilities) {
        snapshot->health[t.index]->learn_capabilities(*r.capabilities);
      }
      if (changed) {
        if (r.passed) {
          m_app.log().info("target_healthy", {{"target", t.name}, {"detail", r.detail}});
        } else {
          m_app.log().warn("target_unhealthy", {{"target", t.name}, {"detail", r.detail}});
        }
      }
    }
  }
}

void Prober::run() {
  std::unique_lock lock(m_mutex);
  while (!m_stopping) {
    const auto interval = m_app.snapshot()->config->health.active_interval;
    lock.unlock();
    probe_all();
    lock.lock();
    m_wake.wait_for(lock, interval, [this] { return m_stopping; });
  }
}

} // namespace modelmux
