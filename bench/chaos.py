#!/usr/bin/python3
"""Chaos soak: modelmux under open-loop load while its upstreams, its Redis and its clients fail.

Three OpenAI-compatible upstreams (each a process of this script, so one can be killed), a
Redis, and modelmux with the chain primary -> secondary -> tertiary behind the alias "chaos".
First a closed-loop run with no fault measures the throughput this machine reaches with the
mix; then the load runs open-loop at 80 % of it for --minutes: chat completions, Anthropic
messages and Responses, each whole and streamed, every request with its own x-request-id, at
most --concurrency in flight. Every 10 s the next fault of the cycle begins:

  steady; primary killed (restarted at the period's end); primary stalls before the first byte;
  primary stalls mid-answer; primary truncates its answers; a 429 storm with Retry-After on the
  primary; 500s from the primary; primary killed while the secondary is slow; SIGHUP with a
  changed config; Redis killed (restarted at the period's end); the whole chain down (502/504
  expected); clients walking away from half the streams after the first event.

At the end the daemon gets SIGTERM, and the checks are printed as a Markdown table with a
verdict (exit 1 when any fails):

  every request answered (2xx, or an error in its route's protocol), none unanswered;
  no silently truncated stream (a 200 stream without its terminal event and without an error);
  one usage-log line per answered request, each x-request-id once, with the target and attempts
  of the answer's headers; /metrics request counts equal to the answers, route by route;
  RSS flat over the second half (least-squares slope <= 0.1 MiB/min); open descriptors back to
  the idle count after the load; exit 0 within 1 s of SIGTERM.

Usage: chaos.py BUILD_DIR [--minutes N] [--concurrency C] [--out FILE]
       chaos.py --upstream PORT      (one upstream; what the parent runs)
"""
import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import aiohttp
from aiohttp import web

PERIOD_SECONDS = 10
CHUNKS = 6
CHUNK_GAP = 0.01
STALL_SECONDS = 60  # longer than any timeout modelmux has here

# ---------------------------------------------------------------------------------------------
# One upstream: OpenAI chat completions, whole and streamed, with a mode set by the parent.


def completion(model):
    return {"id": "chatcmpl-chaos", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "chaos " * 20},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 20, "total_tokens": 32}}


def event(obj):
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def upstream_main(port):
    state = {"mode": "normal"}

    async def control(request):
        state["mode"] = (await request.json())["mode"]
        return web.json_response({"mode": state["mode"]})

    async def models(_request):
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})

    async def chat(request):
        body = await request.json()
        mode = state["mode"]
        stream = bool(body.get("stream"))
        if mode == "r429":
            return web.json_response(
                {"error": {"message": "rate limited", "type": "rate_limit_error"}}, status=429,
                headers={"Retry-After": "2"})
        if mode == "r500":
            return web.json_response(
                {"error": {"message": "upstream broke", "type": "server_error"}}, status=500)
        if mode == "stall_first":
            await asyncio.sleep(STALL_SECONDS)
        if mode == "slow":
            await asyncio.sleep(0.3)
        if not stream:
            payload = json.dumps(completion(body.get("model", "m"))).encode()
            if mode not in ("stall_mid", "truncate"):
                return web.Response(body=payload, content_type="application/json")
            resp = web.StreamResponse(headers={"Content-Type": "application/json",
                                               "Content-Length": str(len(payload))})
            await resp.prepare(request)
            await resp.write(payload[: len(payload) // 2])
            if mode == "stall_mid":
                await asyncio.sleep(STALL_SECONDS)
            request.transport.close()
            return resp
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(CHUNKS):
            await resp.write(event({"id": "c", "object": "chat.completion.chunk", "choices": [
                {"index": 0, "delta": {"content": f"part{i} "}, "finish_reason": None}]}))
            if i == 1 and mode == "stall_mid":
                await asyncio.sleep(STALL_SECONDS)
            if i == 1 and mode == "truncate":
                request.transport.close()
                return resp
            await asyncio.sleep(CHUNK_GAP)
        await resp.write(event({"id": "c", "object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": CHUNKS, "total_tokens": 18}}))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/_chaos", control)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None,
                reuse_address=True)


