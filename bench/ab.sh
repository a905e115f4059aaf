#!/usr/bin/env bash
# A/B of two modelmux binaries (say, a Release build of main and one of a change) against the
# bench mock upstream: wrk posts the chat body, runs interleaved A, B, A, B ...; prints req/s, p50
# and CPU µs per request of each run. Needs bench/build.sh first (the mock upstream).
# Usage: bench/ab.sh BINARY_A BINARY_B [CONNECTIONS=16] [REPEATS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1; B=$2; conns=${3:-16}; reps=${4:-3}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
build-bench/modelmux_bench_upstream >"$work/upstream.port" &
while [ ! -s "$work/upstream.port" ]; do sleep 0.05; done
up=$(awk '{print $NF}' "$work/upstream.port")
python3 - "$work/post.lua" <<'PY'
import json, sys
body = json.load(open("bench/chat_body.json")); body["model"] = "bench:m"
open(sys.argv[1], "w").write('wrk.method = "POST"\nwrk.body = ' + json.dumps(json.dumps(body)) + '\nwrk.headers["Content-Type"] = "application/json"\n')
PY
run() { # bin name
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$work/$2"
  cat >"$work/$2/c.yaml" <<YAML
listen: 127.0.0.1:$port
state_dir: $work/$2/state
logging: {level: warn}
providers:
  bench: {type: openai, base_url: "http://127.0.0.1:$up/v1", probe: none}
YAML
  "$1" serve -c "$work/$2/c.yaml" 2>"$work/$2/log" & pid=$!
  until (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do sleep 0.05; done
  wrk -t1 -c"$conns" -d2s -s "$work/post.lua" "http://127.0.0.1:$port/v1/chat/completions" >/dev/null
  t0=$(awk '{print $14+$15}' /proc/$pid/stat)
  out=$(wrk -t1 -c"$conns" -d6s --latency -s "$work/post.lua" "http://127.0.0.1:$port/v1/chat/completions")
  t1=$(awk '{print $14+$15}' /proc/$pid/stat)
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  echo "$2 c=$conns req/s $rps p50 $p50 cpu_us/req $(python3 -c "print(round(($t1-$t0)*1e4/$reqs,1))")"
  kill $pid; wait $pid 2>/dev/null || true
}
for i in $(seq $reps); do run "$A" A; run "$B" B; done
