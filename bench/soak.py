#!/usr/bin/python3
"""Soak: modelmux under mixed load for a set time, with failing targets and reloads.

Runs the Release daemon against the bench mock upstream with four kinds of traffic (whole
answers, streams, a target that refuses connections and falls back, a mock that fails a fifth of
its requests and falls back), sends SIGHUP every 30 s, and samples the daemon's RSS and open fds
every 5 s. At the end it stops the daemon cleanly and counts the usage log's lines against the
requests that got an answer: every one must be there. Prints a Markdown report.

With --fast the one-second streams are left out, so the bounded windows modelmux keeps (the
latest 100,000 latencies for the monitoring API, the health windows) fill within minutes and the
plateau after them shows.

Usage: soak.py BUILD_DIR [--seconds 600] [--clients 16] [--fast] [--out FILE]
"""
import argparse
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

CONFIG = """listen: 127.0.0.1:0
state_dir: {state}
server: {{request_timeout: 60s}}
custom_models:
  - id: local
    type: openai
    endpoint: http://127.0.0.1:{upstream}/v1
    model: bench
    cost: {{input: 0.10, output: 0.20}}
    description: "reload {generation}"
  - id: refusing
    type: openai
    endpoint: http://127.0.0.1:{dead}/v1
    model: gone
    fallback: ["custom:local"]
  - id: flaky
    type: mock
    mock: {{latency: 2ms, fail_rate: 0.2}}
    fallback: ["custom:local"]
routing:
  reference_model: custom:local
health:
  active: {{interval: 1h}}
  outlier: {{consecutive_failures: 5, base_ejection_time: 5s, max_ejection_time: 20s}}
logging: {{level: info}}
"""


def dead_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def read_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Load:
    # Weighted toward whole answers: a stream from the mock takes a second (20 chunks, 50 ms).
    KINDS = [("custom:local", False)] * 4 + [("custom:local", True), ("custom:refusing", False),
                                             ("custom:flaky", True), ("custom:flaky", False)]

    def __init__(self, port, fast=False):
        self.port = port
        self.kinds = [k for k in self.KINDS if not (fast and k == ("custom:local", True))]
        self.lock = threading.Lock()
        self.answered = 0      # requests that got an HTTP answer (each must be in the usage log)
        self.ok = 0
        self.errors = {}       # status or failure -> count
        self.broken_streams = 0  # a 200 stream without [DONE]
        self.stop = threading.Event()

    def count(self, key):
        with self.lock:
            self.errors[key] = self.errors.get(key, 0) + 1

    def client(self, seed):
        rng = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while not self.stop.is_set():
            model, stream = rng.choice(self.kinds)
            body = json.dumps({"model": model, "stream": stream,
                               "messages": [{"role": "user", "content": "soak " * 40}]})
            try:
                conn.request("POST", "/v1/chat/completions", body,
                              {"content-type": "application/json"})
                res = conn.getresponse()
                data = res.read()
            except Exception as e:  # a connection-level failure is a lost request
                self.count("connection: " + type(e).__name__)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                continue
            with self.lock:
                self.answered += 1
                if res.status == 200:
                    self.ok += 1
            if res.status != 200:
                self.count(str(res.status))
            elif stream and not data.rstrip().endswith(b"data: [DONE]"):
                with self.lock:
                    self.broken_streams += 1
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()

    upstream = subprocess.Popen([os.path.join(args.build, "modelmux_bench_upstream")],
                                stdout=subprocess.PIPE, text=True)
    upstream_port = int(upstream.stdout.readline().split()[-1])
    work = tempfile.mkdtemp(prefix="modelmux-soak-")
    config = os.path.join(work, "config.yaml")
    dead = dead_port()

    def write_config(generation):
        with open(config, "w") as f:
            f.write(CONFIG.format(state=os.path.join(work, "state"), upstream=upstream_port,
                                  dead=dead, generation=generation))

    write_config(0)
    daemon = subprocess.Popen([os.path.join(args.build, "modelmux"), "serve", "-c", config],
                              stderr=subprocess.PIPE, text=True)
    port = None
    for line in daemon.stderr:
        if "event=listening" in line:
            port = int(line.split("address=127.0.0.1:")[1].split()[0])
            break
    # Keep the daemon's stderr drained so it never blocks on a full pipe.
    log_lines = []
    threading.Thread(target=lambda: log_lines.extend(daemon.stderr), daemon=True).start()

    load = Load(port, args.fast)
    threads = [threading.Thread(target=load.client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()

    samples = []  # (seconds, rss_kb, fds, answered)
    start = time.monotonic()
    reloads = 0
    next_reload = 30
    while (elapsed := time.monotonic() - start) < args.seconds:
        samples.append((elapsed, read_rss_kb(daemon.pid), len(os.listdir(f"/proc/{daemon.pid}/fd")),
                        load.answered))
        if elapsed >= next_reload:
            reloads += 1
            write_config(reloads)
            daemon.send_signal(signal.SIGHUP)
            next_reload += 30
        time.sleep(5)
    load.stop.set()
    for t in threads:
        t.join()
    samples.append((time.monotonic() - start, read_rss_kb(daemon.pid),
                    len(os.listdir(f"/proc/{daemon.pid}/fd")), load.answered))
    daemon.send_signal(signal.SIGTERM)
    code = daemon.wait(timeout=60)
    upstream.kill()

    with open(os.path.join(work, "state", "usage.jsonl")) as f:
        usage_lines = sum(1 for line in f if line.strip())

    first_minute = [s for s in samples if s[0] <= 60]
    after = [s for s in samples if s[0] > 60]
    plateau = max(s[1] for s in first_minute)
    peak_after = max((s[1] for s in after), default=plateau)
    final = samples[-1]
    lost = load.answered - usage_lines
    lines = [
        f"# modelmux soak, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"`bench/soak.sh --seconds {args.seconds}{' --fast' if args.fast else ''}`: {args.clients} "
        "clients, whole answers, " + ("mock streams" if args.fast else "streams") +
        ", a refusing target and a failing mock (both falling back), SIGHUP every 30 s.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| duration | {final[0]:.0f} s |",
        f"| requests answered | {load.answered} ({load.answered / final[0]:.0f}/s) |",
        f"| answered 200 | {load.ok} |",
        f"| other answers / failures | {json.dumps(load.errors, sort_keys=True)} |",
        f"| streams without [DONE] | {load.broken_streams} |",
        f"| usage log lines | {usage_lines} |",
        f"| requests lost (answered − logged) | {lost} |",
        f"| reloads | {reloads} |",
        f"| RSS plateau in the first minute | {plateau / 1024:.1f} MB |",
        f"| highest RSS after the first minute | {peak_after / 1024:.1f} MB "
        f"({(peak_after - plateau) / 1024:+.1f} MB) |",
        f"| RSS at the end | {final[1] / 1024:.1f} MB |",
        f"| open fds: first / highest / end | {samples[0][2]} / {max(s[2] for s in samples)} / {final[2]} |",
        f"| daemon exit code after SIGTERM | {code} |",
        "",
        "RSS over time (MB, one sample a minute):",
        "",
        " ".join(f"{s[1] / 1024:.1f}" for s in samples if int(s[0]) % 60 < 5),
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
    healthy = (lost == 0 and load.broken_streams == 0 and code == 0 and
               not any(k.startswith("connection") for k in load.errors))
    sys.exit(0 if healthy else 1)


if __name__ == "__main__":
    main()
