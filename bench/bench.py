"""The side-by-side benchmark: modelmux, nginx and a direct connection to the same fast mock
upstream, measured in one run, interleaved, repeated, medians reported, with ratios to nginx.

Non-streaming load is wrk (a 1.1 KB chat body, concurrency 1, 16 and 64, and pipelined 8 deep
at c=16); streaming load is modelmux_bench_streams (1000 concurrent streams of 20 chunks x 50 ms,
then 9,000 opened over 9 s of 20 chunks x 950 ms, each checked whole), against nginx with one
worker and modelmux with one (server.workers: 1). CPU per request is the proxy process's
user+sys time from /proc over the requests it served; peak RSS is VmHWM after each stream phase.
Usage: bench.py BUILD_DIR [--quick]   (bench/run.sh installs what it needs and calls this)
"""
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

build = os.path.abspath(sys.argv[1])
quick = "--quick" in sys.argv
duration = 3 if quick else 5
repeats = 1 if quick else 3
stream_count = 200 if quick else 1000
many_streams = 1000 if quick else 9000
here = os.path.dirname(os.path.abspath(__file__))
work = tempfile.mkdtemp(prefix="modelmux-bench-")
tick = os.sysconf("SC_CLK_TCK")
procs = []


def start(cmd, **kw):
    p = subprocess.Popen(cmd, **kw)
    procs.append(p)
    return p


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def rss_mb(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_port(port):
    import socket
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


# The mock upstreams: fast streams (20 chunks 50 ms apart) and long ones (950 ms apart, ~19 s).
mock = start([f"{build}/modelmux_bench_upstream"], stdout=subprocess.PIPE, text=True)
mock_port = int(mock.stdout.readline())
slow_mock = start([f"{build}/modelmux_bench_upstream", "950"], stdout=subprocess.PIPE, text=True)
slow_mock_port = int(slow_mock.stdout.readline())

# nginx: one worker, keep-alive upstream, no buffering: a plain reverse proxy.
import socket
with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    nginx_port = sock.getsockname()[1]
os.makedirs(f"{work}/nginx/logs", exist_ok=True)
with open(f"{work}/nginx/nginx.conf", "w") as f:
    f.write(f"""worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid {work}/nginx/nginx.pid;
error_log {work}/nginx/logs/error.log warn;
events {{ worker_connections 19500; }}
http {{
  access_log off;
  client_body_temp_path {work}/nginx/body;
  proxy_temp_path {work}/nginx/proxy;
  upstream mock {{ server 127.0.0.1:{mock_port}; keepalive 128; }}
  upstream slowmock {{ server 127.0.0.1:{slow_mock_port}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{nginx_port};
    location /slow/ {{
      proxy_pass http://slowmock/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
    location / {{
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
""")
nginx = start(["nginx", "-c", f"{work}/nginx/nginx.conf", "-p", f"{work}/nginx"],
              stderr=subprocess.DEVNULL)
wait_port(nginx_port)
nginx_pids = [nginx.pid] + [int(p) for p in subprocess.run(
    ["pgrep", "-P", str(nginx.pid)], capture_output=True, text=True).stdout.split()]

# modelmux with its defaults, the mock as an OpenAI-type provider; a chain whose first target
# refuses connections for the fallback figure.
def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


dead_port = free_port()
mm_port = free_port()
mm1_port = free_port()


def modelmux_config(port, state, server=""):
    return f"""listen: 127.0.0.1:{port}
state_dir: {work}/{state}
logging: {{level: warn}}
{server}
providers:
  bench:
    type: openai
    base_url: http://127.0.0.1:{mock_port}/v1
    probe: none
  slow:
    type: openai
    base_url: http://127.0.0.1:{slow_mock_port}/v1
    probe: none
  limited:
    type: openai
    base_url: http://127.0.0.1:{mock_port}/v1
    probe: none
    max_concurrency: 100000
custom_models:
  - id: refusing
    endpoint: http://127.0.0.1:{dead_port}/v1
    model: m
    probe: none
    fallback: [bench:m]
health:
  outlier: {{consecutive_failures: 1000, base_ejection_time: 1ms, max_ejection_time: 1ms}}
  unhealthy: {{success_rate_below: 0}}
  degraded: {{success_rate_below: 0}}
"""


with open(f"{work}/modelmux.yaml", "w") as f:
    f.write(modelmux_config(mm_port, "state"))
# The streams are measured on an instance with one event loop, as nginx has one worker.
with open(f"{work}/modelmux-1.yaml", "w") as f:
    f.write(modelmux_config(mm1_port, "state-1", "server: {workers: 1}"))
# Warnings only: an access log line per request is not what is being measured.
mm = start([f"{build}/modelmux", "serve", "-c", f"{work}/modelmux.yaml"],
           stderr=open(f"{work}/modelmux.log", "w"))
mm1 = start([f"{build}/modelmux", "serve", "-c", f"{work}/modelmux-1.yaml"],
            stderr=open(f"{work}/modelmux-1.log", "w"))
wait_port(mm_port)
wait_port(mm1_port)
time.sleep(0.5)
idle_rss = rss_mb(mm.pid)
idle_rss_1 = rss_mb(mm1.pid)
nginx_idle_rss = sum(rss_mb(p) for p in nginx_pids)

chat = json.load(open(f"{here}/chat_body.json"))
targets = {
    "direct": (mock_port, [], "/v1/chat/completions", dict(chat, model="m")),
    "nginx": (nginx_port, nginx_pids, "/v1/chat/completions", dict(chat, model="m")),
    "modelmux": (mm_port, [mm.pid], "/v1/chat/completions", dict(chat, model="bench:m")),
}
extra = {
    "modelmux, Anthropic client translated": (mm_port, [mm.pid], "/v1/messages",
                                               dict(json.load(open(f"{here}/messages_body.json")),
                                                    model="bench:m")),
    "modelmux, fallback on every request": (mm_port, [mm.pid], "/v1/chat/completions",
                                             dict(chat, model="custom:refusing")),
    # The slot and queue bookkeeping of SPEC §10 on every request, with slots never full.
    "modelmux, target with max_concurrency (never full)": (mm_port, [mm.pid],
                                                           "/v1/chat/completions",
                                                           dict(chat, model="limited:m")),
    "modelmux, Responses route (translated to chat)": (
        mm_port, [mm.pid], "/v1/responses",
        {"model": "bench:m", "input": chat["messages"][-1]["content"], "max_output_tokens": 256}),
}


def wrk(port, path, body, connections, pipeline=1):
    script = f"{work}/post.lua"
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\n')
        f.write(f"wrk.body = {json.dumps(json.dumps(body))}\n")
        f.write('wrk.headers["Content-Type"] = "application/json"\n')
        f.write('wrk.headers["anthropic-version"] = "2023-06-01"\n')
        if pipeline > 1:
            # Several requests written at once on each connection before any answer is read.
            f.write("init = function(args)\n  local r = {}\n"
                    f"  for i = 1, {pipeline} do r[i] = wrk.format() end\n"
                    "  req = table.concat(r)\nend\nrequest = function() return req end\n")
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
                          "-s", script, f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True).stdout

    def latency(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v if m.group(2) == "ms" else v * 1000

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": latency(50), "p99": latency(99), "requests": requests,
            "non2xx": int(errors.group(1)) if errors else 0}