# ---------------------------------------------------------------------------------------------
# The parent: processes, load, faults, checks.

children = []  # every process started, ended on the way out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


class Upstream:
    def __init__(self, name):
        self.name = name
        self.port = free_port()
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--upstream",
                                      str(self.port)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        if not wait_listening(self.port):
            raise SystemExit(f"upstream {self.name} did not start")

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    async def mode(self, session, mode):
        async with session.post(f"http://127.0.0.1:{self.port}/_chaos",
                                json={"mode": mode}) as r:
            await r.read()


class Redis:
    def __init__(self, work):
        self.port = free_port()
        self.work = work
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.work], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        if not wait_listening(self.port):
            raise SystemExit("redis-server did not start")

    def kill(self):
        self.proc.kill()
        self.proc.wait()


CONFIG = """listen: 127.0.0.1:{port}
state_dir: {state}
server: {{request_timeout: 15s}}
redis: {{url: "redis://127.0.0.1:{redis}"}}
custom_models:
  - {{id: primary, endpoint: "http://127.0.0.1:{p}/v1", model: m, probe: none, timeout: 1s,
     idle_timeout: 1s, fallback: [custom:secondary, custom:tertiary],
     cost: {{input: 0.10, output: 0.20}}, description: "{description}"}}
  - {{id: secondary, endpoint: "http://127.0.0.1:{s}/v1", model: m, probe: none, timeout: 2s,
     idle_timeout: 1s, cost: {{input: 0.10, output: 0.20}}}}
  - {{id: tertiary, endpoint: "http://127.0.0.1:{t}/v1", model: m, probe: none, timeout: 2s,
     idle_timeout: 1s, cost: {{input: 0.10, output: 0.20}}}}
aliases:
  chaos: custom:primary
health:
  active: {{interval: 1h}}
  # Health keeps every attempt of the window (24 bytes each): at this rate a 5-minute window
  # holds ~10 MB per target, and its peaks would read as growth for minutes. 10 s fills
  # within the warm-up, so RSS after it is the steady state.
  window: 10s
  outlier: {{consecutive_failures: 5, base_ejection_time: 2s, max_ejection_time: 10s}}
logging: {{level: warn}}
"""

ROUTES = [("chat", False), ("chat", True), ("messages", False), ("messages", True),
          ("responses", False), ("responses", True)]
PATHS = {"chat": "/v1/chat/completions", "messages": "/v1/messages", "responses": "/v1/responses"}
METRIC_ROUTES = {"chat": "/v1/chat/completions", "messages": "/v1/messages",
                 "responses": "/v1/responses"}


def request_body(route, stream):
    if route == "chat":
        return {"model": "chaos", "stream": stream,
                "messages": [{"role": "user", "content": "hello"}]}
    if route == "messages":
        return {"model": "chaos", "stream": stream, "max_tokens": 64,
                "messages": [{"role": "user", "content": "hello"}]}
    return {"model": "chaos", "stream": stream, "input": "hello"}


def stream_ending(route, text):
    """complete, error (an error event: a clear end) or truncated."""
    if route == "chat":
        if "data: [DONE]" in text:
            return "complete"
        return "error" if '"error"' in text else "truncated"
    if route == "messages":
        if "event: message_stop" in text:
            return "complete"
        return "error" if "event: error" in text else "truncated"
    if "event: response.completed" in text or "event: response.incomplete" in text:
        return "complete"
    if "event: error" in text or "event: response.failed" in text:
        return "error"
    return "truncated"


def clear_error(route, text):
    try:
        body = json.loads(text)
    except ValueError:
        return False
    if route == "messages":
        return body.get("type") == "error" and "message" in body.get("error", {})
    return isinstance(body.get("error"), dict) and "message" in body["error"]


