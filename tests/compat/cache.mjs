// The response cache as the official SDKs see it: a second modelmux with `cache.enabled`, in
// front of the fake OpenAI and Anthropic servers (fakes.mjs), priced so savings show. A repeated
// deterministic request must come back from the cache — as a stream to the OpenAI SDK when the
// first answer was whole, as a whole message to the Anthropic SDK and as a stream of it — with
// `x-modelmux-cache: hit`, the original usage, no upstream call, and its savings counted in
// /metrics and /api/status.
import { startDaemon } from "./modelmux_daemon.mjs";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";

export async function cacheChecks({ check, binary, fakes }) {
  const dir = mkdtempSync(join(tmpdir(), "modelmux-cache-"));
  const config = join(dir, "config.yaml");
  // $1 per million input tokens and $2 per million output, on both targets.
  writeFileSync(
    config,
    `listen: 127.0.0.1:0
state_dir: ${dir}/state
custom_models:
  - id: gpt-local
    type: openai
    endpoint: http://127.0.0.1:${fakes.openaiPort}/v1
    model: local-model
    probe: none
    cost: {input: 1.0, output: 2.0}
  - id: claude-local
    type: anthropic
    endpoint: http://127.0.0.1:${fakes.anthropicPort}/v1
    model: claude-x
    api_key: sk-ant-fake
    probe: none
    cost: {input: 1.0, output: 2.0}
cache:
  enabled: true
  when: deterministic
`,
  );
  const { child, port } = await startDaemon(binary, config);
  const origin = `http://127.0.0.1:${port}`;
  const openai = new OpenAI({ baseURL: `${origin}/v1`, apiKey: "not-needed", maxRetries: 0 });
  const anthropic = new Anthropic({ baseURL: origin, apiKey: "not-needed", maxRetries: 0 });

  await check("cache: a whole chat answer replays as a stream to the OpenAI SDK", async () => {
    const params = {
      model: "custom:gpt-local",
      temperature: 0,
      messages: [{ role: "user", content: "summarise the cached file" }],
    };
    const before = fakes.openaiSeen.length;
    const { data: first, response: missed } = await openai.chat.completions.create(params).withResponse();
    assert.equal(missed.headers.get("x-modelmux-cache"), "miss");
    assert.equal(fakes.openaiSeen.length, before + 1);

    const { data: stream, response: hit } = await openai.chat.completions
      .create({ ...params, stream: true, stream_options: { include_usage: true } })
      .withResponse();
    assert.equal(hit.headers.get("x-modelmux-cache"), "hit");
    assert.equal(hit.headers.get("x-modelmux-target"), "custom:gpt-local");
    assert.match(hit.headers.get("content-type"), /^text\/event-stream/);
    let text = "";
    let role = null;
    let finish = null;
    let usage = null;
    for await (const chunk of stream) {
      assert.equal(chunk.object, "chat.completion.chunk");
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        role = c.delta?.role ?? role;
        text += c.delta?.content ?? "";
        finish = c.finish_reason ?? finish;
      }
    }
    assert.equal(role, "assistant");
    assert.equal(text, first.choices[0].message.content);
    assert.equal(finish, "stop");
    assert.equal(usage.prompt_tokens, first.usage.prompt_tokens, "the original usage is reported");
    assert.equal(usage.completion_tokens, first.usage.completion_tokens);
    assert.equal(fakes.openaiSeen.length, before + 1, "a hit makes no upstream call");
  });

  await check("cache: a streamed chat answer is served whole to the OpenAI SDK", async () => {
    const params = {
      model: "custom:gpt-local",
      seed: 7,
      messages: [{ role: "user", content: "generate the cached test" }],
    };
    const before = fakes.openaiSeen.length;
    let streamedText = "";
    for await (const chunk of await openai.chat.completions.create({ ...params, stream: true })) {
      for (const c of chunk.choices) streamedText += c.delta?.content ?? "";
    }
    const { data: whole, response } = await openai.chat.completions.create(params).withResponse();
    assert.equal(response.headers.get("x-modelmux-cache"), "hit");
    assert.equal(whole.object, "chat.completion");
    assert.equal(whole.choices[0].message.role, "assistant");
    assert.equal(whole.choices[0].message.content, streamedText);
    assert.equal(whole.choices[0].finish_reason, "stop");
    assert.equal(fakes.openaiSeen.length, before + 1);
  });

  await check("cache: a repeated message comes from the cache to the Anthropic SDK, whole and streamed", async () => {
    const params = {
      model: "custom:claude-local",
      max_tokens: 256,
      temperature: 0,
      system: "be brief",
      messages: [{ role: "user", content: "summarise the cached file" }],
    };
    const before = fakes.anthropicSeen.length;
    const { data: first, response: missed } = await anthropic.messages.create(params).withResponse();
    assert.equal(missed.headers.get("x-modelmux-cache"), "miss");
    const { data: again, response: hit } = await anthropic.messages.create(params).withResponse();
    assert.equal(hit.headers.get("x-modelmux-cache"), "hit");
    assert.deepEqual(again.content, first.content);
    assert.equal(again.stop_reason, "end_turn");
    assert.deepEqual(again.usage, first.usage, "the original usage is reported");

    const stream = anthropic.messages.stream(params);
    let text = "";
    stream.on("text", (t) => (text += t));
    const final = await stream.finalMessage();
    assert.equal(text, first.content[0].text);
    assert.equal(final.stop_reason, "end_turn");
    assert.equal(final.usage.output_tokens, first.usage.output_tokens);
    assert.equal(fakes.anthropicSeen.length, before + 1, "two hits, one upstream call");
  });

  await check("cache: bypass goes upstream, and the hits' savings are counted", async () => {
    const before = fakes.openaiSeen.length;
    const { response } = await openai.chat.completions
      .create(
        { model: "custom:gpt-local", temperature: 0, messages: [{ role: "user", content: "summarise the cached file" }] },
        { headers: { "x-modelmux-cache": "bypass" } },
      )
      .withResponse();
    assert.equal(response.headers.get("x-modelmux-cache"), null);
    assert.equal(fakes.openaiSeen.length, before + 1);

    // The usage writer counts a request within a second of its end; /api/status shows when.
    let spend;
    for (let i = 0; i < 50; ++i) {
      spend = (await (await fetch(`${origin}/api/status`)).json()).spend;
      if (spend.cache_hits === 4) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(spend.cache_hits, 4);
    const metrics = await (await fetch(`${origin}/metrics`)).text();
    assert.match(metrics, /^modelmux_cache_requests_total\{result="hit"\} 4$/m);
    assert.match(metrics, /^modelmux_cache_requests_total\{result="miss"\} 3$/m);
    assert.match(metrics, /^modelmux_cache_requests_total\{result="bypass"\} 1$/m);
    const saved = Number(metrics.match(/^modelmux_cache_savings_usd_total (\S+)$/m)[1]);
    // What the first answers cost at $1/M in and $2/M out: chat 210 in and 34 out, $0.000278,
    // twice; the message 321 in, 100 read from Anthropic's cache and 45 out, $0.000511, twice.
    assert.equal(saved, 0.001578);
    assert.ok(Math.abs(spend.cache_savings_usd - saved) < 1e-6, `${spend.cache_savings_usd} vs ${saved}`);
  });

  child.kill("SIGTERM");
  await new Promise((r) => child.on("exit", r));
  rmSync(dir, { recursive: true, force: true });
}
