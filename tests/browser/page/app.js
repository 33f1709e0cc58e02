// What a page does with the official SDKs, pointed at the relay with a relay token. Each
// case returns what the page's JavaScript observed: content, chunk arrival times, the
// SDK's typed error (status, code, message), the HTTP version used.
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { GoogleGenAI } from "@google/genai";

function errorOf(e) {
  const body = e?.error?.error ?? e?.error ?? {};
  return {
    name: e?.constructor?.name ?? String(e),
    status: e?.status ?? e?.code,
    code: e?.code ?? body.code ?? null,
    message: e?.message ?? "",
  };
}

async function attempt(fn) {
  try {
    return { ok: await fn() };
  } catch (e) {
    return { error: errorOf(e) };
  }
}

const openai = ({ relay, token }) =>
  new OpenAI({ apiKey: token, baseURL: `${relay}/v1`, dangerouslyAllowBrowser: true, maxRetries: 0 });
const anthropic = ({ relay, token }) =>
  new Anthropic({ apiKey: token, baseURL: relay, dangerouslyAllowBrowser: true, maxRetries: 0 });
const gemini = ({ relay, token }) =>
  new GoogleGenAI({ apiKey: token, httpOptions: { baseUrl: relay } });

/// Reads a stream, noting when each chunk arrived (ms since the call began).
async function timed(started, iterable, text) {
  const arrivals = [];
  let content = "";
  for await (const chunk of iterable) {
    arrivals.push(performance.now() - started);
    content += text(chunk) ?? "";
  }
  return { arrivals, content };
}

window.cases = {
  async openaiChat(args) {
    return attempt(async () => {
      const r = await openai(args).chat.completions.create({
        model: args.model ?? "gpt-4o-mini",
        messages: [{ role: "user", content: args.content ?? "hi" }],
      });
      return { content: r.choices[0].message.content };
    });
  },
  async openaiStream(args) {
    return attempt(async () => {
      const started = performance.now();
      const s = await openai(args).chat.completions.create({
        model: "gpt-4o-mini", stream: true, messages: [{ role: "user", content: "hi" }],
      });
      return timed(started, s, (c) => c.choices[0]?.delta?.content);
    });
  },
  async anthropicMessage(args) {
    return attempt(async () => {
      const r = await anthropic(args).messages.create({
        model: "claude-haiku-4-5", max_tokens: 64, messages: [{ role: "user", content: "hi" }],
      });
      return { content: r.content[0].text };
    });
  },
  async anthropicStream(args) {
    return attempt(async () => {
      const started = performance.now();
      const s = await anthropic(args).messages.create({
        model: "claude-haiku-4-5", max_tokens: 64, stream: true,
        messages: [{ role: "user", content: "hi" }],
      });
      return timed(started, s, (e) => (e.type === "content_block_delta" ? e.delta.text : ""));
    });
  },
  async geminiGenerate(args) {
    return attempt(async () => {
      const r = await gemini(args).models.generateContent({ model: "gemini-2.5-flash", contents: "hi" });
      return { content: r.text };
    });
  },
  async geminiStream(args) {
    return attempt(async () => {
      const started = performance.now();
      const s = await gemini(args).models.generateContentStream({ model: "gemini-2.5-flash", contents: "hi" });
      return timed(started, s, (c) => c.text);
    });
  },
  /// Aborts a stream after its second chunk.
  async openaiAbort(args) {
    return attempt(async () => {
      const controller = new AbortController();
      const s = await openai(args).chat.completions.create(
        { model: "gpt-4o-mini", stream: true, messages: [{ role: "user", content: "hi" }] },
        { signal: controller.signal },
      );
      // The SDK ends an aborted stream quietly or with an AbortError, by version.
      let chunks = 0;
      try {
        for await (const _ of s) {
          if (++chunks === 2) controller.abort();
        }
      } catch (e) {
        if (e.name !== "AbortError" && !String(e.message).includes("abort")) throw e;
      }
      return { chunks, aborted: controller.signal.aborted };
    });
  },
  /// Twelve streams at once from this page: when each began and ended, and the protocol.
  async parallelStreams(args) {
    return attempt(async () => {
      const client = openai(args);
      const started = performance.now();
      const one = async () => {
        const s = await client.chat.completions.create({
          model: "gpt-4o-mini", stream: true, messages: [{ role: "user", content: "hi" }],
        });
        const { arrivals } = await timed(started, s, () => "");
        return { first: arrivals[0], last: arrivals[arrivals.length - 1] };
      };
      return { streams: await Promise.all(Array.from({ length: 12 }, one)) };
    });
  },
  async upload(args) {
    return attempt(async () => {
      const bytes = new Uint8Array(3 * 1024 * 1024).map((_, i) => i % 251);
      const file = new File([bytes], "speech.wav", { type: "audio/wav" });
      const r = await openai(args).audio.transcriptions.create({ file, model: args.model });
      return { text: r.text };
    });
  },
  /// Reads the headers a page needs from a call made with fetch.
  async headers({ relay, token }) {
    const r = await fetch(`${relay}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-4o-mini", messages: [] }),
    });
    await r.text();
    const names = ["x-request-id", "x-relay-ratelimit-limit", "x-relay-ratelimit-remaining",
      "x-relay-ratelimit-reset", "x-relay-calls-remaining"];
    return Object.fromEntries(names.map((n) => [n, r.headers.get(n)]));
  },
  /// A realtime WebSocket, as a page opens it: the token in a subprotocol.
  realtime({ relay, token }) {
    return new Promise((resolve) => {
      const url = `${relay.replace("https://", "wss://")}/v1/realtime?model=gpt-realtime`;
      const ws = new WebSocket(url, ["realtime", `openai-insecure-api-key.${token}`]);
      const timer = setTimeout(() => resolve({ opened: false, reason: "timeout" }), 5000);
      ws.onmessage = (m) => {
        clearTimeout(timer);
        resolve({ opened: true, protocol: ws.protocol, first: JSON.parse(m.data).type });
        ws.close(1000);
      };
      ws.onclose = (e) => {
        clearTimeout(timer);
        resolve({ opened: false, code: e.code });
      };
    });
  },
};
