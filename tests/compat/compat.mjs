// The official OpenAI and Anthropic SDKs, as users run them, against a modelmux daemon serving
// a mock target: a chat, a streamed chat, a message, a streamed message, embeddings, and the
// 404 for an unknown model in both SDKs' error classes. Then across the protocols: each SDK
// against a fake upstream of the other protocol (fakes.mjs), streamed and not, with a system
// prompt, two parallel tool calls whose streamed arguments must reassemble to JSON, and usage.
import { startDaemon } from "./modelmux_daemon.mjs";
import { startFakes } from "./fakes.mjs";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";

const binary = process.argv[2];
const dir = mkdtempSync(join(tmpdir(), "modelmux-compat-"));
const config = join(dir, "config.yaml");
const fakes = await startFakes();
writeFileSync(
  config,
  `listen: 127.0.0.1:0
state_dir: ${dir}/state
providers:
  claude:
    type: anthropic
    base_url: http://127.0.0.1:${fakes.anthropicPort}/v1
    api_keys: [sk-ant-fake]
  local:
    type: openai
    base_url: http://127.0.0.1:${fakes.openaiPort}/v1
custom_models:
  - id: demo
    type: mock
aliases:
  code: custom:demo
`,
);

const { child, port } = await startDaemon(binary, config);
const baseURL = `http://127.0.0.1:${port}/v1`;
const openai = new OpenAI({ baseURL, apiKey: "not-needed", maxRetries: 0 });
const anthropic = new Anthropic({ baseURL: `http://127.0.0.1:${port}`, apiKey: "not-needed", maxRetries: 0 });

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}\n  ${String(e.stack || e).replace(/\n/g, "\n  ")}`);
  }
}

const prompt = "hello from the official sdk";

await check("OpenAI SDK: chat completion", async () => {
  const r = await openai.chat.completions.create({
    model: "demo",
    messages: [{ role: "system", content: "be brief" }, { role: "user", content: prompt }],
  });
  assert.equal(r.object, "chat.completion");
  assert.equal(r.choices[0].message.role, "assistant");
  assert.equal(r.choices[0].message.content, prompt);
  assert.equal(r.choices[0].finish_reason, "stop");
  assert.ok(r.usage.prompt_tokens > 0);
  assert.equal(r.usage.completion_tokens, 5);
});

await check("OpenAI SDK: streamed chat completion with usage", async () => {
  const stream = await openai.chat.completions.create({
    model: "code",
    messages: [{ role: "user", content: prompt }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta?.content ?? "";
      finish = c.finish_reason ?? finish;
    }
  }
  assert.equal(text, prompt);
  assert.equal(finish, "stop");
  assert.ok(chunks >= 6, `only ${chunks} chunks`);
  assert.equal(usage.completion_tokens, 5);
});

await check("OpenAI SDK: the response carries x-modelmux headers", async () => {
  const { response } = await openai.chat.completions
    .create({ model: "code", messages: [{ role: "user", content: "hi" }] })
    .withResponse();
  assert.equal(response.headers.get("x-modelmux-target"), "custom:demo");
  assert.equal(response.headers.get("x-modelmux-attempts"), "1");
  assert.ok(response.headers.get("x-request-id"));
});

await check("OpenAI SDK: embeddings (base64 by default)", async () => {
  const r = await openai.embeddings.create({ model: "demo", input: ["a", "b"] });
  assert.equal(r.data.length, 2);
  assert.equal(r.data[0].embedding.length, 16);
  assert.ok(r.data[0].embedding.every((x) => Number.isFinite(x)));
});

await check("OpenAI SDK: models list", async () => {
  const ids = [];
  for await (const m of openai.models.list()) ids.push(m.id);
  for (const id of ["custom:demo", "code", "auto"]) assert.ok(ids.includes(id), id);
});

await check("OpenAI SDK: unknown model is a NotFoundError", async () => {
  await assert.rejects(
    openai.chat.completions.create({ model: "demoo", messages: [{ role: "user", content: "x" }] }),
    (e) => {
      assert.ok(e instanceof OpenAI.NotFoundError, e.constructor.name);
      assert.equal(e.status, 404);
      assert.equal(e.code, "model_not_found");
      assert.match(e.message, /did you mean "demo"/);
      return true;
    },
  );
});

await check("Anthropic SDK: message", async () => {
  const r = await anthropic.messages.create({
    model: "demo",
    max_tokens: 64,
    system: "be brief",
    messages: [{ role: "user", content: prompt }],
  });
  assert.equal(r.type, "message");
  assert.equal(r.role, "assistant");
  assert.equal(r.content[0].type, "text");
  assert.equal(r.content[0].text, prompt);
  assert.equal(r.stop_reason, "end_turn");
  assert.ok(r.usage.input_tokens > 0);
  assert.equal(r.usage.output_tokens, 5);
});

await check("Anthropic SDK: streamed message", async () => {
  const stream = anthropic.messages.stream({
    model: "code",
    max_tokens: 64,
    messages: [{ role: "user", content: prompt }],
  });
  let text = "";
  stream.on("text", (t) => (text += t));
  const final = await stream.finalMessage();
  assert.equal(text, prompt);
  assert.equal(final.content[0].text, prompt);
  assert.equal(final.stop_reason, "end_turn");
  assert.equal(final.usage.output_tokens, 5);
});

await check("Anthropic SDK: unknown model is a NotFoundError", async () => {
  await assert.rejects(
    anthropic.messages.create({ model: "nope", max_tokens: 5, messages: [{ role: "user", content: "x" }] }),
    (e) => {
      assert.ok(e instanceof Anthropic.NotFoundError, e.constructor.name);
      assert.equal(e.status, 404);
      assert.equal(e.error?.error?.type, "not_found_error");
      return true;
    },
  );
});

await import("./cross.mjs").then((m) => m.crossProtocolChecks({ check, openai, anthropic, fakes }));
await import("./responses.mjs").then((m) => m.responsesChecks({ check, openai, fakes }));
await import("./cache.mjs").then((m) => m.cacheChecks({ check, binary, fakes }));

child.kill("SIGTERM");
fakes.close();
await new Promise((r) => child.on("exit", r));
rmSync(dir, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
