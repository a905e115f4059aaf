// Fake upstream model servers on 127.0.0.1 for the cross-protocol checks: one speaking the
// Anthropic messages API, one the OpenAI chat completions API, both answering in their real wire
// formats (streams cut into small writes) and recording each request they were sent.
import { createServer } from "node:http";

export const WEATHER_CALLS = [
  { id: "call_paris", name: "get_weather", input: { city: "Paris", unit: "celsius" } },
  { id: "call_rome", name: "get_weather", input: { city: "Rome", unit: "celsius" } },
];

// Splits text into pieces of at most n characters, so arguments arrive as fragments.
function pieces(text, n) {
  const out = [];
  for (let i = 0; i < text.length; i += n) out.push(text.slice(i, i + n));
  return out;
}

function readBody(req) {
  return new Promise((resolve) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => resolve(body === "" ? null : JSON.parse(body)));
  });
}

function sse(res) {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
}

// Anthropic: text "Checking both." then two tool_use blocks when tools were offered; usage
// input 321 (+100 read from cache), output 45.
function anthropicAnswer(body, res) {
  const withTools = Array.isArray(body.tools) && body.tools.length > 0;
  const text = withTools ? "Checking both." : "Bonjour from Anthropic.";
  const usage = { input_tokens: 321, cache_creation_input_tokens: 0, cache_read_input_tokens: 100 };
  const stop = withTools ? "tool_use" : "end_turn";
  if (!body.stream) {
    const content = [{ type: "text", text }];
    if (withTools) for (const c of WEATHER_CALLS) content.push({ type: "tool_use", ...c });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({
      id: "msg_fake", type: "message", role: "assistant", model: body.model, content,
      stop_reason: stop, stop_sequence: null, usage: { ...usage, output_tokens: 45 },
    }));
    return;
  }
  sse(res);
  const events = [];
  const ev = (type, data) => events.push(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
  ev("message_start", { message: { id: "msg_fake", type: "message", role: "assistant", model: body.model,
    content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } } });
  ev("content_block_start", { index: 0, content_block: { type: "text", text: "" } });
  ev("ping", {});
  for (const t of pieces(text, 4)) ev("content_block_delta", { index: 0, delta: { type: "text_delta", text: t } });
  ev("content_block_stop", { index: 0 });
  if (withTools) {
    WEATHER_CALLS.forEach((c, i) => {
      ev("content_block_start", { index: i + 1, content_block: { type: "tool_use", id: c.id, name: c.name, input: {} } });
      ev("content_block_delta", { index: i + 1, delta: { type: "input_json_delta", partial_json: "" } });
      for (const p of pieces(JSON.stringify(c.input), 5))
        ev("content_block_delta", { index: i + 1, delta: { type: "input_json_delta", partial_json: p } });
      ev("content_block_stop", { index: i + 1 });
    });
  }
  ev("message_delta", { delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: 45 } });
  ev("message_stop", {});
  writeSlowly(res, events.join(""));
}

// OpenAI: the same answer; usage prompt 210 (10 of them cached), completion 34. A stream carries
// the usage chunk only when stream_options.include_usage asks for it, as OpenAI does.
function openaiAnswer(body, res) {
  const withTools = Array.isArray(body.tools) && body.tools.length > 0;
  const text = withTools ? null : "Hello from the local model.";
  const usage = { prompt_tokens: 210, completion_tokens: 34, total_tokens: 244,
    prompt_tokens_details: { cached_tokens: 10 } };
  const finish = withTools ? "tool_calls" : "stop";
  const calls = WEATHER_CALLS.map((c) => ({ id: c.id, type: "function",
    function: { name: c.name, arguments: JSON.stringify(c.input) } }));
  const base = { id: "chatcmpl-fake", created: 1741569952, model: body.model };
  if (!body.stream) {
    const message = { role: "assistant", content: text, refusal: null };
    if (withTools) message.tool_calls = calls;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ ...base, object: "chat.completion",
      choices: [{ index: 0, message, logprobs: null, finish_reason: finish }], usage }));
    return;
  }
  sse(res);
  const wantsUsage = body.stream_options?.include_usage === true;
  const chunks = [];
  const chunk = (delta, finish_reason = null) => chunks.push({ ...base, object: "chat.completion.chunk",
    choices: [{ index: 0, delta, logprobs: null, finish_reason }], ...(wantsUsage ? { usage: null } : {}) });
  chunk({ role: "assistant", content: withTools ? null : "" });
  if (withTools) {
    calls.forEach((c, i) => {
      chunk({ tool_calls: [{ index: i, id: c.id, type: "function", function: { name: c.function.name, arguments: "" } }] });
      for (const p of pieces(c.function.arguments, 6))
        chunk({ tool_calls: [{ index: i, function: { arguments: p } }] });
    });
  } else {
    for (const t of pieces(text, 5)) chunk({ content: t });
  }
  chunk({}, finish);
  if (wantsUsage) chunks.push({ ...base, object: "chat.completion.chunk", choices: [], usage });
  writeSlowly(res, chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`).join("") + "data: [DONE]\n\n");
}

// Writes in 9-byte pieces, each its own write, so events arrive cut at odd places.
function writeSlowly(res, text) {
  const buf = Buffer.from(text);
  let i = 0;
  const next = () => {
    if (i >= buf.length) return res.end();
    const piece = buf.subarray(i, i + 9);
    i += 9;
    res.write(piece, () => setImmediate(next));
  };
  next();
}

function listen(handler) {
  const seen = [];
  const server = createServer(async (req, res) => {
    const body = await readBody(req);
    if (req.method === "GET") {
      // modelmux's health probe: GET {base}/models.
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ object: "list", data: [] }));
      return;
    }
    seen.push({ path: req.url, headers: req.headers, body });
    handler(body, res);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ server, seen, port: server.address().port })),
  );
}

export async function startFakes() {
  const anthropic = await listen(anthropicAnswer);
  const openai = await listen(openaiAnswer);
  return {
    anthropicPort: anthropic.port,
    openaiPort: openai.port,
    anthropicSeen: anthropic.seen,
    openaiSeen: openai.seen,
    close() {
      anthropic.server.close();
      openai.server.close();
    },
  };
}
