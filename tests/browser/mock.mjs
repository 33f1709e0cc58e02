// The provider the browser suite's relay forwards to: OpenAI chat and transcriptions,
// Anthropic messages, Gemini generateContent, each streamed when asked (paced, so that a
// page can see chunks arrive one by one), and OpenAI Realtime's WebSocket. It counts
// streams in flight and streams the client abandoned (seen as the connection closing).
import http from "node:http";
import { WebSocketServer } from "ws";

export const stats = { requests: 0, aborted: 0, inFlight: 0, maxInFlight: 0, seen: [] };

const CHUNKS = 8;
const GAP_MS = 60;

function readBody(req) {
  return new Promise((resolve) => {
    const parts = [];
    req.on("data", (c) => parts.push(c));
    req.on("end", () => resolve(Buffer.concat(parts)));
  });
}

function json(res, body) {
  res.writeHead(200, { "content-type": "application/json", "x-request-id": "req_mock" });
  res.end(JSON.stringify(body));
}

/// Sends `events` as SSE, one every GAP_MS; counts an abandoned stream.
function stream(res, events) {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  stats.inFlight++;
  stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
  let i = 0;
  let done = false;
  const finish = (aborted) => {
    if (done) return;
    done = true;
    stats.inFlight--;
    if (aborted) stats.aborted++;
  };
  res.on("close", () => finish(!res.writableFinished));
  const next = () => {
    if (done) return;
    if (i === events.length) {
      res.end();
      finish(false);
      return;
    }
    res.write(events[i++]);
    setTimeout(next, GAP_MS);
  };
  next();
}

const sse = (obj) => `data: ${JSON.stringify(obj)}\n\n`;

function openaiChat(res, body) {
  const usage = { prompt_tokens: 5, completion_tokens: CHUNKS, total_tokens: 5 + CHUNKS };
  if (!body.stream) {
    return json(res, {
      id: "chatcmpl-mock", object: "chat.completion", created: 1, model: body.model,
      choices: [{ index: 0, message: { role: "assistant", content: "hello from the mock" }, finish_reason: "stop" }],
      usage,
    });
  }
  const chunk = (delta, finish) => sse({
    id: "chatcmpl-mock", object: "chat.completion.chunk", created: 1, model: body.model,
    choices: [{ index: 0, delta, finish_reason: finish }],
  });
  const events = [chunk({ role: "assistant" }, null)];
  for (let n = 0; n < CHUNKS; n++) events.push(chunk({ content: `w${n} ` }, null));
  events.push(chunk({}, "stop"));
  events.push(sse({ id: "chatcmpl-mock", object: "chat.completion.chunk", created: 1, model: body.model, choices: [], usage }));
  events.push("data: [DONE]\n\n");
  stream(res, events);
}

function anthropic(res, body) {
  if (!body.stream) {
    return json(res, {
      id: "msg_mock", type: "message", role: "assistant", model: body.model,
      content: [{ type: "text", text: "hello from the mock" }], stop_reason: "end_turn",
      usage: { input_tokens: 5, output_tokens: 4 },
    });
  }
  const ev = (type, data) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  const events = [
    ev("message_start", { message: { id: "msg_mock", type: "message", role: "assistant", model: body.model, content: [], usage: { input_tokens: 5, output_tokens: 1 } } }),
    ev("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
  ];
  for (let n = 0; n < CHUNKS; n++) events.push(ev("content_block_delta", { index: 0, delta: { type: "text_delta", text: `w${n} ` } }));
  events.push(ev("content_block_stop", { index: 0 }));
  events.push(ev("message_delta", { delta: { stop_reason: "end_turn" }, usage: { output_tokens: CHUNKS } }));
  events.push(ev("message_stop", {}));
  stream(res, events);
}

function gemini(res, streamed) {
  const part = (text, usage) => ({
    candidates: [{ content: { role: "model", parts: [{ text }] }, index: 0 }],
    ...(usage ? { usageMetadata: { promptTokenCount: 5, candidatesTokenCount: CHUNKS, totalTokenCount: 5 + CHUNKS } } : {}),
  });
  if (!streamed) return json(res, part("hello from the mock", true));
  const events = [];
  for (let n = 0; n < CHUNKS; n++) events.push(sse(part(`w${n} `, n === CHUNKS - 1)));
  stream(res, events);
}

export function startMock() {
  const server = http.createServer(async (req, res) => {
    stats.requests++;
    const raw = await readBody(req);
    const url = new URL(req.url, "http://mock");
    stats.seen.push({ method: req.method, path: url.pathname, headers: req.headers });
    let body = {};
    try { body = JSON.parse(raw.toString() || "{}"); } catch { /* multipart */ }
    if (url.pathname === "/v1/chat/completions") return openaiChat(res, body);
    if (url.pathname === "/v1/messages") return anthropic(res, body);
    if (url.pathname.endsWith(":generateContent")) return gemini(res, false);
    if (url.pathname.endsWith(":streamGenerateContent")) return gemini(res, true);
    if (url.pathname === "/v1/audio/transcriptions") {
      return json(res, { text: `heard ${raw.length} bytes` });
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: { message: "no such mock route" } }));
  });
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (protocols) => (protocols.has("realtime") ? "realtime" : false),
  });
  server.on("upgrade", (req, socket, head) => {
    stats.seen.push({ method: "GET", path: req.url, headers: req.headers });
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.send(JSON.stringify({ type: "session.created", session: { id: "sess_mock" } }));
      ws.on("message", (data) => ws.send(data.toString()));
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve({ server, url: `http://127.0.0.1:${server.address().port}` }));
  });
}
