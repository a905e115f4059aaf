#!/usr/bin/env bash
# The floor under "added p50 at c=1": the same mock upstream reached directly and through a bare
# epoll relay (bench/floor_relay.cc: one thread, nothing parsed), interleaved. What the relay
# adds is the kernel's loopback path and two wake-ups per request on this machine; what nginx or
# modelmux add beyond it is their own work (bench/run.sh measures them). Needs wrk.
# Usage: bench/floor.sh [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
bench/build.sh wrk
rounds=${1:-3}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
build-bench/modelmux_bench_upstream >"$work/upstream.port" &
while [ ! -s "$work/upstream.port" ]; do sleep 0.05; done
up=$(awk '{print $NF}' "$work/upstream.port")
relay_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
build-bench/modelmux_bench_floor_relay "$relay_port" "$up" &
until (exec 3<>/dev/tcp/127.0.0.1/$relay_port) 2>/dev/null; do sleep 0.05; done
python3 - "$work/post.lua" <<'PY'
import json, sys
body = json.load(open("bench/chat_body.json")); body["model"] = "m"
open(sys.argv[1], "w").write('wrk.method = "POST"\nwrk.body = ' + json.dumps(json.dumps(body)) + '\nwrk.headers["Content-Type"] = "application/json"\n')
PY
p50() { wrk -t1 -c1 -d5s --latency -s "$work/post.lua" "http://127.0.0.1:$1/v1/chat/completions" | awk '$1=="50%" {print $2}'; }
for i in $(seq "$rounds"); do
  echo "round $i: direct p50 $(p50 "$up"), bare relay p50 $(p50 "$relay_port")"
done
