// The official OpenAI SDK's Responses API (client.responses.create and responses.stream) through
// modelmux: on the mock, and translated to a chat-completions-only upstream and to an Anthropic
// upstream (fakes.mjs), streamed and not, with a function tool, usage, a hosted tool dropped
// and named, and previous_response_id continued on another target.
import assert from "node:assert/strict";
import OpenAI from "openai";
import { WEATHER_CALLS } from "./fakes.mjs";

const weatherTool = {
  type: "function",
  name: "get_weather",
  description: "Current weather for a city",
  parameters: { type: "object", properties: { city: { type: "string" }, unit: { type: "string" } }, required: ["city"] },
};
const question = "What is the weather in Paris and in Rome?";

function assertCalls(output) {
  const calls = output.filter((i) => i.type === "function_call");
  assert.equal(calls.length, 2, "two parallel function calls");
  calls.forEach((c, i) => {
    assert.equal(c.call_id, WEATHER_CALLS[i].id);
    assert.equal(c.name, "get_weather");
    assert.deepEqual(JSON.parse(c.arguments), WEATHER_CALLS[i].input);
  });
}

async function streamed(openai, params) {
  const events = [];
  const stream = openai.responses.stream(params);
  for await (const e of stream) events.push(e);
  const final = await stream.finalResponse();
  events.forEach((e, i) => assert.equal(e.sequence_number, i, "sequence numbers count from 0"));
  assert.equal(events[0].type, "response.created");
  assert.equal(events.at(-1).type, "response.completed");
  return { events, final };
}

export async function responsesChecks({ check, openai, fakes }) {
  const lastAnthropicBody = () => fakes.anthropicSeen.at(-1).body;
  const lastOpenAiBody = () => fakes.openaiSeen.at(-1).body;

  await check("OpenAI SDK responses.create: the mock answers with output_text and usage", async () => {
    const r = await openai.responses.create({ model: "demo", input: "hello from the responses api" });
    assert.match(r.id, /^resp_/);
    assert.equal(r.status, "completed");
    assert.equal(r.output_text, "hello from the responses api");
    assert.ok(r.usage.input_tokens > 0 && r.usage.output_tokens > 0);
  });

  await check("OpenAI SDK responses.stream: the mock streams every event in order", async () => {
    const { events, final } = await streamed(openai, { model: "demo", input: "stream this answer please" });
    const text = events.filter((e) => e.type === "response.output_text.delta").map((e) => e.delta).join("");
    assert.equal(text, "stream this answer please");
    assert.equal(final.output_text, "stream this answer please");
  });

  await check("OpenAI SDK responses → chat-completions upstream: instructions, a function tool, two calls", async () => {
    const r = await openai.responses.create({
      model: "local:qwen-coder", instructions: "Be brief.", input: question, tools: [weatherTool],
    });
    assertCalls(r.output);
    const sent = lastOpenAiBody();
    assert.equal(sent.model, "qwen-coder");
    assert.deepEqual(sent.messages[0], { role: "system", content: "Be brief." });
    assert.equal(sent.tools[0].function.name, "get_weather");
    assert.equal(r.usage.input_tokens, 210);
    assert.equal(r.usage.input_tokens_details.cached_tokens, 10);
    assert.equal(r.usage.output_tokens, 34);
  });

  await check("OpenAI SDK responses.stream → chat-completions upstream: arguments reassemble, usage exact", async () => {
    const { events, final } = await streamed(openai, { model: "local:qwen-coder", input: question, tools: [weatherTool] });
    assertCalls(final.output);
    const deltas = events.filter((e) => e.type === "response.function_call_arguments.delta");
    assert.ok(deltas.length >= 2, "arguments arrive as deltas");
    assert.equal(final.usage.input_tokens, 210);
    assert.equal(final.usage.output_tokens, 34);
    assert.equal(lastOpenAiBody().stream_options.include_usage, true);
  });

  await check("OpenAI SDK responses → Anthropic upstream: text and two calls, usage with cache reads", async () => {
    const r = await openai.responses.create({ model: "claude:claude-sonnet-4-5", input: question, tools: [weatherTool],
      max_output_tokens: 500 });
    assert.equal(r.output_text, "Checking both.");
    assertCalls(r.output);
    assert.equal(r.usage.input_tokens, 421);
    assert.equal(r.usage.input_tokens_details.cached_tokens, 100);
    assert.equal(r.usage.output_tokens, 45);
    const sent = lastAnthropicBody();
    assert.equal(sent.max_tokens, 500);
    assert.equal(sent.tools[0].input_schema.required[0], "city");
  });

  await check("OpenAI SDK responses.stream → Anthropic upstream: text, calls and usage", async () => {
    const { final } = await streamed(openai, { model: "claude:claude-sonnet-4-5", input: question, tools: [weatherTool] });
    assert.equal(final.output_text, "Checking both.");
    assertCalls(final.output);
    assert.equal(final.usage.output_tokens, 45);
  });

  await check("OpenAI SDK responses: previous_response_id continues a conversation on another target", async () => {
    const first = await openai.responses.create({ model: "local:qwen-coder", input: "My name is Ada." });
    assert.equal(first.output_text, "Hello from the local model.");
    const second = await openai.responses.create({
      model: "claude:claude-sonnet-4-5", input: "What is my name?", previous_response_id: first.id,
    });
    assert.equal(second.previous_response_id, first.id);
    const turns = lastAnthropicBody().messages.map((m) => [m.role, JSON.stringify(m.content)]);
    assert.equal(turns.length, 3, JSON.stringify(turns));
    assert.match(turns[0][1], /My name is Ada\./);
    assert.equal(turns[1][0], "assistant");
    assert.match(turns[1][1], /Hello from the local model\./);
    assert.match(turns[2][1], /What is my name\?/);
  });

  await check("OpenAI SDK responses: an unknown previous_response_id is a BadRequestError naming it", async () => {
    await assert.rejects(
      openai.responses.create({ model: "demo", input: "hi", previous_response_id: "resp_unknown" }),
      (e) => e instanceof OpenAI.BadRequestError && /resp_unknown/.test(e.message),
    );
  });

  await check("OpenAI SDK responses: a hosted tool the target cannot run is dropped and named", async () => {
    const { data, response } = await openai.responses
      .create({ model: "local:qwen-coder", input: "hello", tools: [{ type: "web_search" }] })
      .withResponse();
    assert.equal(response.headers.get("x-modelmux-dropped-tools"), "web_search");
    assert.equal(data.output_text, "Hello from the local model.");
    assert.equal(lastOpenAiBody().tools, undefined);
  });
}
