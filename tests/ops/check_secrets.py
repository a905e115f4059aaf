#!/usr/bin/python3
"""No secret leaves modelmux: every configured key is set to a distinctive value, every surface
is exercised, and everything produced is searched for the values.

Surfaces: the daemon's log at debug level in text and in JSON format (across a reload), every
answer body and header (proxied answers, errors for bad client and admin keys, an upstream that
echoes the credentials it received back in its error body, the 502 attempt list), /metrics,
/health, /v1/models, /api/status, /api/usage, /api/models/custom and its monitoring, the status
page, `modelmux check`, `route`, `health`, `report` and `status`, and every file in state_dir
(the sealed models.yaml, the usage log).

Usage: check_secrets.py MODELMUX_BINARY
"""
import base64
import http.server
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import modelmux_process  # noqa: E402

SECRETS = {
    "provider key (env)": "sk-secret-provider-env-8f2a91",
    "provider second key (inline)": "sk-secret-provider-inline-77c3d0",
    "custom model key (file)": "sk-secret-custom-file-4b19e2",
    "client key": "mm-secret-client-5d0c7a",
    "admin key": "mm-secret-admin-e3a8f1",
    "runtime model key (admin API)": "sk-secret-runtime-9a6b24",
    "url password": "secret-url-password-31f0",
    "redis password": "secret-redis-password-6c2e",
}


