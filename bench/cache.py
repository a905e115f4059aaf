"""The response cache measured (SPEC §11): a hit against the same request proxied, in one run.

One modelmux (`cache: {enabled: true, when: always}`, workers auto) in front of the fast mock
upstream. The same 1.1 KB chat body is sent by wrk three ways: straight to the mock ("direct"),
through modelmux with `x-modelmux-cache: bypass` ("proxied"), and through modelmux after one
priming request ("hit"); whole at c=1 and c=16, and streamed at c=16 (a stream hit replays the
stored answer as SSE on every request). Repeated and interleaved; medians reported. CPU per
request is modelmux's user+sys time from /proc over the requests it served.

Memory per cached KB: a second modelmux with a `type: mock` target (it echoes the prompt, so an
answer's size is chosen) and a 1 GiB cache takes N distinct requests whose answers are ~1 KB and
~16 KB; its RSS growth is divided by the answer bytes it holds (modelmux_cache_size_bytes).
Usage: cache.py BUILD_DIR OUT.md [--quick]   (bench/cache.sh installs what it needs and calls this)
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
    # Two mocks: whole answers at once, and streams with no gap between chunks (so a stream
    # measures the proxy, not the mock's pacing).
    mock = start([f"{build}/modelmux_bench_upstream"], stdout=subprocess.PIPE, text=True)
    mock_port = int(mock.stdout.readline())
    fast_streams = start([f"{build}/modelmux_bench_upstream", "0"], stdout=subprocess.PIPE,
                         text=True)
    fast_streams_port = int(fast_streams.stdout.readline())

    mm_port = free_port()
    mm = serve("modelmux", f"""listen: 127.0.0.1:{mm_port}
state_dir: {work}/state
logging: {{level: warn}}
providers:
  bench: {{type: openai, base_url: "http://127.0.0.1:{mock_port}/v1", probe: none}}
  streams: {{type: openai, base_url: "http://127.0.0.1:{fast_streams_port}/v1", probe: none}}
cache: {{enabled: true, when: always}}
""")
    wait_port(mm_port)

    chat = json.load(open(f"{here}/chat_body.json"))
    bypass = {"x-modelmux-cache": "bypass"}
    whole = dict(chat, model="bench:m")
    stream = dict(chat, model="streams:m", stream=True)
    # The primers: one answer of each kind stored.
    for body in (whole, stream):
        conn = http.client.HTTPConnection("127.0.0.1", mm_port)
        conn.request("POST", "/v1/chat/completions", json.dumps(body),
                     {"content-type": "application/json"})
        r = conn.getresponse()
        r.read()
        assert r.status == 200, r.status
    rows = {
        "direct": (mock_port, None, dict(chat, model="m"), None),
        "proxied": (mm_port, mm.pid, whole, bypass),
        "hit": (mm_port, mm.pid, whole, None),
        "direct, stream": (fast_streams_port, None, dict(stream, model="m"), None),
        "proxied, stream": (mm_port, mm.pid, stream, bypass),
        "hit, stream": (mm_port, mm.pid, stream, None),
    }
    results = {}
    hits_before = metric(mm_port, r'modelmux_cache_requests_total\{result="hit"\}')
    hit_requests = 0
    for rep in range(repeats):
        for c in (1, 16):
            for name, (port, pid, body, headers) in rows.items():
                if "stream" in name and c == 1:
                    continue
                before = cpu_seconds(pid) if pid else 0
                r = wrk(port, body, c, headers)
                r["cpu_us"] = (cpu_seconds(pid) - before) * 1e6 / r["requests"] if pid else 0
                if name.startswith("hit"):
                    hit_requests += r["requests"]
                results.setdefault((name, c), []).append(r)
                print(f"rep {rep + 1} c={c:<3} {name:<16} {r['rps']:>9.0f} req/s  p50 "
                      f"{r['p50']:.3f} ms  p99 {r['p99']:.3f} ms  cpu {r['cpu_us']:.1f} us/req  "
                      f"non-2xx {r['non2xx']}", flush=True)
    hits = metric(mm_port, r'modelmux_cache_requests_total\{result="hit"\}') - hits_before

    # Memory per cached KB, on a mock target that echoes the prompt.
    memory = []
    for answer_kb in (1, 16):
        port = free_port()
        p = serve(f"memory-{answer_kb}", f"""listen: 127.0.0.1:{port}
state_dir: {work}/state-memory-{answer_kb}
logging: {{level: warn}}
server: {{workers: 1}}
custom_models:
  - {{id: echo, type: mock}}
