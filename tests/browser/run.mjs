// The browser suite: headless Debian Chromium (playwright-core, no browser download) opens
// a page served from its own origin, which calls the relay over HTTPS with the official
// JS SDKs. The relay is the real binary, its provider the mock beside this file, its
// certificate from a throwaway CA that Chromium trusts for this run only (by the leaf's
// public key). Every case asserts on what the page's JavaScript observed.
//
//   RELAYAPI_BIN   the relay binary (default: target/debug/relayapi)
//   RUNS           how many times to run the whole suite (default 1)
//
// On a failure: a screenshot and the page's console under target/browser-artifacts/.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { chromium } from "playwright-core";
import { startMock, stats } from "./mock.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const relayBin = process.env.RELAYAPI_BIN ?? path.join(root, "target/debug/relayapi");
const artifacts = path.join(root, "target/browser-artifacts");
const runs = Number(process.env.RUNS ?? 1);
const work = fs.mkdtempSync(path.join(os.tmpdir(), "relayapi-browser-"));
const UPSTREAM_KEY = "sk-browser-suite-REAL-KEY-0123456789";

/// A CA and a certificate for 127.0.0.1; the leaf's SPKI hash is what Chromium trusts.
function certificates() {
  const ssl = (...args) => execFileSync("openssl", args, { cwd: work, stdio: ["ignore", "pipe", "pipe"] });
  ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=relayapi browser suite CA");
  ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1");
  fs.writeFileSync(path.join(work, "san.ext"), "subjectAltName=IP:127.0.0.1\n");
  ssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
    "-out", "leaf.pem", "-days", "1", "-extfile", "san.ext");
  const spki = execFileSync("sh", ["-c",
    "openssl x509 -in leaf.pem -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64"],
  { cwd: work }).toString().trim();
  return { cert: path.join(work, "leaf.pem"), key: path.join(work, "leaf.key"), spki };
}

const env = { ...process.env, RELAYAPI_DATA_DIR: path.join(work, "data"), RELAYAPI_LOG: "warn", K: UPSTREAM_KEY };
for (const name of Object.keys(env)) {
  if (name.startsWith("RELAYAPI_") && !["RELAYAPI_DATA_DIR", "RELAYAPI_LOG"].includes(name)) delete env[name];
}
const cli = (...args) => execFileSync(relayBin, args, { env, cwd: work }).toString();
const issue = (...args) => JSON.parse(cli("token", "issue", "--json", "--api-key-env", "K", ...args));

function startRelay(certs) {
  return new Promise((resolve, reject) => {
    const relay = spawn(relayBin, ["serve", "--listen", "127.0.0.1:0", "--max-body", "4MiB",
      "--tls-cert", certs.cert, "--tls-key", certs.key], { env, cwd: work });
    let log = "";
    relay.stderr.on("data", (d) => {
      log += d;
      // A whole line: the address may arrive in two pieces.
      const m = log.match(/relayapi listening on (https:\/\/\S+)\n/);
      if (m) resolve({ relay, url: m[1], log: () => log });
    });
    relay.on("exit", (code) => reject(new Error(`relay exited ${code}: ${log}`)));
  });
}