class Load:
    def __init__(self, base, concurrency):
        self.base = base
        self.concurrency = concurrency
        self.results = {}  # request id -> dict
        self.abandon = False  # clients walk away from half the streams
        self.sent = 0

    async def one(self, session, rid, route, stream):
        r = {"route": route, "stream": stream, "status": None, "outcome": "unanswered"}
        self.results[rid] = r
        headers = {"x-request-id": rid, "content-type": "application/json"}
        leave = self.abandon and stream and (hash(rid) % 2 == 0)
        try:
            async with session.post(self.base + PATHS[route],
                                    data=json.dumps(request_body(route, stream)),
                                    headers=headers) as resp:
                r["status"] = resp.status
                r["target"] = resp.headers.get("x-modelmux-target")
                r["attempts"] = resp.headers.get("x-modelmux-attempts")
                r["echo"] = resp.headers.get("x-request-id")
                if stream and resp.status == 200:
                    if leave:
                        await resp.content.readany()
                        resp.close()
                        r["outcome"] = "left"
                        return
                    text = (await resp.read()).decode(errors="replace")
                    r["outcome"] = stream_ending(route, text)
                    return
                text = (await resp.read()).decode(errors="replace")
                if resp.status == 200:
                    ok = "choices" in text or '"content"' in text or '"output"' in text
                    r["outcome"] = "complete" if ok else "malformed"
                else:
                    r["outcome"] = "error" if clear_error(route, text) else "unclear_error"
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            r["outcome"] = "unanswered" if r["status"] is None else "cut"
            r["why"] = repr(e)

    def session(self):
        connector = aiohttp.TCPConnector(limit=self.concurrency, force_close=False)
        return aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=60))

    async def closed_loop(self, seconds, prefix):
        """The throughput of the mix with nothing failing: requests per second."""
        done = 0
        stop = time.monotonic() + seconds
        async with self.session() as session:
            async def worker(w):
                nonlocal done
                n = 0
                while time.monotonic() < stop:
                    route, stream = ROUTES[(w + n) % len(ROUTES)]
                    await self.one(session, f"{prefix}-{w}-{n}", route, stream)
                    n += 1
                    done += 1
            started = time.monotonic()
            await asyncio.gather(*(worker(w) for w in range(self.concurrency)))
            return done / (time.monotonic() - started)

    async def open_loop(self, rate, seconds, prefix):
        """Starts requests on a fixed schedule; past `concurrency` in flight, starts wait."""
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(self.concurrency)
        tasks = set()
        self.late = 0
        async with self.session() as session:
            t0 = loop.time()
            i = 0
            while True:
                at = t0 + i / rate
                if at - t0 >= seconds:
                    break
                if at > loop.time():
                    await asyncio.sleep(at - loop.time())
                await gate.acquire()
                if loop.time() - at > 1.0:
                    self.late += 1
                route, stream = ROUTES[i % len(ROUTES)]
                task = asyncio.create_task(self.one(session, f"{prefix}-{i}", route, stream))
                task.add_done_callback(lambda _t: gate.release())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
                self.sent += 1
            await asyncio.gather(*list(tasks))


