// Each official SDK against an upstream of the other protocol, through modelmux's translation.
import assert from "node:assert/strict";
import { WEATHER_CALLS } from "./fakes.mjs";

const weatherTool = {
  name: "get_weather",
  description: "Current weather for a city",
  schema: { type: "object", properties: { city: { type: "string" }, unit: { type: "string" } }, required: ["city"] },
};
const openaiTools = [{ type: "function", function: { name: weatherTool.name, description: weatherTool.description, parameters: weatherTool.schema } }];
const anthropicTools = [{ name: weatherTool.name, description: weatherTool.description, input_schema: weatherTool.schema }];
const question = "What is the weather in Paris and in Rome?";

function assertOpenAiCalls(calls) {
  assert.equal(calls.length, 2, "two parallel tool calls");
  calls.forEach((c, i) => {
    assert.equal(c.type, "function");
    assert.equal(c.id, WEATHER_CALLS[i].id);
    assert.equal(c.function.name, "get_weather");
    assert.deepEqual(JSON.parse(c.function.arguments), WEATHER_CALLS[i].input);
  });
}

function assertAnthropicCalls(content) {
  const uses = content.filter((b) => b.type === "tool_use");
  assert.equal(uses.length, 2, "two parallel tool uses");
  uses.forEach((u, i) => {
    assert.equal(u.id, WEATHER_CALLS[i].id);
    assert.equal(u.name, "get_weather");
    assert.deepEqual(u.input, WEATHER_CALLS[i].input);
  });
}