async function startPage() {
  const bundle = await esbuild.build({
    entryPoints: [path.join(here, "page/app.js")], bundle: true, write: false,
    format: "iife", platform: "browser", target: "chrome120", logLevel: "error",
  });
  const js = bundle.outputFiles[0].contents;
  const html = "<!doctype html><meta charset=utf-8><title>relayapi browser suite</title><script src=/app.js></script>";
  const server = http.createServer((req, res) => {
    if (req.url === "/app.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      return res.end(js);
    }
    res.writeHead(200, { "content-type": "text/html" });
    res.end(html);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

/// Waits until `check()` holds, up to `ms`.
async function eventually(check, ms = 3000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/// A stream arrived piece by piece: several chunks, spread over time.
function incremental({ arrivals }) {
  assert.ok(arrivals.length >= 6, `only ${arrivals.length} chunks`);
  const spread = arrivals[arrivals.length - 1] - arrivals[0];
  assert.ok(spread >= 200, `chunks arrived within ${spread.toFixed(0)} ms: in one lump`);
  const distinct = new Set(arrivals.map((t) => Math.round(t / 20))).size;
  assert.ok(distinct >= 4, `chunks arrived at only ${distinct} moments`);
}

function refusal(result, status, code) {
  assert.ok(result.error, `no error: ${JSON.stringify(result)}`);
  assert.equal(result.error.status, status, JSON.stringify(result.error));
  if (code) assert.equal(result.error.code, code, JSON.stringify(result.error));
  assert.ok(result.error.message.length > 0, "an unreadable message");
  assert.ok(!result.error.message.includes(UPSTREAM_KEY));
}

async function suite(browser, relayUrl, origin, tokens) {
  const page = await browser.newPage();
  const consoleLog = [];
  page.on("console", (m) => consoleLog.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => consoleLog.push(`[pageerror] ${e.message}`));
  await page.goto(origin);
  const run = (name, args) => page.evaluate(([n, a]) => window.cases[n](a), [name, { relay: relayUrl, ...args }]);
  const cases = [
    ["openai: a completion", async () => {
      const r = await run("openaiChat", { token: tokens.openai });
      assert.equal(r.ok?.content, "hello from the mock", JSON.stringify(r));
    }],
    ["openai: a stream arrives chunk by chunk", async () => {
      const r = await run("openaiStream", { token: tokens.openai });
      assert.ok(r.ok, JSON.stringify(r));
      incremental(r.ok);
      assert.equal(r.ok.content.trim(), "w0 w1 w2 w3 w4 w5 w6 w7");
    }],
    ["anthropic: a message, and a stream chunk by chunk", async () => {
      const r = await run("anthropicMessage", { token: tokens.anthropic });
      assert.equal(r.ok?.content, "hello from the mock", JSON.stringify(r));
      const s = await run("anthropicStream", { token: tokens.anthropic });
      assert.ok(s.ok, JSON.stringify(s));
      incremental(s.ok);
    }],
    ["gemini: generateContent, and a stream chunk by chunk", async () => {
      const r = await run("geminiGenerate", { token: tokens.gemini });
      assert.equal(r.ok?.content, "hello from the mock", JSON.stringify(r));
      const s = await run("geminiStream", { token: tokens.gemini });
      assert.ok(s.ok, JSON.stringify(s));
      incremental(s.ok);
    }],
    ["an aborted stream closes the upstream and is recorded as aborted", async () => {
      const before = stats.aborted;
      const r = await run("openaiAbort", { token: tokens.abort.token });
      assert.deepEqual(r.ok, { chunks: 2, aborted: true }, JSON.stringify(r));
      assert.ok(await eventually(() => stats.aborted === before + 1), "the upstream never saw the abort");
      const aborted = () => JSON.parse(cli("usage", "--json")).find((row) => row.key === tokens.abort.id)?.aborted;
      assert.ok(await eventually(() => aborted() === 1, 5000), `usage: ${cli("usage", "--json")}`);
    }],
    ["every refusal reaches the page as the SDK's typed error", async () => {
      refusal(await run("openaiChat", { token: "rly_not_a_token" }), 401, "invalid_token");
      refusal(await run("openaiChat", { token: tokens.revoked }), 401, "token_revoked");
      refusal(await run("openaiChat", { token: tokens.openai, model: "o1" }), 403, "model_not_allowed");
      refusal(await run("openaiChat", { token: tokens.otherOrigin }), 403, "origin_not_allowed");
      assert.ok((await run("openaiChat", { token: tokens.oneCall })).ok);
      refusal(await run("openaiChat", { token: tokens.oneCall }), 429, "calls_exhausted");
      assert.ok((await run("openaiChat", { token: tokens.rpm })).ok);
      refusal(await run("openaiChat", { token: tokens.rpm }), 429, "rate_limited");
      refusal(await run("openaiChat", { token: tokens.openai, content: "x".repeat(5 * 1024 * 1024) }), 413, "request_too_large");
      refusal(await run("anthropicMessage", { token: tokens.revoked }), 401, "token_revoked");
      const g = await run("geminiGenerate", { token: tokens.revoked });
      assert.ok(g.error && g.error.message.includes("token_revoked"), JSON.stringify(g));
    }],
    ["response headers a page needs are readable", async () => {
      const h = await run("headers", { token: tokens.limited });
      assert.deepEqual(h, {
        "x-request-id": "req_mock",
        "x-relay-ratelimit-limit": "5",
        "x-relay-ratelimit-remaining": "4",
        "x-relay-ratelimit-reset": "12",
        "x-relay-calls-remaining": "9",
      });
    }],
    ["twelve streams from one page progress together over HTTP/2", async () => {
      // The browser's own account of each response: its protocol and its connection.
      const cdp = await page.context().newCDPSession(page);
      await cdp.send("Network.enable");
      const seen = [];
      cdp.on("Network.responseReceived", ({ response }) => {
        if (response.url.includes("/v1/chat/completions")) seen.push(response);
      });
      const r = await run("parallelStreams", { token: tokens.openai });
      await cdp.detach();
      assert.ok(r.ok, JSON.stringify(r));
      assert.equal(seen.length, 12);
      assert.deepEqual([...new Set(seen.map((s) => s.protocol))], ["h2"]);
      const connections = new Set(seen.map((s) => s.connectionId)).size;
      console.log(`     12 streams over ${connections} connection(s)`);
      assert.equal(connections, 1);
      const lastFirst = Math.max(...r.ok.streams.map((s) => s.first));
      const firstLast = Math.min(...r.ok.streams.map((s) => s.last));
      assert.ok(lastFirst < firstLast, `a stream began only after another ended: ${JSON.stringify(r.ok.streams)}`);
    }],
    ["a File upload under a model list", async () => {
      const r = await run("upload", { token: tokens.openai, model: "whisper-1" });
      assert.ok(r.ok, JSON.stringify(r));
      assert.match(r.ok.text, /^heard \d+ bytes$/);
      assert.ok(Number(r.ok.text.split(" ")[1]) > 3 * 1024 * 1024, r.ok.text);
      refusal(await run("upload", { token: tokens.openai, model: "whisper-2" }), 403, "model_not_allowed");
    }],
    ["a realtime WebSocket from the page, and one from another origin refused", async () => {
      const r = await run("realtime", { token: tokens.openai });
      assert.deepEqual(r, { opened: true, protocol: "realtime", first: "session.created" });
      const refused = await run("realtime", { token: tokens.otherOrigin });
      assert.equal(refused.opened, false, JSON.stringify(refused));
    }],
  ];
  const failures = [];
  for (const [name, fn] of cases) {
    try {
      await fn();
      console.log(`ok   ${name}`);
    } catch (e) {
      console.log(`FAIL ${name}\n     ${e.message}`);
      failures.push(name);
      fs.mkdirSync(artifacts, { recursive: true });
      const slug = name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60);
      await page.screenshot({ path: path.join(artifacts, `${slug}.png`) }).catch(() => {});
      fs.writeFileSync(path.join(artifacts, `${slug}.console.log`), consoleLog.join("\n"));
    }
  }
  await page.close();
  return failures;
}

async function main() {
  const certs = certificates();
  const mock = await startMock();
  const page = await startPage();
  const up = ["--upstream", mock.url, "--origin", page.origin];
  const models = ["--model", "gpt-4o*", "--model", "whisper-1", "--model", "gpt-realtime"];
  const tokens = {
    openai: issue(...up, ...models).token,
    anthropic: issue("--provider", "anthropic", ...up).token,
    gemini: issue("--provider", "gemini", ...up).token,
    abort: issue(...up),
    revoked: null,
    otherOrigin: issue("--upstream", mock.url, "--origin", "https://elsewhere.example").token,
    oneCall: issue(...up, "--max-calls", "1").token,
    rpm: issue(...up, "--rpm", "1").token,
    limited: issue(...up, "--rpm", "5", "--max-calls", "10").token,
  };
  const revoked = issue(...up);
  cli("token", "revoke", revoked.id, "--yes");
  tokens.revoked = revoked.token;
  const relay = await startRelay(certs);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [`--ignore-certificate-errors-spki-list=${certs.spki}`, "--no-sandbox"],
  });
  let failed = 0;
  try {
    for (let i = 1; i <= runs; i++) {
      if (runs > 1) console.log(`# run ${i} of ${runs}`);
      // Fresh single-use tokens for each run.
      if (i > 1) {
        tokens.oneCall = issue(...up, "--max-calls", "1").token;
        tokens.rpm = issue(...up, "--rpm", "1").token;
        tokens.abort = issue(...up);
        tokens.limited = issue(...up, "--rpm", "5", "--max-calls", "10").token;
      }
      failed += (await suite(browser, relay.url, page.origin, tokens)).length;
    }
  } finally {
    await browser.close();
    relay.relay.kill("SIGTERM");
    mock.server.close();
    page.server.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
  const leaked = stats.seen.some((r) => JSON.stringify(r).includes("rly_"));
  if (leaked) {
    console.log("FAIL a relay token reached the provider");
    failed++;
  }
  console.log(failed ? `${failed} failure(s)` : `all passed (${runs} run${runs > 1 ? "s" : ""})`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
