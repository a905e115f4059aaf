"""The built modelmux as a process, for the process-level test scripts: start it on a config,
learn its port from its "listening" log line, keep its stderr drained, and POST JSON to it."""
import json
import re
import subprocess
import threading
import urllib.request


def start(binary, config, env=None):
    """Starts `modelmux serve -c config`; returns (process, base URL, the log lines so far)."""
    daemon = subprocess.Popen([binary, "serve", "-c", config], stderr=subprocess.PIPE, text=True,
                              env=env)
    port = None
    for line in daemon.stderr:
        m = re.search(r"event=listening address=127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    assert port, "modelmux did not start"
    # Keep reading stderr so the daemon never blocks on a full pipe.
    log_lines = []
    threading.Thread(target=lambda: log_lines.extend(daemon.stderr), daemon=True).start()
    return daemon, f"http://127.0.0.1:{port}", log_lines


def post(base, path, body, timeout=20):
    """POSTs body as JSON; returns (status, text)."""
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read().decode()
