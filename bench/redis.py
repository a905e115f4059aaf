"""Shared state measured (SPEC §12): the same request through modelmux without Redis and with
it, in one run. Two modelmux instances (workers auto) in front of the fast mock, identical but
for `redis:` on the second, which points at a redis-server started here on a loopback port; the
target is priced and a budget is set, so every request adds to the shared spend and every budget
check reads it. wrk sends bench/chat_body.json at c=1 and c=16, interleaved and repeated; medians.
CPU per request is modelmux's user+sys time from /proc; Redis's own CPU is reported beside it.
Usage: redis.py BUILD_DIR OUT.md [--quick]   (bench/redis.sh installs what it needs and calls this)
"""
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

build = os.path.abspath(sys.argv[1])
out_path = sys.argv[2]
quick = "--quick" in sys.argv
duration = 3 if quick else 5
repeats = 1 if quick else 3
here = os.path.dirname(os.path.abspath(__file__))
work = tempfile.mkdtemp(prefix="modelmux-cache-bench-")
tick = os.sysconf("SC_CLK_TCK")
procs = []


def start(cmd, **kw):
    p = subprocess.Popen(cmd, **kw)
    procs.append(p)
    return p


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def serve(name, config):
    path = f"{work}/{name}.yaml"
    with open(path, "w") as f:
        f.write(config)
    p = start([f"{build}/modelmux", "serve", "-c", path], stderr=open(f"{work}/{name}.log", "w"))
    return p


def metric(port, name):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def wrk(port, body, connections, headers=None):
    script = f"{work}/post.lua"
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\n')
        f.write(f"wrk.body = {json.dumps(json.dumps(body))}\n")
        f.write('wrk.headers["Content-Type"] = "application/json"\n')
        for k, v in (headers or {}).items():
            f.write(f'wrk.headers["{k}"] = "{v}"\n')
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
                          "-s", script, f"http://127.0.0.1:{port}/v1/chat/completions"],
                         capture_output=True, text=True).stdout

    def latency(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v if m.group(2) == "ms" else v * 1000

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": latency(50), "p99": latency(99),
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "non2xx": int(errors.group(1)) if errors else 0}



try:
    mock = start([f"{build}/modelmux_bench_upstream"], stdout=subprocess.PIPE, text=True)
    mock_port = int(mock.stdout.readline())
    redis_port = free_port()
    redis = start(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no"], stdout=subprocess.DEVNULL)
    wait_port(redis_port)

    def config(port, extra):
        return f"""listen: 127.0.0.1:{port}
state_dir: {work}/state-{port}
logging: {{level: warn}}
providers:
  bench: {{type: openai, base_url: "http://127.0.0.1:{mock_port}/v1", probe: none,
           models: {{m: {{cost: {{input: 0.10, output: 0.20}}}}}}}}
budget: {{monthly_usd: 1000000}}
{extra}"""

    alone_port, shared_port = free_port(), free_port()
    alone = serve("alone", config(alone_port, ""))
    shared = serve("shared", config(shared_port, f"redis: {{url: \"redis://127.0.0.1:{redis_port}/0\"}}"))
    wait_port(alone_port)
    wait_port(shared_port)
    time.sleep(0.5)  # the link connects

    chat = json.load(open(f"{here}/chat_body.json"))
    body = dict(chat, model="bench:m")
    rows = {"direct": (mock_port, None, dict(chat, model="m")),
            "without redis": (alone_port, alone.pid, body),
            "with redis": (shared_port, shared.pid, body)}
    results = {}
    redis_cpu = {}
    for rep in range(repeats):
        for c in (1, 16):
            for name, (port, pid, b) in rows.items():
                before = cpu_seconds(pid) if pid else 0
                redis_before = cpu_seconds(redis.pid)
                r = wrk(port, b, c)
                r["cpu_us"] = (cpu_seconds(pid) - before) * 1e6 / r["requests"] if pid else 0
                r["redis_us"] = (cpu_seconds(redis.pid) - redis_before) * 1e6 / r["requests"]
                results.setdefault((name, c), []).append(r)
                print(f"rep {rep + 1} c={c:<3} {name:<14} {r['rps']:>9.0f} req/s  p50 {r['p50']:.3f} ms"
                      f"  p99 {r['p99']:.3f} ms  cpu {r['cpu_us']:.1f} us/req  redis {r['redis_us']:.1f}"
                      f" us/req  non-2xx {r['non2xx']}", flush=True)
    health = http.client.HTTPConnection("127.0.0.1", shared_port)
    health.request("GET", "/health")
    state = json.loads(health.getresponse().read())["redis"]["state"]

    def med(name, c, key):
        return statistics.median(r[key] for r in results[(name, c)])

    lines = [f"# Shared state: with Redis against without ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
             "", f"`bash bench/redis.sh{' --quick' if quick else ''}`: wrk {duration} s per cell, {repeats} "
             f"repeats interleaved, medians. {os.cpu_count()} cores shared by wrk, the mock, redis-server and "
             "modelmux (workers auto). A priced target and a budget: every request is added to the "
             f"shared spend and checked against it. Redis at the end: {state}.", "",
             "| figure | direct | without redis | with redis | with / without |", "|---|---|---|---|---|"]
    for c in (1, 16):
        lines.append(f"| req/s, c={c} | {med('direct', c, 'rps'):.0f} | {med('without redis', c, 'rps'):.0f} | "
                     f"{med('with redis', c, 'rps'):.0f} | {med('with redis', c, 'rps') / med('without redis', c, 'rps'):.2f}× |")
        lines.append(f"| p50 / p99 ms, c={c} | {med('direct', c, 'p50'):.3f} / {med('direct', c, 'p99'):.3f} | "
                     f"{med('without redis', c, 'p50'):.3f} / {med('without redis', c, 'p99'):.3f} | "
                     f"{med('with redis', c, 'p50'):.3f} / {med('with redis', c, 'p99'):.3f} | "
                     f"{med('with redis', c, 'p50') / med('without redis', c, 'p50'):.2f}× |")
        lines.append(f"| modelmux CPU µs per request, c={c} | – | {med('without redis', c, 'cpu_us'):.1f} | "
                     f"{med('with redis', c, 'cpu_us'):.1f} | "
                     f"{med('with redis', c, 'cpu_us') / med('without redis', c, 'cpu_us'):.2f}× |")
        lines.append(f"| redis-server CPU µs per request, c={c} | – | – | {med('with redis', c, 'redis_us'):.2f} | – |")
    lines.append(f"| added p50 at c=1 vs without, µs | – | – | "
                 f"{(med('with redis', 1, 'p50') - med('without redis', 1, 'p50')) * 1000:.0f} | – |")
    non2xx = sum(r["non2xx"] for rs in results.values() for r in rs)
    lines += ["", f"Non-2xx answers: {non2xx}."]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(out_path, "w") as f:
        f.write(text)
finally:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
