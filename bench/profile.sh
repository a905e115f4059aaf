#!/usr/bin/env bash
# The top of modelmux's CPU profile under load: the Release build from bench/run.sh (build-bench/)
# serving the bench mock upstream, wrk at c=16 posting the chat body, `perf record -g` on the
# daemon for 8 s. Needs linux-perf (Debian) and permission to profile (root, or
# kernel.perf_event_paranoid <= 1). Usage: bench/profile.sh [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-16}
build=build-bench
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
"$build/modelmux_bench_upstream" >"$work/upstream.port" &
while [ ! -s "$work/upstream.port" ]; do sleep 0.05; done
up=$(awk '{print $NF}' "$work/upstream.port")
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/modelmux.yaml" <<YAML
listen: 127.0.0.1:$port
state_dir: $work/state
logging: {level: warn}
providers:
  bench: {type: openai, base_url: "http://127.0.0.1:$up/v1", probe: none}
YAML
"$build/modelmux" serve -c "$work/modelmux.yaml" 2>"$work/modelmux.log" &
pid=$!
until (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do sleep 0.05; done
/usr/bin/python3 - "$work/post.lua" <<'PY'
import json, sys
body = json.load(open("bench/chat_body.json"))
body["model"] = "bench:m"
with open(sys.argv[1], "w") as f:
    f.write('wrk.method = "POST"\n')
    f.write("wrk.body = " + json.dumps(json.dumps(body)) + "\n")
    f.write('wrk.headers["Content-Type"] = "application/json"\n')
PY
wrk -t1 -c"$conns" -d12s -s "$work/post.lua" "http://127.0.0.1:$port/v1/chat/completions" \
  >"$work/wrk.txt" &
sleep 2
perf record -q -g -p "$pid" -o "$work/perf.data" -- sleep 8 >/dev/null 2>&1
wait %3 2>/dev/null || true
grep -E "Requests/sec" "$work/wrk.txt" || true
perf report -i "$work/perf.data" --no-children --sort symbol -g none --stdio 2>/dev/null |
  grep -E '^ +[0-9]+\.[0-9]+%' | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//; s/[[:space:]]+$//' |
  head -25 || true
echo
echo "by library (where the time goes: the kernel's network and scheduler, libc's allocator and"
echo "copies, simdjson, Asio/Beast and modelmux's own code are all in the modelmux binary but for libc):"
perf report -i "$work/perf.data" --no-children --sort dso -g none --stdio 2>/dev/null |
  grep -E '^ +[0-9]+\.[0-9]+%' | sed -E 's/[[:space:]]+$//' | head -6 || true