export async function crossProtocolChecks({ check, openai, anthropic, fakes }) {
  const lastAnthropicBody = () => fakes.anthropicSeen.at(-1).body;
  const lastOpenAiBody = () => fakes.openaiSeen.at(-1).body;

  await check("OpenAI SDK → Anthropic upstream: chat with a system prompt", async () => {
    const r = await openai.chat.completions.create({
      model: "claude:claude-sonnet-4-5",
      messages: [{ role: "system", content: "Answer in French." }, { role: "user", content: "Hello" }],
    });
    assert.equal(r.choices[0].message.content, "Bonjour from Anthropic.");
    assert.equal(r.choices[0].finish_reason, "stop");
    assert.equal(r.usage.prompt_tokens, 421);
    assert.equal(r.usage.prompt_tokens_details.cached_tokens, 100);
    assert.equal(r.usage.completion_tokens, 45);
    assert.equal(lastAnthropicBody().system, "Answer in French.");
    assert.deepEqual(lastAnthropicBody().messages, [{ role: "user", content: [{ type: "text", text: "Hello" }] }]);
    assert.equal(fakes.anthropicSeen.at(-1).headers["x-api-key"], "sk-ant-fake");
  });

  await check("OpenAI SDK → Anthropic upstream: two parallel tool calls", async () => {
    const r = await openai.chat.completions.create({
      model: "claude:claude-sonnet-4-5", messages: [{ role: "user", content: question }], tools: openaiTools,
    });
    assert.equal(r.choices[0].finish_reason, "tool_calls");
    assert.equal(r.choices[0].message.content, "Checking both.");
    assertOpenAiCalls(r.choices[0].message.tool_calls);
    assert.equal(lastAnthropicBody().tools[0].input_schema.required[0], "city");
  });

  await check("OpenAI SDK → Anthropic upstream: streamed tool calls reassemble to JSON, usage exact", async () => {
    const stream = openai.chat.completions.stream({
      model: "claude:claude-sonnet-4-5",
      messages: [{ role: "system", content: "Be brief." }, { role: "user", content: question }],
      tools: openaiTools,
      stream_options: { include_usage: true },
    });
    let text = "";
    stream.on("content", (delta) => (text += delta));
    const final = await stream.finalChatCompletion();
    assert.equal(text, "Checking both.");
    assert.equal(final.choices[0].finish_reason, "tool_calls");
    assertOpenAiCalls(final.choices[0].message.tool_calls);
    assert.equal(final.usage.prompt_tokens, 421);
    assert.equal(final.usage.completion_tokens, 45);
    assert.equal(lastAnthropicBody().system, "Be brief.");
    assert.equal(lastAnthropicBody().stream, true);
  });

  await check("OpenAI SDK → Anthropic upstream: streamed text without usage asked", async () => {
    const stream = await openai.chat.completions.create({
      model: "claude:claude-sonnet-4-5", messages: [{ role: "user", content: "Hello" }], stream: true,
    });
    let text = "";
    let finish = null;
    let usageSeen = false;
    for await (const chunk of stream) {
      usageSeen ||= Boolean(chunk.usage);
      for (const c of chunk.choices) {
        text += c.delta?.content ?? "";
        finish = c.finish_reason ?? finish;
      }
    }
    assert.equal(text, "Bonjour from Anthropic.");
    assert.equal(finish, "stop");
    assert.equal(usageSeen, false);
  });

  await check("Anthropic SDK → OpenAI upstream: message with a system prompt", async () => {
    const r = await anthropic.messages.create({
      model: "local:qwen2.5-coder", max_tokens: 200, system: "Answer in French.",
      messages: [{ role: "user", content: "Hello" }],
    });
    assert.equal(r.content[0].type, "text");
    assert.equal(r.content[0].text, "Hello from the local model.");
    assert.equal(r.stop_reason, "end_turn");
    assert.equal(r.usage.input_tokens, 200);
    assert.equal(r.usage.cache_read_input_tokens, 10);
    assert.equal(r.usage.output_tokens, 34);
    assert.deepEqual(lastOpenAiBody().messages[0], { role: "system", content: "Answer in French." });
    assert.equal(lastOpenAiBody().max_tokens, 200);
  });

  await check("Anthropic SDK → OpenAI upstream: two parallel tool uses", async () => {
    const r = await anthropic.messages.create({
      model: "local:qwen2.5-coder", max_tokens: 200, tools: anthropicTools,
      messages: [{ role: "user", content: question }],
    });
    assert.equal(r.stop_reason, "tool_use");
    assertAnthropicCalls(r.content);
    assert.equal(lastOpenAiBody().tools[0].function.parameters.required[0], "city");
  });

  await check("Anthropic SDK → OpenAI upstream: streamed tool uses reassemble, usage exact", async () => {
    const stream = anthropic.messages.stream({
      model: "local:qwen2.5-coder", max_tokens: 200, system: "Be brief.", tools: anthropicTools,
      messages: [{ role: "user", content: question }],
    });
    const jsonDone = [];
    stream.on("inputJson", (_delta, snapshot) => jsonDone.push(snapshot));
    const final = await stream.finalMessage();
    assert.equal(final.stop_reason, "tool_use");
    assertAnthropicCalls(final.content);
    assert.ok(jsonDone.length >= 4, `input arrived in ${jsonDone.length} fragments`);
    assert.equal(final.usage.input_tokens, 200);
    assert.equal(final.usage.cache_read_input_tokens, 10);
    assert.equal(final.usage.output_tokens, 34);
    assert.equal(lastOpenAiBody().stream_options.include_usage, true);
    assert.deepEqual(lastOpenAiBody().messages[0], { role: "system", content: "Be brief." });
  });

  await check("Anthropic SDK → OpenAI upstream: streamed text", async () => {
    const stream = anthropic.messages.stream({
      model: "local:qwen2.5-coder", max_tokens: 50, messages: [{ role: "user", content: "Hello" }],
    });
    let text = "";
    stream.on("text", (t) => (text += t));
    const final = await stream.finalMessage();
    assert.equal(text, "Hello from the local model.");
    assert.equal(final.content[0].text, text);
    assert.equal(final.stop_reason, "end_turn");
    assert.equal(final.usage.output_tokens, 34);
  });

  await check("Anthropic SDK → OpenAI upstream: a tool result round trip", async () => {
    const r = await anthropic.messages.create({
      model: "local:qwen2.5-coder", max_tokens: 200, tools: anthropicTools,
      messages: [
        { role: "user", content: question },
        { role: "assistant", content: WEATHER_CALLS.map((c) => ({ type: "tool_use", ...c })) },
        { role: "user", content: [
          { type: "tool_result", tool_use_id: "call_paris", content: "18C" },
          { type: "tool_result", tool_use_id: "call_rome", content: "24C" },
        ] },
      ],
    });
    assert.equal(r.type, "message");
    const sent = lastOpenAiBody().messages;
    assert.deepEqual(sent.map((m) => m.role), ["user", "assistant", "tool", "tool"]);
    assert.equal(sent[1].tool_calls.length, 2);
    assert.deepEqual(JSON.parse(sent[1].tool_calls[1].function.arguments), WEATHER_CALLS[1].input);
    assert.equal(sent[3].tool_call_id, "call_rome");
    assert.equal(sent[3].content, "24C");
  });
}
