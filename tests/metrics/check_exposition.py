"""The official Prometheus Python client's text parser reads modelmux's /metrics.

Starts the built daemon on a mock target with a temporary state_dir, sends a chat, a streamed
chat and a message, scrapes /metrics, and parses it with prometheus_client (Debian's
python3-prometheus-client). Then stops the daemon with SIGTERM and checks the usage log holds
every request: nothing is lost on a clean shutdown.

Usage: check_exposition.py MODELMUX_BINARY
"""
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import modelmux_process  # noqa: E402

binary = sys.argv[1]
state = tempfile.mkdtemp(prefix="modelmux-metrics-")
config = os.path.join(state, "config.yaml")
with open(config, "w") as f:
    f.write(f"""listen: 127.0.0.1:0
state_dir: {state}/state
custom_models:
  - id: demo
    type: mock
    cost: {{input: 0.50, output: 1.50}}
  - id: pricey
    type: mock
    cost: {{input: 5.00, output: 15.00}}
routing:
  reference_model: custom:pricey
""")

daemon, base, _ = modelmux_process.start(binary, config)


def post(path, body):
    return modelmux_process.post(base, path, body)[1]


post("/v1/chat/completions", {"model": "demo", "messages": [{"role": "user", "content": "hi there"}]})
post("/v1/chat/completions", {"model": "demo", "stream": True,
                              "messages": [{"role": "user", "content": "a streamed hello"}]})
post("/v1/messages", {"model": "demo", "max_tokens": 10,
                      "messages": [{"role": "user", "content": "hello anthropic"}]})

# Records reach the metrics on the usage writer's next batch (at most 200 ms); from outside the
# process the scrape is the only way to see it, so scrape until all three are counted.
families = {}
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    with urllib.request.urlopen(base + "/metrics", timeout=20) as r:
        exposition = r.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    requests = families.get("modelmux_requests")
    if requests and sum(s.value for s in requests.samples if s.name.endswith("_total")) >= 3:
        break
    time.sleep(0.02)

expected = {
    "modelmux_requests": "counter",
    "modelmux_upstream_attempts": "counter",
    "modelmux_fallbacks": "counter",
    "modelmux_overhead_seconds": "histogram",
    "modelmux_cost_usd": "counter",
    "modelmux_savings_usd": "counter",
    "modelmux_target_state": "gauge",
    "modelmux_inflight_requests": "gauge",
    "modelmux_config_reloads": "counter",
    "modelmux_build_info": "gauge",
    "gen_ai_server_request_duration_seconds": "histogram",
    "gen_ai_server_time_to_first_token_seconds": "histogram",
    "gen_ai_server_time_per_output_token_seconds": "histogram",
    "gen_ai_client_token_usage": "histogram",
    "process_resident_memory_bytes": "gauge",
    "process_open_fds": "gauge",
    "process_start_time_seconds": "gauge",
}
failures = []
for name, kind in expected.items():
    if name not in families:
        failures.append(f"missing {name}")
    elif families[name].type != kind:
        failures.append(f"{name} is a {families[name].type}, not a {kind}")
served = sum(s.value for s in families["modelmux_requests"].samples if s.name.endswith("_total"))
if served != 3:
    failures.append(f"modelmux_requests_total sums to {served}, not 3")
cost = sum(s.value for s in families["modelmux_cost_usd"].samples if s.name.endswith("_total"))
savings = sum(s.value for s in families["modelmux_savings_usd"].samples if s.name.endswith("_total"))
if not cost > 0 or not savings > 0:
    failures.append(f"cost {cost} and savings {savings} should both be positive")

daemon.send_signal(signal.SIGTERM)
daemon.wait(timeout=30)
lines = open(os.path.join(state, "state", "usage.jsonl")).read().splitlines()
if len(lines) != 3:
    failures.append(f"the usage log has {len(lines)} lines after a clean stop, not 3")
logged = sum(round(json.loads(l)["cost_usd"] * 1e6) for l in lines)
if abs(logged - round(cost * 1e6)) > 0:
    failures.append(f"the usage log's cost {logged} micro-USD differs from /metrics {cost}")

shutil.rmtree(state, ignore_errors=True)
if failures:
    print("\n".join(failures))
    sys.exit(1)
print(f"ok: {len(families)} families parsed, {served:.0f} requests, ${cost:.6f} spent")
