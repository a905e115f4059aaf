// The status page in a real browser, as a user sees it: Debian's chromium (headless), driven by
// playwright-core, against a modelmux daemon with client keys, a working fake upstream and a
// target whose server refuses connections. The page must ask for the key, then show the live
// targets, the failing one, traffic, and the month's spend and savings, and update as traffic
// arrives; it must make no request anywhere but the daemon, and fit a phone's width.
// Usage: node status_page.mjs MODELMUX_BINARY WORKDIR (the screenshot goes to WORKDIR).
import { startDaemon } from "./modelmux_daemon.mjs";
import { createServer } from "node:http";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const [binary, workdir] = process.argv.slice(2);
const CLIENT_KEY = "ui-test-client-key-7f3a";

// An OpenAI-compatible model server on 127.0.0.1: every chat answer uses 100,000 input and
// 20,000 output tokens, so spend and savings show in whole dollars.
function startFakeUpstream() {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({
        id: "chatcmpl-ui", object: "chat.completion", created: 1, model: "local-model",
        choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
        usage: { prompt_tokens: 100000, completion_tokens: 20000, total_tokens: 120000 },
      }));
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

// A port nothing listens on: connections to it are refused.
function closedPort() {
  const server = createServer();
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    }));
}

const upstream = await startFakeUpstream();
const upstreamPort = upstream.address().port;
const deadPort = await closedPort();
const dir = mkdtempSync(join(tmpdir(), "modelmux-ui-"));
const config = join(dir, "config.yaml");
writeFileSync(config, `listen: 127.0.0.1:0
state_dir: ${dir}/state
auth:
  client_keys: ["${CLIENT_KEY}"]
providers:
  openai:
    type: openai
    base_url: http://127.0.0.1:${deadPort}/v1
    models:
      gpt-4o: {context_window: 128000, cost: {input: 2.50, output: 10.00}}
custom_models:
  - id: local
    type: openai
    endpoint: http://127.0.0.1:${upstreamPort}/v1
    model: local-model
    cost: {input: 0.10, output: 0.20}
  - id: broken
    type: openai
    endpoint: http://127.0.0.1:${deadPort}/v1
    model: gone
    cost: {input: 0.10, output: 0.20}
    fallback: ["custom:local"]
aliases:
  coder: custom:broken
routing:
  auto: [custom:local]
  reference_model: openai:gpt-4o
health:
  active: {interval: 1h}
  outlier: {consecutive_failures: 2, base_ejection_time: 5m, max_ejection_time: 10m}
budget: {monthly_usd: 50}
cache: {enabled: true, max_size: 64MiB}
`);

const { child, port } = await startDaemon(binary, config);
const origin = `http://127.0.0.1:${port}`;

