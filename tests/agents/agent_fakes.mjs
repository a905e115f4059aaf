// Scripted model servers on 127.0.0.1 for the agent tests: one speaking only OpenAI chat
// completions (as llama.cpp, LM Studio or an older vLLM do), one speaking Anthropic messages.
// Both play the same script. Asked to run a marked command, the "model" calls the agent's shell
// tool (Claude Code's Bash, Codex's exec_command or shell); given the tool's result, it answers
// with what the command printed; asked anything else, it greets. Streams are cut into small
// writes, as real servers send them. Every request is recorded for the test to inspect.
import { createServer } from "node:http";

export const GREETING = "Hello from the scripted model.";
// The prompt carries a nonce; the command prints it in a shape the prompt does not contain, so
// the answer can only hold it if the command really ran.
export const commandFor = (nonce) => `printf 'tool-%s-ran\\n' ${nonce}`;
export const outputFor = (nonce) => `tool-${nonce}-ran`;

function readBody(req) {
  return new Promise((resolve) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => resolve(body === "" ? null : JSON.parse(body)));
  });
}

const textOf = (content) =>
  typeof content === "string"
    ? content
    : Array.isArray(content)
      ? content.map((p) => (typeof p === "string" ? p : p.text ?? textOf(p.content) ?? "")).join("")
      : "";

// The shell tool among those offered, and the arguments that run command with it.
function shellCall(toolNames, command) {
  if (toolNames.includes("Bash")) return { name: "Bash", input: { command, description: "Run the command" } };
  if (toolNames.includes("exec_command")) return { name: "exec_command", input: { cmd: command } };
  if (toolNames.includes("shell")) return { name: "shell", input: { command: ["bash", "-lc", command] } };
  return null;
}

// What the model does next: {text} or {call: {name, input}}.
function decide(prompt, toolResult, toolNames) {
  if (toolResult !== null) return { text: `The command printed: ${toolResult.trim()}` };
  const m = prompt.match(/MMTOOL-([a-z0-9]+)/);
  if (m) {
    const call = shellCall(toolNames, commandFor(m[1]));
    if (call) return { call };
    return { text: "No shell tool was offered." };
  }
  return { text: GREETING };
}

function pieces(text, n) {
  const out = [];
  for (let i = 0; i < text.length; i += n) out.push(text.slice(i, i + n));
  return out.length ? out : [""];
}

async function writeSlowly(res, events) {
  for (const e of events) {
    res.write(e);
    await new Promise((r) => setImmediate(r));
  }
  res.end();
}

function chatHandler(body, res) {
  const messages = body.messages ?? [];
  const last = messages[messages.length - 1] ?? {};
  const lastUser = [...messages].reverse().find((m) => m.role === "user");
  const toolResult = last.role === "tool" ? textOf(last.content) : null;
  const toolNames = (body.tools ?? []).map((t) => t.function?.name);
  const next = decide(textOf(lastUser?.content ?? ""), toolResult, toolNames);
  const usage = { prompt_tokens: 120, completion_tokens: 12, total_tokens: 132 };
  const base = { id: "chatcmpl-agent", created: 1764000000, model: body.model };
  const call = next.call && { id: "call_agent_1", type: "function",
    function: { name: next.call.name, arguments: JSON.stringify(next.call.input) } };
  const finish = call ? "tool_calls" : "stop";
  if (!body.stream) {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ ...base, object: "chat.completion", choices: [{ index: 0,
      message: { role: "assistant", content: next.text ?? null, ...(call ? { tool_calls: [call] } : {}) },
      finish_reason: finish }], usage }));
    return;
  }
  res.writeHead(200, { "content-type": "text/event-stream" });
  const chunk = (delta, finish_reason = null) =>
    `data: ${JSON.stringify({ ...base, object: "chat.completion.chunk", choices: [{ index: 0, delta, finish_reason }] })}\n\n`;
  const events = [chunk({ role: "assistant", content: "" })];
  if (call) {
    events.push(chunk({ tool_calls: [{ index: 0, id: call.id, type: "function", function: { name: call.function.name, arguments: "" } }] }));
    for (const p of pieces(call.function.arguments, 7))
      events.push(chunk({ tool_calls: [{ index: 0, function: { arguments: p } }] }));
  } else {
    for (const p of pieces(next.text, 5)) events.push(chunk({ content: p }));
  }
  events.push(chunk({}, finish));
  if (body.stream_options?.include_usage)
    events.push(`data: ${JSON.stringify({ ...base, object: "chat.completion.chunk", choices: [], usage })}\n\n`);
  events.push("data: [DONE]\n\n");
  writeSlowly(res, events);
}