results = {}
for rep in range(repeats):
    for c in (1, 16, 64):
        for name, (port, pids, path, body) in list(targets.items()) + (
                list(extra.items()) if c == 16 else []):
            before = cpu_seconds(pids) if pids else 0
            r = wrk(port, path, body, c)
            r["cpu_us"] = ((cpu_seconds(pids) - before) * 1e6 / r["requests"]) if pids else 0
            results.setdefault((name, c), []).append(r)
            print(f"rep {rep + 1} c={c:<3} {name:<40} {r['rps']:>9.0f} req/s  p50 {r['p50']:.3f} ms"
                  f"  p99 {r['p99']:.3f} ms  cpu {r['cpu_us']:.1f} us/req  non-2xx {r['non2xx']}",
                  flush=True)
    for name, (port, pids, path, body) in targets.items():
        before = cpu_seconds(pids) if pids else 0
        r = wrk(port, path, body, 16, pipeline=8)
        r["cpu_us"] = ((cpu_seconds(pids) - before) * 1e6 / r["requests"]) if pids else 0
        results.setdefault((name, "pipelined"), []).append(r)
        print(f"rep {rep + 1} pipelined x8 c=16 {name:<27} {r['rps']:>9.0f} req/s  "
              f"cpu {r['cpu_us']:.1f} us/req  non-2xx {r['non2xx']}", flush=True)

