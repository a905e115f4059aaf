// Active health probes: one request per target that costs no billable tokens (GET {base}/models,
// Ollama's /api/tags, vLLM's and llama.cpp's /health), run on a timer by the Prober and once per
// target by `modelmux health`. A deep check (`modelmux health --deep`) also asks the model for
// one token, to prove the key and the model name are accepted.
#pragma once

#include "modelmux/app.h"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace modelmux {

struct ProbeResult {
  bool passed = false;
  bool skipped = false; // probe: none, or a mock target
  std::string detail;   // "HTTP 200", "connection refused", "key rejected (HTTP 401)"
  std::chrono::milliseconds latency{0};
  // What the server said about its context windows: model -> tokens ("" for whatever it serves).
  std::vector<std::pair<std::string, int64_t>> context_windows;
  // What the server said its model can do (Ollama's /api/show "capabilities").
  std::optional<Capabilities> capabilities;
};

// Ollama's POST /api/show answer: its "capabilities" (tools, vision, thinking as reasoning; every
// Ollama model takes a JSON schema) and model_info's context length, into r. Ignores what it
// cannot read.
void read_ollama_show(const std::string& body, ProbeResult& r);

// The probe request for target, or nullopt when it is not probed.
std::optional<UpstreamRequest> probe_request(const Target& target);

ProbeResult probe_target(const Target& target, ClientPool& pool, std::chrono::milliseconds timeout);

// A one-token request for upstream_model in the target's protocol.
ProbeResult deep_probe_target(const Target& target, ClientPool& pool,
                              std::string_view upstream_model, std::chrono::milliseconds timeout);

// Probes every target of the current snapshot each health.active.interval, on its own thread,
// and records the verdicts in the targets' health.
class Prober {
public:
  explicit Prober(App& app);
  ~Prober();
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;

  // One round, on the caller's thread.
  void probe_all();

private:
  void run();

  App& m_app;
  std::mutex m_mutex;
  std::condition_variable m_wake;
  bool m_stopping = false;
  std::thread m_thread;
};

} // namespace modelmux
