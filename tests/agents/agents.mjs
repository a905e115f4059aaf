// Claude Code and Codex CLI, the real agents from npm, run headless through modelmux against
// scripted model servers (agent_fakes.mjs) of the other protocol and of their own. Each agent
// must (a) answer a plain prompt from a chat-completions-only target, (b) complete a task that
// needs its shell tool — the command really runs, its output goes back through modelmux, and
// the final answer shows it — on that target and on an Anthropic target, streamed, and (c) get
// its answer when the first target refuses connections. run.sh starts this inside a network
// namespace that has only loopback, so nothing can leave the machine.
import { startDaemon } from "../modelmux_daemon.mjs";
import { startAgentFakes, GREETING, outputFor } from "./agent_fakes.mjs";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

const binary = process.argv[2];
const bin = join(dirname(fileURLToPath(import.meta.url)), "node_modules", ".bin");
const dir = mkdtempSync(join(tmpdir(), "modelmux-agents-"));
const fakes = await startAgentFakes();
const config = join(dir, "config.yaml");
writeFileSync(
  config,
  `listen: 127.0.0.1:0
state_dir: ${dir}/state
providers:
  local:
    type: openai
    base_url: http://127.0.0.1:${fakes.chatPort}/v1
    max_output_tokens: 8192
  claude:
    type: anthropic
    base_url: http://127.0.0.1:${fakes.anthropicPort}/v1
    api_keys: [sk-ant-agent-test]
custom_models:
  - id: down
    type: openai
    endpoint: http://127.0.0.1:${fakes.deadPort}/v1
    model: gone
    probe: none
    fallback: ["local:qwen-coder"]
aliases:
  agent-local: local:qwen-coder
  agent-claude: claude:claude-local
  agent-fallback: custom:down
`,
);
const { port } = await startDaemon(binary, config);
const workdir = join(dir, "work");
mkdirSync(workdir);

function run(command, args, env) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(command, args, { cwd: workdir, env: { PATH: process.env.PATH, ...env },
      stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 180000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out, seconds: (Date.now() - started) / 1000 });
    });
  });
}

const claudeHome = join(dir, "claude-home");
mkdirSync(claudeHome);
function claude(model, prompt) {
  return run(join(bin, "claude"), ["-p", prompt, "--model", model, "--dangerously-skip-permissions"], {
    HOME: claudeHome,
    ANTHROPIC_BASE_URL: `http://127.0.0.1:${port}`,
    ANTHROPIC_API_KEY: "sk-modelmux-agent-test",
    ANTHROPIC_SMALL_FAST_MODEL: model,
    ANTHROPIC_DEFAULT_HAIKU_MODEL: model,
    // The documented switches for telemetry, error reports, updates and other traffic.
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
    DISABLE_TELEMETRY: "1",
    DISABLE_ERROR_REPORTING: "1",
    DISABLE_AUTOUPDATER: "1",
    IS_SANDBOX: "1", // root in a throwaway namespace: skipping permission prompts is allowed
  });
}

const codexHome = join(dir, "codex-home");
mkdirSync(codexHome);
writeFileSync(
  join(codexHome, "config.toml"),
  `model_provider = "modelmux"

[model_providers.modelmux]
name = "modelmux"
base_url = "http://127.0.0.1:${port}/v1"
env_key = "MODELMUX_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false
`,
);
function codex(model, prompt) {
  return run(join(bin, "codex"),
    ["exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", "-m", model, prompt], {
      HOME: codexHome,
      CODEX_HOME: codexHome,
      MODELMUX_KEY: "sk-modelmux-agent-test",
    });
}

let passed = 0;
let failed = 0;
async function check(name, fn) {
  const started = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok - ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}\n  ${String(e.stack || e).replace(/\n/g, "\n  ")}`);
  }
}

function expectIn(result, text) {
  assert.ok(result.out.includes(text), `expected "${text}" in the agent's output (exit ${result.code}):\n${result.out.slice(-3000)}`);
  assert.equal(result.code, 0, `the agent exited with ${result.code}:\n${result.out.slice(-3000)}`);
}

const nonce = () => Math.random().toString(36).slice(2, 10);
const toolPrompt = (n) => `Use your shell tool to run the command the harness expects for MMTOOL-${n}, then tell me what it printed.`;

// The last request the fake model server received for a given nonce's task.
function sawToolResult(requests, n) {
  return requests.some((r) => JSON.stringify(r.body).includes(outputFor(n)));
}

async function metrics() {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`);
  return r.text();
}

const agents = [
  { name: "Claude Code", run: claude },
  { name: "Codex CLI", run: codex },
];

for (const agent of agents) {
  await check(`${agent.name} answers a plain prompt from a chat-completions-only target`, async () => {
    const before = fakes.chatRequests.length;
    const r = await agent.run("agent-local", "Say hello.");
    expectIn(r, GREETING);
    const sent = fakes.chatRequests.slice(before).filter((q) => q.body?.messages);
    assert.ok(sent.length > 0, "the chat target received no request");
    for (const q of sent) {
      assert.equal(q.body.model, "qwen-coder");
      assert.ok(!(q.body.max_tokens > 8192), `max_tokens ${q.body.max_tokens} was not clamped to 8192`);
    }
  });

  for (const [label, model, requests] of [
    ["a chat-completions-only target", "agent-local", fakes.chatRequests],
    ["an Anthropic target", "agent-claude", fakes.anthropicRequests],
  ]) {
    await check(`${agent.name} runs a shell command through its tool on ${label}, streamed`, async () => {
      const n = nonce();
      const r = await agent.run(model, toolPrompt(n));
      expectIn(r, outputFor(n));
      assert.ok(sawToolResult(requests, n), "the tool's output never reached the model");
      assert.ok(requests.some((q) => q.body?.stream === true), "the target was never asked to stream");
    });
  }

  await check(`${agent.name} gets its answer when the first target refuses connections`, async () => {
    const r = await agent.run("agent-fallback", "Say hello.");
    expectIn(r, GREETING);
    assert.match(await metrics(), /modelmux_upstream_attempts_total\{[^}]*custom:down[^}]*\} [1-9]/);
  });
}

fakes.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