peak_rss = rss_mb(mm.pid, "VmHWM")
stream_targets = {
    "direct": (mock_port, slow_mock_port, [], "", "bench:m", "slow:m"),
    "nginx": (nginx_port, nginx_port, nginx_pids, "/slow", "m", "m"),
    "modelmux": (mm1_port, mm1_port, [mm1.pid], "", "bench:m", "slow:m"),
}


def stream_run(port, pids, count, prefix, model, ramp):
    body_file = f"{work}/stream_body.json"
    with open(body_file, "w") as f:
        json.dump({"model": model, "stream": True,
                   "messages": [{"role": "user", "content": "stream please"}]}, f)
    before = cpu_seconds(pids) if pids else 0
    out = subprocess.run([f"{build}/modelmux_bench_streams", str(port), str(count),
                          prefix + "/v1/chat/completions", body_file, str(ramp)],
                         capture_output=True, text=True).stdout
    r = json.loads(out)
    r["cpu_ms"] = ((cpu_seconds(pids) - before) * 1e3 / count) if pids else 0
    return r


streams = {}
for rep in range(repeats):
    for name, (port, _, pids, _, model, _) in stream_targets.items():
        r = stream_run(port, pids, stream_count, "", model, 0)
        streams.setdefault(name, []).append(r)
        print(f"rep {rep + 1} streams {name:<10} {r['completed']}/{r['streams']} complete, ttfb p50 "
              f"{r['ttfb_p50_ms']:.2f} ms p99 {r['ttfb_p99_ms']:.2f} ms, cpu {r['cpu_ms']:.3f} ms/stream",
              flush=True)
peak_rss_1000 = rss_mb(mm1.pid, "VmHWM")
nginx_peak_1000 = sum(rss_mb(p, "VmHWM") for p in nginx_pids)
many = {}
for name, (_, port, pids, prefix, _, model) in stream_targets.items():
    r = stream_run(port, pids, many_streams, prefix, model, many_streams / 1000)
    many[name] = r
    print(f"{many_streams} streams {name:<10} {r['completed']}/{r['streams']} complete, ttfb p50 "
          f"{r['ttfb_p50_ms']:.2f} ms p99 {r['ttfb_p99_ms']:.2f} ms, cpu {r['cpu_ms']:.3f} ms/stream",
          flush=True)
peak_rss_many = rss_mb(mm1.pid, "VmHWM")
nginx_peak = sum(rss_mb(p, "VmHWM") for p in nginx_pids)


def med(rows, key):
    return statistics.median(r[key] for r in rows)


lines = ["| figure | direct | nginx | modelmux | modelmux ÷ nginx |", "|---|---|---|---|---|"]
for c in (1, 16, 64):
    d, n, m = (results[(t, c)] for t in ("direct", "nginx", "modelmux"))
    lines.append(f"| req/s, c={c} | {med(d, 'rps'):.0f} | {med(n, 'rps'):.0f} | {med(m, 'rps'):.0f} "
                 f"| {med(m, 'rps') / med(n, 'rps'):.2f} |")
    lines.append(f"| p50 / p99 ms, c={c} | {med(d, 'p50'):.3f} / {med(d, 'p99'):.3f} | "
                 f"{med(n, 'p50'):.3f} / {med(n, 'p99'):.3f} | {med(m, 'p50'):.3f} / {med(m, 'p99'):.3f} "
                 f"| {med(m, 'p50') / med(n, 'p50'):.2f} |")
    lines.append(f"| CPU µs per request, c={c} | – | {med(n, 'cpu_us'):.1f} | {med(m, 'cpu_us'):.1f} "
                 f"| {med(m, 'cpu_us') / med(n, 'cpu_us'):.2f} |")
d1, n1, m1 = (results[(t, 1)] for t in ("direct", "nginx", "modelmux"))
lines.append(f"| added p50 at c=1 vs direct, µs | – | {(med(n1, 'p50') - med(d1, 'p50')) * 1000:.0f} | "
             f"{(med(m1, 'p50') - med(d1, 'p50')) * 1000:.0f} | – |")
sd, sn, sm = (streams[t] for t in ("direct", "nginx", "modelmux"))
lines.append(f"| {stream_count} streams complete | {min(r['completed'] for r in sd)} | "
             f"{min(r['completed'] for r in sn)} | {min(r['completed'] for r in sm)} | – |")
