#!/usr/bin/env bash
# Spill-over measured (SPEC §10): a local model server with 4 slots answering in 200 ms, a cloud
# target answering in 300 ms with no limit, and `modelmux loadtest --requests 400
# --concurrency 32` through modelmux twice — every request queued for the local target, then
# with routing.spill_after: 300ms. Reports p50/p99 latency, the share served locally, and the
# most answers the local server held at once (its own count, not modelmux's). Writes
# bench/results/spill-DATE.md. Usage: bench/spill.sh [REQUESTS] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-400}
concurrency=${2:-32}
bench/build.sh
build=build-bench
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
out="bench/results/spill-$(date -u +%Y-%m-%d).md"

start_mock() { # NAME DELAY_MS
  "$build/modelmux_bench_upstream" 50 "$2" >"$work/$1.port" &
  while [ ! -s "$work/$1.port" ]; do sleep 0.05; done
}
start_mock cloud 300

run() { # NAME SPILL_AFTER
  local name=$1 spill=$2 port
  # A fresh local server per run, so its count of answers held at once is this run's.
  start_mock "local-$name" 200
  local local_port cloud_port
  local_port=$(cat "$work/local-$name.port")
  cloud_port=$(cat "$work/cloud.port")
  port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$work/$name.yaml" <<YAML
listen: 127.0.0.1:$port
state_dir: $work/state-$name
logging: {level: warn}
custom_models:
  - id: local
    endpoint: http://127.0.0.1:$local_port/v1
    model: m
    probe: none
    max_concurrency: 4
    max_queue: 400
    queue_timeout: 60s
    fallback: [custom:cloud]
  - id: cloud
    endpoint: http://127.0.0.1:$cloud_port/v1
    model: m
    probe: none
routing:
  spill_after: $spill
YAML
  "$build/modelmux" serve -c "$work/$name.yaml" 2>"$work/$name.log" &
  local pid=$!
  until (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do sleep 0.05; done
  "$build/modelmux" loadtest -c "$work/$name.yaml" custom:local --requests "$requests" \
    --concurrency "$concurrency" --json >"$work/$name.json" 2>/dev/null || true
  /usr/bin/python3 -c 'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' \
    "http://127.0.0.1:$local_port/stats" >"$work/$name.stats"
  kill "$pid"
  wait "$pid" || true
}
run queued 0s
run spill 300ms

/usr/bin/python3 - "$work" "$requests" "$concurrency" "$out" <<'PY'
import json, sys, datetime
work, requests, concurrency, out = sys.argv[1:]
rows = []
for name, label in (("queued", "no spill_after: every request waits for a local slot"),
                    ("spill", "spill_after: 300ms")):
    r = json.load(open(f"{work}/{name}.json"))
    held = json.load(open(f"{work}/{name}.stats"))["max_pending"]
    local = r["served_by"].get("custom:local", 0)
    rows.append(f"| {label} | {r['succeeded']}/{r['requests']} | {r['latency_ms']['p50']:.0f} | "
                f"{r['latency_ms']['p99']:.0f} | {100 * local / max(1, r['succeeded']):.0f}% | "
                f"{held} | {r['spills']} | {r['wall_seconds']:.1f} |")
text = (f"modelmux spill-over, {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC: a local target with "
        f"max_concurrency 4 answering in 200 ms, a cloud target answering in 300 ms; "
        f"`modelmux loadtest --requests {requests} --concurrency {concurrency}`\n\n"
        "| run | succeeded | p50 ms | p99 ms | served locally | most held at the local server at once | spills | wall s |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
open(out, "w").write(text)
print(text)
PY
echo "written to $out"