class EchoingUpstream(http.server.BaseHTTPRequestHandler):
    """A hostile upstream: 401 with the credentials it was sent in its error body and headers;
    /v1/models answers so the active probe and `modelmux health` have something to read."""

    def log_message(self, *args):
        pass

    def answer(self, status, body, extra=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer(401, {"error": {"message": "bad key " + self.headers.get("Authorization", ""),
                                    "type": "invalid_request_error"}},
                    [("WWW-Authenticate", "Bearer " + self.headers.get("Authorization", ""))])

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        auth = self.headers.get("Authorization", "") + self.headers.get("x-api-key", "")
        status = 401 if "echo" in self.path or "v1" in self.path else 500
        self.answer(status, {"error": {"message": "Incorrect API key provided: " + auth,
                                       "type": "invalid_request_error", "code": auth}},
                    [("X-Echo", auth)])


def main():
    binary = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="modelmux-secrets-")
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EchoingUpstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    up = f"127.0.0.1:{upstream.server_address[1]}"
    key_file = os.path.join(work, "custom.key")
    with open(key_file, "w") as f:
        f.write(SECRETS["custom model key (file)"] + "\n")
    config = os.path.join(work, "config.yaml")

    def write_config(fmt):
        with open(config, "w") as f:
            f.write(f"""listen: 127.0.0.1:0
state_dir: {work}/state
auth:
  client_keys: ["${{env:MM_CLIENT_KEY}}"]
  admin_key: "${{env:MM_ADMIN_KEY}}"
providers:
  echo:
    type: openai
    base_url: http://{up}/v1
    api_keys: ["${{env:MM_PROVIDER_KEY}}", "{SECRETS["provider second key (inline)"]}"]
    models:
      gpt-4o: {{cost: {{input: 2.50, output: 10.00}}}}
  claude:
    type: anthropic
    base_url: http://{up}/v1
    api_keys: ["${{env:MM_PROVIDER_KEY}}"]
custom_models:
  - id: filekey
    type: openai
    endpoint: http://{up}/v1
    model: m
    api_key: "${{file:{key_file}}}"
    fallback: ["echo:gpt-4o"]
  - id: demo
    type: mock
routing:
  reference_model: echo:gpt-4o
health:
  active: {{interval: 200ms}}
logging: {{level: debug, format: {fmt}}}
redis: {{url: "redis://127.0.0.1:1/0", password: "${{env:MM_REDIS_PASSWORD}}"}}
""")

    env = dict(os.environ, MM_CLIENT_KEY=SECRETS["client key"], MM_ADMIN_KEY=SECRETS["admin key"],
               MM_PROVIDER_KEY=SECRETS["provider key (env)"],
               MM_REDIS_PASSWORD=SECRETS["redis password"])
    write_config("text")
    daemon, base, log_lines = modelmux_process.start(binary, config, env)
    produced = []  # (where, text)

    def call(method, path, body=None, key=None, header="Authorization"):
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers[header] = ("Bearer " + key) if header == "Authorization" else key
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, text, hdrs = r.status, r.read().decode(errors="replace"), r.headers
        except urllib.error.HTTPError as e:
            status, text, hdrs = e.code, e.read().decode(errors="replace"), e.headers
        produced.append((f"{method} {path} -> {status} body", text))
        produced.append((f"{method} {path} -> {status} headers", str(hdrs)))
        return status

    client = SECRETS["client key"]
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    # Client keys: missing, wrong, right (Bearer and x-api-key).
    assert call("POST", "/v1/chat/completions", dict(chat, model="custom:demo")) == 401
    assert call("POST", "/v1/chat/completions", dict(chat, model="custom:demo"),
                key="wrong-" + client) == 401
    assert call("POST", "/v1/chat/completions", dict(chat, model="custom:demo"), key=client) == 200
    assert call("POST", "/v1/chat/completions", dict(chat, model="custom:demo"), key=client,
                header="x-api-key") == 200
    # Upstreams that echo the credentials they got: as the client's 4xx, and as a 502 chain.
    for model in ("echo:gpt-4o", "custom:filekey", "claude:claude-x"):
        for stream in (False, True):
            call("POST", "/v1/chat/completions", dict(chat, model=model, stream=stream), key=client)
            call("POST", "/v1/messages", {"model": model, "max_tokens": 5, "stream": stream,
                                          "messages": chat["messages"]}, key=client)
    # Admin: missing, wrong, right; a runtime model with a key, then its use and removal.
    runtime = {"id": "rt", "endpoint": f"http://{up}/v1", "model": "m",
               "api_key": SECRETS["runtime model key (admin API)"]}
    assert call("POST", "/api/models/custom", runtime) == 401
    assert call("POST", "/api/models/custom", runtime, key="wrong-admin") == 401
    assert call("POST", "/api/models/custom", runtime, key=SECRETS["admin key"]) == 201
    call("POST", "/v1/chat/completions", dict(chat, model="custom:rt"), key=client)
    for path in ("/metrics", "/health", "/v1/models", "/api/status", "/api/usage?period=all",
                 "/api/models/custom", "/api/models/custom/monitoring", "/", "/ui/"):
        call("GET", path, key=client)
    # The state files, while the runtime model is registered (sealed keys on disk).
    state = pathlib.Path(work, "state")
    for p in sorted(state.rglob("*")):
        if p.is_file() and p.name != "secret.key":
            produced.append((f"file {p.relative_to(work)}", p.read_bytes().decode(errors="replace")))
    # A reload into JSON logs, more traffic, then a clean stop.
    write_config("json")
    daemon.send_signal(signal.SIGHUP)
    for model in ("echo:gpt-4o", "custom:rt", "custom:demo"):
        call("POST", "/v1/chat/completions", dict(chat, model=model), key=client)
    call("GET", "/api/status", key=client)
    # The CLI, as an operator runs it, while the daemon still serves.
    port = base.rsplit(":", 1)[1]
    for args in (["check", "-c", config], ["route", "-c", config, "custom:filekey"],
                 ["health", "-c", config], ["report", "-c", config],
                 ["report", "-c", config, "--json"],
                 ["status", "-c", config, "--url", f"http://127.0.0.1:{port}"]):
        r = subprocess.run([binary] + args, env=env, capture_output=True, text=True, timeout=60)
        produced.append(("modelmux " + " ".join(args[:1]), r.stdout + r.stderr))
    # A base URL with a password in it is refused, and the refusal does not repeat it.
    bad = os.path.join(work, "userinfo.yaml")
    with open(bad, "w") as f:
        f.write(f"providers:\n  p:\n    type: openai\n"
                f"    base_url: http://user:{SECRETS['url password']}@{up}/v1\n")
    r = subprocess.run([binary, "check", "-c", bad], env=env, capture_output=True, text=True)
    assert r.returncode == 1, r.stdout
    produced.append(("modelmux check (credentials in a URL)", r.stdout + r.stderr))
    assert call("DELETE", "/api/models/custom/rt", key=SECRETS["admin key"]) == 200
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=30)
    produced.append(("daemon log", "".join(log_lines)))
    for p in sorted(state.rglob("*")):
        if p.is_file() and p.name != "secret.key":
            produced.append((f"file {p.relative_to(work)} (after stop)",
                             p.read_bytes().decode(errors="replace")))
    upstream.shutdown()

    # The values as they could appear: plain, base64 (Basic auth), JSON- and URL-escaped forms
    # are the same for these characters.
    leaks = []
    for name, value in SECRETS.items():
        forms = {value, base64.b64encode(value.encode()).decode()}
        for where, text in produced:
            for form in forms:
                if form in text:
                    at = text.index(form)
                    leaks.append(f"{name} in {where}: ...{text[max(0, at - 80):at + len(form) + 20]!r}")
    total = sum(len(t) for _, t in produced)
    log_count = len(log_lines)
    if leaks:
        print("\n".join(leaks))
        print(f"FAIL: {len(leaks)} leak(s)")
        sys.exit(1)
    assert log_count > 10, f"only {log_count} log lines: the debug log was not captured"
    print(f"ok: {len(SECRETS)} secrets, {len(produced)} outputs ({total} bytes, "
          f"{log_count} log lines): no secret found")


if __name__ == "__main__":
    main()
