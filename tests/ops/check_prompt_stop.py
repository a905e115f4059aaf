"""modelmux stops promptly under systemd: SIGTERM with nothing in flight exits 0 at once,
whatever came before (SPEC §9).

A datagram socket stands in for systemd's NOTIFY_SOCKET. For each history — nothing served, a
request on a connection the client closed, an idle keep-alive connection, an upstream that never
sent its first byte (timed out), a stream whose upstream went silent (idle timeout) — the daemon
is started, the history played, SIGTERM sent, and the time until the process exits measured.
Each must say STOPPING=1, exit 0, within the bar, and have written a usage line per request.

Usage: check_prompt_stop.py MODELMUX_BINARY
"""
import http.client
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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import modelmux_process  # noqa: E402

binary = sys.argv[1]
work = tempfile.mkdtemp(prefix="modelmux-stop-")
failures = []
# SIGTERM to exit, the process's own teardown and this script's 1 ms polling included.
BAR_SECONDS = 0.1
release = threading.Event()


class Hanging(http.server.BaseHTTPRequestHandler):
    """/v1/chat/completions: a non-streaming request hangs before its first byte; a streaming
    one sends one event and then goes silent."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if b'"stream": true' not in body:
            release.wait(30)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        event = b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
        self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
        self.wfile.flush()
        release.wait(30)


upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hanging)
threading.Thread(target=upstream.serve_forever, daemon=True).start()


def chat(model, stream=False):
    return json.dumps({"model": model, "stream": stream,
                       "messages": [{"role": "user", "content": "hi"}]})


def nothing(port):
    return 0


def closed_connection(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/v1/chat/completions", chat("demo"),
              {"Content-Type": "application/json", "Connection": "close"})
    assert c.getresponse().read()
    c.close()
    return 1


held = []


def idle_keep_alive(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/v1/chat/completions", chat("demo"), {"Content-Type": "application/json"})
    assert c.getresponse().read()
    held.append(c)  # left open, idle
    return 1


def first_byte_timeout(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/v1/chat/completions", chat("custom:hang"),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    assert r.status == 504, r.status
    c.close()
    return 1


def idle_timeout(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/v1/chat/completions", chat("custom:hang", True),
              {"Content-Type": "application/json"})
    text = c.getresponse().read().decode()
    assert '"error"' in text, text
    c.close()
    return 1


results = []
for history in (nothing, closed_connection, idle_keep_alive, first_byte_timeout, idle_timeout):
    state = os.path.join(work, history.__name__)
    config = os.path.join(work, history.__name__ + ".yaml")
    with open(config, "w") as f:
        f.write(f"""listen: 127.0.0.1:0
state_dir: {state}
server: {{request_timeout: 20s}}
custom_models:
  - {{id: demo, type: mock}}
  - {{id: hang, endpoint: "http://127.0.0.1:{upstream.server_address[1]}/v1", model: m,
     probe: none, timeout: 200ms, idle_timeout: 200ms}}
""")
    notify_path = os.path.join(work, history.__name__ + ".sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(10)
    daemon, base, log_lines = modelmux_process.start(
        binary, config, dict(os.environ, NOTIFY_SOCKET=notify_path))
    ready = notify.recv(4096).decode()
    requests = history(int(base.rsplit(":", 1)[1]))
    sent = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    stopping = notify.recv(4096).decode()
    while daemon.poll() is None and time.monotonic() - sent < 30:
        time.sleep(0.001)
    took = time.monotonic() - sent
    code = daemon.poll()
    if code is None:
        daemon.kill()
        daemon.wait()
    usage_path = os.path.join(state, "usage.jsonl")
    usage = open(usage_path).read().splitlines() if os.path.exists(usage_path) else []
    results.append(f"{history.__name__}: exit {code} in {took * 1000:.0f} ms")
    name = history.__name__
    if ready != "READY=1" or stopping != "STOPPING=1":
        failures.append(f"{name}: notify said {ready!r} then {stopping!r}")
    if code != 0:
        failures.append(f"{name}: exit {code}")
    if took > BAR_SECONDS:
        failures.append(f"{name}: SIGTERM took {took * 1000:.0f} ms to exit")
    if len(usage) != requests:
        failures.append(f"{name}: {len(usage)} usage lines for {requests} requests")
    notify.close()
    for c in held:
        c.close()
    held.clear()

release.set()
upstream.shutdown()
shutil.rmtree(work, ignore_errors=True)
print("\n".join(results))
if failures:
    print("\n".join(failures))
    sys.exit(1)
print("ok: every stop exited 0 within", BAR_SECONDS * 1000, "ms")