async function chat(model, extra = {}) {
  const res = await fetch(`${origin}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${CLIENT_KEY}` },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hello" }], ...extra }),
  });
  assert.equal(res.status, 200, `${model} answered ${res.status}: ${await res.text()}`);
}

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox"] });
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 1400 } });
  const requested = [];
  page.on("request", (r) => requested.push(r.url()));

  // Without data the API refuses, the page asks for a key, and nothing sensitive is shown.
  const unauthorized = await fetch(`${origin}/api/status`);
  assert.equal(unauthorized.status, 401, "/api/status must want the client key");
  await page.goto(`${origin}/`);
  const keyField = page.getByLabel("Client key", { exact: true });
  await keyField.waitFor({ state: "visible" });
  assert.equal(await page.locator("#targets tbody tr").count(), 0, "no target is shown before the key");
  await keyField.fill(CLIENT_KEY);
  await page.getByRole("button", { name: "Show status" }).click();

  // The registry and the targets appear, all idle.
  const rows = page.locator("#targets tbody tr");
  await page.waitForFunction(() => document.querySelectorAll("#targets tbody tr").length === 3);
  assert.deepEqual(await rows.locator("td:first-child").allTextContents(),
    ["openai:gpt-4o", "custom:local", "custom:broken"]); // a provider by its models
  assert.equal(await page.locator("#requests").textContent(), "0");
  assert.match(await page.locator("#aliases").textContent(), /coder → custom:broken/);
  assert.match(await page.locator("#budget").textContent(), /\$50\.00 \/ month/);
  assert.equal(await page.locator("#cache").textContent(), "0 hits");
  assert.match(await page.locator("#cache-sub").textContent(), /0 answers, 0\.0 of 64 MiB/);

  // Traffic: five requests to the broken model fall back to the working one; five go direct.
  for (let i = 0; i < 5; ++i) await chat("coder");
  for (let i = 0; i < 5; ++i) await chat("custom:local");

  // The page refreshes on its own: the failing target, the counts and the money appear.
  const broken = rows.filter({ hasText: "custom:broken" });
  await broken.locator(".badge", { hasText: "ejected" }).waitFor({ timeout: 15000 });
  await page.waitForFunction(() => document.getElementById("requests").textContent === "10",
    null, { timeout: 15000 });
  assert.match(await broken.textContent(), /connect/, "the ejected target says why");
  assert.match(await broken.textContent(), /0\.0%/, "the broken target's success rate is 0%");
  const local = rows.filter({ hasText: "custom:local" });
  assert.match(await local.locator(".badge").textContent(), /healthy/);
  assert.match(await local.textContent(), /100\.0%/);
  // Ejected after two refused connections, it is skipped from then on: two fallbacks in all.
  assert.match(await broken.textContent(), /2 \(2 failed\)/);
  assert.match(await page.locator("#requests-sub").textContent(), /2 fallbacks/);

  // 10 requests of 100k in / 20k out: $0.01 + $0.004 each at the local price = $0.14; the
  // reference (gpt-4o, $2.50/$10.00) would have been $0.45 each = $4.50; savings $4.36, 96.9%.
  assert.equal(await page.locator("#spend").textContent(), "$0.14");
  assert.equal(await page.locator("#savings").textContent(), "$4.36 (96.9%)");
  assert.match(await page.locator("#savings-sub").textContent(), /against openai:gpt-4o at \$4\.50/);
  assert.match(await page.locator("#budget-sub").textContent(), /\$49\.86 left this month/);
  assert.match(await page.locator("#chart-requests-label").textContent(), /10 in 15 minutes, 0 failed/);
  assert.ok(await page.locator("#chart-requests rect").count() > 0, "the requests chart has bars");

  // It keeps updating: one more request shows without a reload.
  await chat("custom:local");
  await page.waitForFunction(() => document.getElementById("requests").textContent === "11",
    null, { timeout: 15000 });

  // A deterministic request asked twice: the second is answered from the cache, at no cost,
  // and the page counts the hit and what it saved ($0.014, the first answer's cost).
  await chat("custom:local", { temperature: 0 });
  await chat("custom:local", { temperature: 0 });
  await page.waitForFunction(() => document.getElementById("cache").textContent === "1 hit",
    null, { timeout: 15000 });
  assert.match(await page.locator("#cache-sub").textContent(), /^saved \$0\.01 · 1 answer, /);
  assert.equal(await page.locator("#spend").textContent(), "$0.17"); // 12 paid requests

  await page.screenshot({ path: join(workdir, "status-page.png"), fullPage: true });

  // A phone's width: nothing wider than the screen but the tables' own scroll areas.
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= 390, `the page is ${overflow}px wide on a 390px screen`);
  await page.screenshot({ path: join(workdir, "status-page-phone.png"), fullPage: true });

  // No request left the daemon: no CDN, no font, no analytics.
  const foreign = requested.filter((u) => !u.startsWith(origin + "/"));
  assert.deepEqual(foreign, [], "the page requested something outside the daemon");
  // No secret reached the page's text.
  assert.ok(!(await page.content()).includes(CLIENT_KEY), "the client key is in the page");
  console.log(`status page: ok (${requested.length} requests, all to the daemon); screenshot in ${workdir}`);
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  await browser.close();
  child.kill("SIGTERM");
  upstream.close();
}
process.exit(failed ? 1 : 0);