cache: {{enabled: true, when: always, max_size: 1GiB}}
""")
        wait_port(port)
        conn = http.client.HTTPConnection("127.0.0.1", port)

        def ask(i, headers):
            text = f"{i:08d} " + "x" * (answer_kb * 1024 - 9)
            conn.request("POST", "/v1/chat/completions",
                         json.dumps({"model": "custom:echo",
                                     "messages": [{"role": "user", "content": text}]}),
                         dict(headers, **{"content-type": "application/json"}))
            r = conn.getresponse()
            r.read()
            assert r.status == 200, r.status

        # Warm up allocator and buffers without storing anything, then fill.
        for i in range(2000):
            ask(i, bypass)
        rss0 = rss_kb(p.pid)
        count = (4000 if quick else 20000) // answer_kb
        for i in range(count):
            ask(i, {})
        rss1 = rss_kb(p.pid)
        cache_bytes = metric(port, "modelmux_cache_size_bytes")
        entries = metric(port, "modelmux_cache_entries")
        memory.append((answer_kb, int(entries), cache_bytes, (rss1 - rss0) * 1024))
        print(f"memory: {int(entries)} answers of ~{answer_kb} KB: cache {cache_bytes / 1e6:.1f} MB, "
              f"RSS +{(rss1 - rss0) / 1024:.1f} MB", flush=True)
        p.send_signal(signal.SIGTERM)
        p.wait()

    def med(name, c, key):
        return statistics.median(r[key] for r in results[(name, c)])

    lines = [f"# Response cache: a hit against the same request proxied "
             f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
             f"`bash bench/cache.sh{' --quick' if quick else ''}`: wrk {duration} s per cell, "
             f"{repeats} repeats interleaved, medians. {os.cpu_count()} cores shared by wrk, the "
             "mock and modelmux (workers auto). Body: bench/chat_body.json (1.1 KB); the mock's "
             "answer is 684 bytes whole, 20 chunks streamed.", "",
             "| figure | direct | proxied | hit | hit / proxied |", "|---|---|---|---|---|"]
    for c in (1, 16):
        lines.append(f"| req/s, c={c} | {med('direct', c, 'rps'):.0f} | {med('proxied', c, 'rps'):.0f} | "
                     f"{med('hit', c, 'rps'):.0f} | {med('hit', c, 'rps') / med('proxied', c, 'rps'):.2f}× |")
        lines.append(f"| p50 / p99 ms, c={c} | {med('direct', c, 'p50'):.3f} / {med('direct', c, 'p99'):.3f} | "
                     f"{med('proxied', c, 'p50'):.3f} / {med('proxied', c, 'p99'):.3f} | "
                     f"{med('hit', c, 'p50'):.3f} / {med('hit', c, 'p99'):.3f} | "
                     f"{med('hit', c, 'p50') / med('proxied', c, 'p50'):.2f}× |")
        lines.append(f"| CPU µs per request, c={c} | – | {med('proxied', c, 'cpu_us'):.1f} | "
                     f"{med('hit', c, 'cpu_us'):.1f} | "
                     f"{med('hit', c, 'cpu_us') / med('proxied', c, 'cpu_us'):.2f}× |")
    lines.append(f"| added p50 at c=1 vs direct, µs | – | "
                 f"{(med('proxied', 1, 'p50') - med('direct', 1, 'p50')) * 1000:.0f} | "
                 f"{(med('hit', 1, 'p50') - med('direct', 1, 'p50')) * 1000:.0f} | – |")
    s = 16
    lines.append(f"| stream req/s, c={s} | {med('direct, stream', s, 'rps'):.0f} | "
                 f"{med('proxied, stream', s, 'rps'):.0f} | {med('hit, stream', s, 'rps'):.0f} | "
                 f"{med('hit, stream', s, 'rps') / med('proxied, stream', s, 'rps'):.2f}× |")
    lines.append(f"| stream p50 ms, c={s} | {med('direct, stream', s, 'p50'):.3f} | "
                 f"{med('proxied, stream', s, 'p50'):.3f} | {med('hit, stream', s, 'p50'):.3f} | "
                 f"{med('hit, stream', s, 'p50') / med('proxied, stream', s, 'p50'):.2f}× |")
    lines.append(f"| stream CPU µs per request, c={s} | – | {med('proxied, stream', s, 'cpu_us'):.1f} | "
                 f"{med('hit, stream', s, 'cpu_us'):.1f} | "
                 f"{med('hit, stream', s, 'cpu_us') / med('proxied, stream', s, 'cpu_us'):.2f}× |")
    non2xx = sum(r["non2xx"] for rs in results.values() for r in rs)
    lines += ["", f"Hits counted by `modelmux_cache_requests_total{{result=\"hit\"}}` during the hit "
              f"rows: {hits:.0f} of {hit_requests} requests wrk counted. Non-2xx answers: {non2xx}.",
              "", "## Memory per cached KB", "",
              "Each answer echoes a prompt of the size shown; an entry's bytes, as the cache counts "
              "them (`modelmux_cache_size_bytes` / `modelmux_cache_entries`), are the answer's JSON, "
              "its key and the bookkeeping.", "",
              "| answers | prompt | bytes per entry (metric) | cache bytes (metric) | RSS growth | "
              "RSS per cached KB |", "|---|---|---|---|---|---|"]
    for kb, entries, cache_bytes, rss in memory:
        lines.append(f"| {entries} | {kb} KB | {cache_bytes / entries:.0f} | {cache_bytes / 1e6:.1f} MB | "
                     f"{rss / 1e6:.1f} MB | {rss / cache_bytes * 1024:.0f} bytes |")
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