def read_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def slope_mib_per_min(samples):
    """Least-squares slope of (seconds, kB) samples, in MiB per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mx = sum(s for s, _ in samples) / n
    my = sum(v for _, v in samples) / n
    var = sum((s - mx) ** 2 for s, _ in samples)
    if var == 0:
        return 0.0
    k = sum((s - mx) * (v - my) for s, v in samples) / var  # kB per second
    return k * 60 / 1024


def requests_by_route(metrics_text):
    counts = {}
    for line in metrics_text.splitlines():
        if line.startswith("modelmux_requests_total{"):
            labels, value = line.rsplit(" ", 1)
            route = labels.split('route="', 1)[1].split('"', 1)[0]
            counts[route] = counts.get(route, 0) + int(float(value))
    return counts


def answered_by_path(results):
    """Answered requests counted by the route path /metrics labels them with."""
    counts = {}
    for r in results:
        if r["status"] is not None:
            path = METRIC_ROUTES[r["route"]]
            counts[path] = counts.get(path, 0) + 1
    return counts


async def fetch_text(url):
    async with aiohttp.ClientSession() as s:
        async with s.get(url) as r:
            return await r.text()


async def main_async(args):
    work = tempfile.mkdtemp(prefix="modelmux-chaos-")
    state = os.path.join(work, "state")
    redis = Redis(work)
    children.append(redis)
    ups = {name: Upstream(name) for name in ("primary", "secondary", "tertiary")}
    children.extend(ups.values())
    config = os.path.join(work, "config.yaml")

    def write_config(description):
        with open(config, "w") as f:
            f.write(CONFIG.format(port=port, state=state, redis=redis.port, p=ups["primary"].port,
                                  s=ups["secondary"].port, t=ups["tertiary"].port,
                                  description=description))

    port = free_port()
    write_config("generation 0")
    log_path = os.path.join(work, "modelmux.log")
    log = open(log_path, "w")
    daemon = subprocess.Popen([os.path.join(args.build, "modelmux"), "serve", "-c", config],
                              stdout=subprocess.DEVNULL, stderr=log)
    children.append(daemon)
    if not wait_listening(port):
        raise SystemExit("modelmux did not start: " + open(log_path).read())
    base = f"http://127.0.0.1:{port}"

    load = Load(base, args.concurrency)
    throughput = await load.closed_loop(args.measure_seconds, "warm")
    rate = 0.8 * throughput
    print(f"throughput with the mix, closed loop at c={args.concurrency}: {throughput:.0f} req/s; "
          f"chaos load at {rate:.0f} req/s for {args.minutes} min", flush=True)

    generation = 0
    control = aiohttp.ClientSession()

    async def modes(**m):
        for name, mode in m.items():
            await ups[name].mode(control, mode)

    def restart(name):
        if ups[name].proc.poll() is not None:
            ups[name].start()

    async def reload():
        nonlocal generation
        generation += 1
        write_config(f"generation {generation}")
        daemon.send_signal(signal.SIGHUP)

    # (name, begin, end): each period begins its fault and ends it.
    cycle = [
        ("steady", None, None),
        ("primary killed", lambda: ups["primary"].kill(), lambda: restart("primary")),
        ("primary stalls before the first byte", lambda: modes(primary="stall_first"),
         lambda: modes(primary="normal")),
        ("primary stalls mid-answer", lambda: modes(primary="stall_mid"),
         lambda: modes(primary="normal")),
        ("primary truncates its answers", lambda: modes(primary="truncate"),
         lambda: modes(primary="normal")),
        ("429 storm with Retry-After", lambda: modes(primary="r429"),
         lambda: modes(primary="normal")),
        ("500s from the primary", lambda: modes(primary="r500"), lambda: modes(primary="normal")),
        ("primary killed, secondary slow",
         lambda: (ups["primary"].kill(), modes(secondary="slow"))[1],
         lambda: (restart("primary"), modes(secondary="normal"))[1]),
        ("SIGHUP with a changed config", reload, None),
        ("Redis killed", lambda: redis.kill(), lambda: redis.start()),
        ("the whole chain down",
         lambda: (ups["primary"].kill(), modes(secondary="stall_first", tertiary="r500"))[1],
         lambda: (restart("primary"), modes(secondary="normal", tertiary="normal"))[1]),
        ("clients walk away mid-stream", lambda: setattr(load, "abandon", True),
         lambda: setattr(load, "abandon", False)),
    ]

    async def step(action):
        if action:
            r = action()
            if asyncio.iscoroutine(r):
                await r

    async def faults(period, stop, ran):
        """The cycle, period seconds a fault, until stop is set."""
        i = 0
        while not stop.is_set():
            name, begin, end = cycle[i % len(cycle)]
            ran.append(name)
            await step(begin)
            try:
                await asyncio.wait_for(stop.wait(), period)
            except asyncio.TimeoutError:
                pass
            await step(end)
            i += 1

    async def under_faults(period, seconds, prefix, ran):
        stop = asyncio.Event()
        fault_task = asyncio.create_task(faults(period, stop, ran))
        await load.open_loop(rate, seconds, prefix)
        stop.set()
        await fault_task

    # Warm-up, part two: every fault once, 3 s each. The first time a fault's path runs it
    # allocates for good (metric series, buffers at a new high-water mark); what the measured
    # run must show is that nothing grows after that.
    await under_faults(3, 3 * len(cycle), "rehearsal", [])
    # Idle: modelmux closes upstream connections unused for 4 s.
    await asyncio.sleep(5)
    idle_fds = open_fds(daemon.pid)
    warm_ids = set(load.results)
    before = answered_by_path(load.results.values())

    seconds = args.minutes * 60
    rss = []
    periods_run = []
    sampling = asyncio.Event()

    async def sample():
        t0 = time.monotonic()
        while not sampling.is_set():
            rss.append((time.monotonic() - t0, read_kb(daemon.pid, "VmRSS:")))
            try:
                await asyncio.wait_for(sampling.wait(), 5)
            except asyncio.TimeoutError:
                pass

    sampler = asyncio.create_task(sample())
    await under_faults(PERIOD_SECONDS, seconds, "chaos", periods_run)
    sampling.set()
    await sampler
    await control.close()

    # Descriptors back to the idle count once the clients have gone.
    fds_after = open_fds(daemon.pid)
    deadline = time.monotonic() + 10
    while fds_after > idle_fds and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        fds_after = open_fds(daemon.pid)
    # Metrics count a request when the usage writer takes its record (within about a second of
    # the answer): wait for them to settle.
    expected = answered_by_path(load.results.values())
    deadline = time.monotonic() + 10
    while True:
        after = requests_by_route(await fetch_text(base + "/metrics"))
        if all(after.get(p, 0) >= n for p, n in expected.items()) or \
                time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)

    sigterm = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    try:
        code = daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        daemon.kill()
        code = daemon.wait()
    stop_seconds = time.monotonic() - sigterm
    log.close()
    redis.kill()
    for u in ups.values():
        if u.proc.poll() is None:
            u.kill()

    # ---- the checks ----
    chaos = {k: v for k, v in load.results.items() if k not in warm_ids}
    outcomes = {}
    for r in chaos.values():
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    statuses = {}
    for r in chaos.values():
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    answered = [k for k, r in chaos.items() if r["status"] is not None]
    unanswered = len(chaos) - len(answered)
    truncated = outcomes.get("truncated", 0) + outcomes.get("cut", 0)
    unclear = outcomes.get("unclear_error", 0) + outcomes.get("malformed", 0)

    usage = {}
    duplicates = 0
    usage_lines = 0
    with open(os.path.join(state, "usage.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            rid = rec.get("request_id", "")
            if not rid.startswith("chaos-"):
                continue
            usage_lines += 1
            if rid in usage:
                duplicates += 1
            usage[rid] = rec
    missing = [k for k in answered if k not in usage]
    mismatched = []
    for k in answered:
        rec, r = usage.get(k), chaos[k]
        if rec is None:
            continue
        target_ok = r.get("target") is None or rec.get("target") == r["target"]
        attempts_ok = r.get("attempts") is None or str(rec.get("attempts")) == r["attempts"]
        echo_ok = r.get("echo") == k
        if not (target_ok and attempts_ok and echo_ok):
            mismatched.append(k)

    metric_rows = []
    metrics_ok = True
    for route, path in METRIC_ROUTES.items():
        client = sum(1 for k in answered if chaos[k]["route"] == route)
        counted = after.get(path, 0) - before.get(path, 0)
        metric_rows.append(f"{route} {counted}/{client}")
        metrics_ok = metrics_ok and counted == client

    half = [s for s in rss if s[0] >= seconds / 2]
    # Bounded state reaches its high-water marks under fault peaks over the first half hour or
    # so (+0.1 to 0.2 MiB/min, then flat: the 60-minute run's series). A run of 10 minutes or
    # more is held to 0.1 MiB/min; a shorter one cannot tell that creep from a leak at that bar,
    # so it is held to 1 MiB/min, which still catches a leak of ~15 bytes a request here.
    rss_bar = 0.1 if args.minutes >= 10 else 1.0
    slope = slope_mib_per_min(half)

    checks = [
        ("requests sent / answered / unanswered",
         f"{len(chaos)} / {len(answered)} / {unanswered}", unanswered == 0),
        ("answers: complete / error in the route's protocol / client left / unclear",
         f"{outcomes.get('complete', 0)} / {outcomes.get('error', 0)} / "
         f"{outcomes.get('left', 0)} / {unclear}", unclear == 0),
        ("silently truncated streams", str(truncated), truncated == 0),
        ("usage-log lines / answered requests", f"{usage_lines} / {len(answered)}",
         usage_lines == len(answered) and not missing),
        ("request ids logged twice / missing", f"{duplicates} / {len(missing)}",
         duplicates == 0 and not missing),
        ("usage target, attempts and x-request-id unlike the answer's headers",
         str(len(mismatched)), not mismatched),
        ("/metrics requests counted / answered, by route", ", ".join(metric_rows), metrics_ok),
        (f"RSS slope over the second half (MiB/min, bar {rss_bar})",
         f"{slope:+.3f} ({half[0][1] / 1024:.1f} -> {half[-1][1] / 1024:.1f} MiB)" if half else
         "no samples", bool(half) and slope <= rss_bar),
        ("open descriptors: idle before / after the load", f"{idle_fds} / {fds_after}",
         fds_after <= idle_fds),
        ("SIGTERM to exit", f"{stop_seconds * 1000:.0f} ms, exit {code}",
         code == 0 and stop_seconds <= 1.0),
    ]
    ok = all(c[2] for c in checks)
    status_text = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=lambda x: str(x[0])))
    lines = [
        f"# Chaos soak, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"`bench/chaos.sh --minutes {args.minutes}`: {len(chaos)} requests at {rate:.0f} req/s "
        f"(80 % of {throughput:.0f} req/s measured closed-loop at c={args.concurrency}), "
        f"at most {args.concurrency} in flight ({load.late} waited over 1 s for a place: a stalled "
        f"upstream holds its requests for up to 2 s); {len(periods_run)} fault periods of "
        f"{PERIOD_SECONDS} s, after a warm-up of {args.measure_seconds:.0f} s closed-loop and "
        f"every fault once for 3 s.",
        "",
        f"Statuses: {status_text}.",
        "",
        "| check | measured | |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {value} | {'ok' if good else '**FAILED**'} |"
              for name, value, good in checks]
    lines += ["", f"**Verdict: {'PASS' if ok else 'FAIL'}**", "",
              "RSS every 5 s (MiB): " + " ".join(f"{kb / 1024:.1f}" for _, kb in rss), ""]
    if not ok:
        for k in (missing[:5] + mismatched[:5]):
            lines.append(f"- {k}: client {chaos[k]} usage {usage.get(k)}")
        bad = [k for k, r in chaos.items() if r["outcome"] in ("truncated", "cut", "unanswered",
                                                               "unclear_error", "malformed")]
        for k in bad[:10]:
            lines.append(f"- {k}: {chaos[k]}")
        with open(log_path) as f:
            tail = f.read().splitlines()[-20:]
        lines += ["", "modelmux's last log lines:", "```"] + tail + ["```"]
    report = "\n".join(lines)
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report + "\n")
    return 0 if ok else 1


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--upstream":
        upstream_main(int(sys.argv[2]))
        return 0
    # A SIGTERM (a CI time limit, a kill by hand) still ends every process this started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser()
    parser.add_argument("build")
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--measure-seconds", type=float, default=10)
    parser.add_argument("--out")
    args = parser.parse_args()
    try:
        return asyncio.run(main_async(args))
    finally:
        for child in children:  # whatever happened, nothing is left running
            proc = getattr(child, "proc", child)
            if proc.poll() is None:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    sys.exit(main())
