// The built modelmux as a process, for the Node.js tests (official SDKs, the status page):
// `modelmux serve -c config`, its port learned from its "listening" log line, and a kill when
// the test's process exits however it ends.
import { spawn } from "node:child_process";

export function startDaemon(binary, config) {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ["serve", "-c", config], { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    let started = false;
    const timer = setTimeout(() => reject(new Error("modelmux did not start:\n" + log)), 10000);
    child.stderr.on("data", (d) => {
      if (started) return; // the daemon keeps logging; only its start is read
      log += d.toString();
      const m = log.match(/event=listening address=127\.0\.0\.1:(\d+)/);
      if (m) {
        started = true;
        clearTimeout(timer);
        process.on("exit", () => child.kill("SIGKILL"));
        resolve({ child, port: Number(m[1]) });
      }
    });
    child.on("exit", (code) => reject(new Error(`modelmux exited with ${code}:\n${log}`)));
  });
}
