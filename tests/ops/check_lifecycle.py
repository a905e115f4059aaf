"""modelmux as systemd runs it: sd_notify messages, reloads under load, a refused reload, and a
SIGTERM during a slow stream.

A datagram socket stands in for systemd's NOTIFY_SOCKET. A fake upstream (a Python HTTP server
on 127.0.0.1) streams an answer slowly. Checks, in order:
  READY=1 once listening;
  four threads of requests while the config is reloaded five times: every request answered 200,
  each reload framed by RELOADING=1 (with MONOTONIC_USEC) and READY=1;
  a broken config refused on SIGHUP: the old one keeps serving and the refusal is counted;
  SIGTERM while a stream is half sent: STOPPING=1, the stream still ends with [DONE], the
  daemon exits 0, and the usage log has a line for every request.

Usage: check_lifecycle.py MODELMUX_BINARY
"""
import http.server
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import modelmux_process  # noqa: E402

binary = sys.argv[1]
work = tempfile.mkdtemp(prefix="modelmux-lifecycle-")
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)


class SlowUpstream(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible server whose streams take a while: ten chunks, 0.2 s apart."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = b'{"object":"list","data":[]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(data):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        for i in range(10):
            chunk(b'data: {"choices":[{"index":0,"delta":{"content":"%d "}}]}\n\n' % i)
            time.sleep(0.2)  # the upstream is slow, which is what this test is about
        chunk(b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
              b'"usage":null}\n\n')
        chunk(b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":10,'
              b'"total_tokens":15}}\n\n')
        chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")


upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowUpstream)
threading.Thread(target=upstream.serve_forever, daemon=True).start()

config = os.path.join(work, "config.yaml")


def write_config(extra=""):
    with open(config, "w") as f:
        f.write(f"""listen: 127.0.0.1:0
state_dir: {work}/state
custom_models:
  - id: demo
    type: mock
  - id: slow
    endpoint: http://127.0.0.1:{upstream.server_address[1]}/v1
    model: slow
{extra}""")


write_config()
notify_path = os.path.join(work, "notify.sock")
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.bind(notify_path)
notify.settimeout(20)
env = dict(os.environ, NOTIFY_SOCKET=notify_path)
daemon, base, log_lines = modelmux_process.start(binary, config, env)


def receive():
    return notify.recv(4096).decode()


def post(path, body):
    return modelmux_process.post(base, path, body)


check(receive() == "READY=1", "READY=1 first")

# Reloads under load.
requests_sent = 0
sent_changed = threading.Condition()
errors = []
stop_load = threading.Event()


def load():
    global requests_sent
    while not stop_load.is_set():
        try:
            status, _ = post("/v1/chat/completions",
                             {"model": "demo", "messages": [{"role": "user", "content": "hi"}]})
            if status != 200:
                errors.append(status)
        except Exception as e:  # a refused or dropped request is what this test looks for
            errors.append(repr(e))
        with sent_changed:
            requests_sent += 1
            sent_changed.notify_all()


threads = [threading.Thread(target=load) for _ in range(4)]
for t in threads:
    t.start()
for i in range(5):
    # Each reload lands while requests are flowing: at least ten more since the last one.
    with sent_changed:
        sent_changed.wait_for(lambda: requests_sent >= 10 * (i + 1), timeout=20)
    write_config(f"aliases:\n  round{i}: custom:demo\n")
    daemon.send_signal(signal.SIGHUP)
    reloading = receive()
    check(reloading.startswith("RELOADING=1\nMONOTONIC_USEC="), f"reload {i}: {reloading!r}")
    check(receive() == "READY=1", f"READY=1 after reload {i}")
stop_load.set()
for t in threads:
    t.join()
check(not errors, f"requests failed during reloads: {errors[:5]}")
check(requests_sent >= 50, f"only {requests_sent} requests during the reloads")

# A broken config is refused; the old one keeps serving.
with open(config, "w") as f:
    f.write("listen: [not, an, address\n")
daemon.send_signal(signal.SIGHUP)
check(receive().startswith("RELOADING=1"), "RELOADING=1 for the broken config")
check(receive() == "READY=1", "READY=1 after the refused reload")
status, _ = post("/v1/chat/completions",
                 {"model": "round4", "messages": [{"role": "user", "content": "still here"}]})
check(status == 200, "the old config serves after a refused reload")
with urllib.request.urlopen(base + "/metrics", timeout=20) as r:
    metrics = r.read().decode()
check('modelmux_config_reloads_total{result="error"} 1' in metrics, "the refusal is counted")
check('modelmux_config_reloads_total{result="ok"} 5' in metrics, "five reloads counted")
write_config()

# SIGTERM during a slow stream: the stream still ends whole.
stream_body = []
first_chunk = threading.Event()


def stream():
    req = urllib.request.Request(
        base + "/v1/chat/completions",
        data=json.dumps({"model": "custom:slow", "stream": True,
                         "messages": [{"role": "user", "content": "go slowly"}]}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        for line in r:
            stream_body.append(line.decode())
            first_chunk.set()


streamer = threading.Thread(target=stream)
streamer.start()
check(first_chunk.wait(20), "the stream began")
daemon.send_signal(signal.SIGTERM)
check(receive() == "STOPPING=1", "STOPPING=1 on SIGTERM")
streamer.join(30)
text = "".join(stream_body)
check("data: [DONE]" in text and '"9 "' in text, f"the stream ended whole: {text[-200:]!r}")
check(daemon.wait(timeout=30) == 0, "exit 0 after the drain")

usage = open(os.path.join(work, "state", "usage.jsonl")).read().splitlines()
records = [json.loads(l) for l in usage]
check(len(records) == requests_sent + 1 + 1,
      f"usage lines {len(records)} for {requests_sent} + 2 requests")
slow = [r for r in records if r["model"] == "custom:slow"]
check(len(slow) == 1 and slow[0]["output_tokens"] == 10 and slow[0]["stream"],
      f"the drained stream's usage line: {slow}")

upstream.shutdown()
shutil.rmtree(work, ignore_errors=True)
if failures:
    print("\n".join(failures))
    sys.exit(1)
print(f"ok: {requests_sent} requests across 5 reloads, none failed; the drained stream ended whole")