function anthropicHandler(body, res) {
  const messages = body.messages ?? [];
  const last = messages[messages.length - 1] ?? {};
  const results = Array.isArray(last.content) ? last.content.filter((b) => b.type === "tool_result") : [];
  const toolResult = last.role === "user" && results.length ? textOf(results[0].content) : null;
  const lastUser = [...messages].reverse().find((m) => m.role === "user" &&
    !(Array.isArray(m.content) && m.content.some((b) => b.type === "tool_result")));
  const toolNames = (body.tools ?? []).map((t) => t.name);
  const next = decide(textOf(lastUser?.content ?? ""), toolResult, toolNames);
  const usage = { input_tokens: 150, output_tokens: 15, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };
  const stop = next.call ? "tool_use" : "end_turn";
  const blocks = next.call
    ? [{ type: "tool_use", id: "toolu_agent_1", name: next.call.name, input: next.call.input }]
    : [{ type: "text", text: next.text }];
  if (!body.stream) {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ id: "msg_agent", type: "message", role: "assistant", model: body.model,
      content: blocks, stop_reason: stop, stop_sequence: null, usage }));
    return;
  }
  res.writeHead(200, { "content-type": "text/event-stream" });
  const events = [];
  const ev = (type, data) => events.push(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
  ev("message_start", { message: { id: "msg_agent", type: "message", role: "assistant", model: body.model,
    content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } } });
  if (next.call) {
    ev("content_block_start", { index: 0, content_block: { type: "tool_use", id: "toolu_agent_1", name: next.call.name, input: {} } });
    for (const p of pieces(JSON.stringify(next.call.input), 7))
      ev("content_block_delta", { index: 0, delta: { type: "input_json_delta", partial_json: p } });
  } else {
    ev("content_block_start", { index: 0, content_block: { type: "text", text: "" } });
    for (const p of pieces(next.text, 5)) ev("content_block_delta", { index: 0, delta: { type: "text_delta", text: p } });
  }
  ev("content_block_stop", { index: 0 });
  ev("message_delta", { delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: 15 } });
  ev("message_stop", {});
  writeSlowly(res, events);
}

function listen(handler, requests) {
  return new Promise((resolve) => {
    const server = createServer(async (req, res) => {
      const body = await readBody(req);
      requests.push({ url: req.url, headers: req.headers, body });
      if (req.method === "GET") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ object: "list", data: [] }));
        return;
      }
      if (req.url.endsWith("/count_tokens")) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ input_tokens: 150 }));
        return;
      }
      handler(body, res);
    });
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

export async function startAgentFakes() {
  const chatRequests = [];
  const anthropicRequests = [];
  const chat = await listen(chatHandler, chatRequests);
  const anthropic = await listen(anthropicHandler, anthropicRequests);
  // A port that refuses connections: bound, closed, not reused.
  const dead = await listen(() => {}, []);
  const deadPort = dead.address().port;
  await new Promise((r) => dead.close(r));
  return {
    chatPort: chat.address().port,
    anthropicPort: anthropic.address().port,
    deadPort,
    chatRequests,
    anthropicRequests,
    close: () => { chat.close(); anthropic.close(); },
  };
}