lines.append(f"| stream TTFB p50 / p99 ms | {med(sd, 'ttfb_p50_ms'):.2f} / {med(sd, 'ttfb_p99_ms'):.2f} | "
             f"{med(sn, 'ttfb_p50_ms'):.2f} / {med(sn, 'ttfb_p99_ms'):.2f} | "
             f"{med(sm, 'ttfb_p50_ms'):.2f} / {med(sm, 'ttfb_p99_ms'):.2f} | "
             f"{med(sm, 'ttfb_p99_ms') / med(sn, 'ttfb_p99_ms'):.2f} (p99) |")
lines.append(f"| CPU ms per stream | – | {med(sn, 'cpu_ms'):.3f} | {med(sm, 'cpu_ms'):.3f} | "
             f"{med(sm, 'cpu_ms') / med(sn, 'cpu_ms'):.2f} |")
d, n, m = (results[(t, "pipelined")] for t in ("direct", "nginx", "modelmux"))
lines.append(f"| pipelined 8 deep, c=16: req/s (non-2xx) | {med(d, 'rps'):.0f} ({max(r['non2xx'] for r in d)}) | "
             f"{med(n, 'rps'):.0f} ({max(r['non2xx'] for r in n)}) | {med(m, 'rps'):.0f} ({max(r['non2xx'] for r in m)}) "
             f"| {med(m, 'rps') / med(n, 'rps'):.2f} |")
lines.append(f"| CPU µs per request, pipelined | – | {med(n, 'cpu_us'):.1f} | {med(m, 'cpu_us'):.1f} "
             f"| {med(m, 'cpu_us') / med(n, 'cpu_us'):.2f} |")
md, mn, mm_ = (many[t] for t in ("direct", "nginx", "modelmux"))
lines.append(f"| {many_streams} streams over {many_streams / 1000:.0f} s, ~19 s each: complete | "
             f"{md['completed']} | {mn['completed']} | {mm_['completed']} | – |")
lines.append(f"| {many_streams} streams: TTFB p50 / p99 ms | {md['ttfb_p50_ms']:.2f} / {md['ttfb_p99_ms']:.2f} | "
             f"{mn['ttfb_p50_ms']:.2f} / {mn['ttfb_p99_ms']:.2f} | {mm_['ttfb_p50_ms']:.2f} / {mm_['ttfb_p99_ms']:.2f} "
             f"| {mm_['ttfb_p99_ms'] / mn['ttfb_p99_ms']:.2f} (p99) |")
lines.append(f"| {many_streams} streams: CPU ms per stream | – | {mn['cpu_ms']:.3f} | {mm_['cpu_ms']:.3f} | "
             f"{mm_['cpu_ms'] / mn['cpu_ms']:.2f} |")
lines.append(f"| idle RSS MB (workers auto / 1) | – | {nginx_idle_rss:.1f} | {idle_rss:.1f} / {idle_rss_1:.1f} | – |")
lines.append(f"| peak RSS MB, {stream_count} streams (1 worker) | – | {nginx_peak_1000:.1f} | {peak_rss_1000:.1f} | "
             f"{peak_rss_1000 / nginx_peak_1000:.2f} |")
lines.append(f"| peak RSS MB, {many_streams} streams (1 worker) | – | {nginx_peak:.1f} | {peak_rss_many:.1f} | "
             f"{peak_rss_many / nginx_peak:.2f} |")
lines.append(f"| peak RSS MB, non-streaming load (workers auto) | – | – | {peak_rss:.1f} | – |")
for name in extra:
    r = results[(name, 16)]
    lines.append(f"| {name}, c=16: req/s, p50 ms, CPU µs/req | – | – | {med(r, 'rps'):.0f}, "
                 f"{med(r, 'p50'):.3f}, {med(r, 'cpu_us'):.1f} | – |")

table = "\n".join(lines)
header = (f"modelmux bench, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores, {duration} s per wrk run, {repeats} interleaved repeats, medians; "
          f"nginx {subprocess.run(['nginx', '-v'], capture_output=True, text=True).stderr.strip()}\n\n")
os.makedirs(f"{here}/results", exist_ok=True)
out_path = f"{here}/results/{time.strftime('%Y-%m-%d', time.gmtime())}{'-quick' if quick else ''}.md"
with open(out_path, "w") as f:
    f.write(header + table + "\n")
print("\n" + header + table)
print(f"\nwritten to {out_path}")

for p in procs:
    p.send_signal(signal.SIGTERM)
for p in procs:
    try:
        p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
shutil.rmtree(work, ignore_errors=True)
