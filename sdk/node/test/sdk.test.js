'use strict';
// Tests of the Node SDK: the documented vectors, and round trips against the real relay
// (started from the workspace's build: RELAYAPI_BIN or target/debug/relayapi).

const test = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const { Issuer, AdminClient, AdminError, seal } = require('..');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const DOC = fs.readFileSync(path.join(ROOT, 'docs', 'token-format.md'), 'utf8');
const BIN = process.env.RELAYAPI_BIN || path.join(ROOT, 'target', 'debug', 'relayapi');
const API_KEY = 'sk-real-node-sdk-0123456789abcdef';
const ADMIN_SECRET = 'node-admin-secret-0123456789abcdef';

function vectors(start) {
  const out = [];
  let current = null;
  for (const raw of DOC.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('```')) { if (current) out.push(current); current = null; continue; }
    const at = line.indexOf(': ');
    if (at < 0) continue;
    const name = line.slice(0, at);
    if (name === start) current = {};
    if (current) current[name] = line.slice(at + 2);
  }
  return out;
}

function privateKeyFromScalar(hex) {
  const ecdh = crypto.createECDH('prime256v1');
  ecdh.setPrivateKey(Buffer.from(hex, 'hex'));
  const pub = ecdh.getPublicKey();
  return crypto.createPrivateKey({ format: 'jwk', key: {
    kty: 'EC', crv: 'P-256', d: Buffer.from(hex, 'hex').toString('base64url'),
    x: pub.subarray(1, 33).toString('base64url'), y: pub.subarray(33).toString('base64url') } });
}

function publicFromScalar(hex) {
  const ecdh = crypto.createECDH('prime256v1');
  ecdh.setPrivateKey(Buffer.from(hex, 'hex'));
  return ecdh.getPublicKey('hex', 'compressed');
}

test('registered token vectors', () => {
  const found = vectors('vector');
  assert.ok(found.length >= 2);
  for (const v of found) {
    const key = Buffer.from(v.api_key, 'utf8');
    const len = Buffer.alloc(2); len.writeUInt16BE(key.length);
    const plaintext = Buffer.concat([Buffer.from(v.token_id, 'hex'), len, key]);
    const token = seal(1, publicFromScalar(v.server_private_key), plaintext, Buffer.from(v.ephemeral_private_key, 'hex'));
    assert.strictEqual(token, v.token);
  }
});

test('signed token vector', () => {
  const found = vectors('signed_vector');
  assert.ok(found.length >= 1);
  for (const v of found) {
    const issuer = new Issuer('web-backend', privateKeyFromScalar(v.issuer_private_key), v.server_public_key);
    const token = issuer.mintClaims(Buffer.from(v.claims, 'utf8'), Buffer.from(v.ephemeral_private_key, 'hex'),
      Buffer.from(v.signature, 'hex'));
    assert.strictEqual(token, v.token);
  }
});

function upstream() {
  const seen = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push(req.headers.authorization);
      res.setHeader('content-type', 'application/json');
      res.end('{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}');
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () =>
    resolve({ url: `http://127.0.0.1:${server.address().port}`, seen, close: () => server.close() })));
}

function startRelay(dataDir, args = [], env = {}) {
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', ...args], {
    env: { ...process.env, RELAYAPI_DATA_DIR: dataDir, RELAYAPI_LOG: 'warn', ...env } });
  return new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error('relayapi serve did not start')), 30000);
    proc.stderr.on('data', (chunk) => {
      buffer += chunk;
      // A whole line only: stderr may arrive cut in the middle of the address.
      const m = buffer.match(/relayapi listening on (\S+)\r?\n/);
      if (m) { clearTimeout(timer); resolve({ url: m[1], proc }); }
    });
    proc.on('exit', (code) => reject(new Error(`relayapi serve exited ${code}`)));
  });
}

async function chat(relay, token) {
  const r = await fetch(`${relay.url}/v1/chat/completions`, {
    method: 'POST', headers: { Authorization: `Bearer ${token}` }, body: '{"model":"m"}' });
  return { status: r.status, body: await r.json() };
}

function stop(relay) {
  return new Promise((resolve) => { relay.proc.removeAllListeners('exit'); relay.proc.on('exit', resolve); relay.proc.kill('SIGTERM'); });
}

const haveBinary = fs.existsSync(BIN);

test('minted tokens are accepted and counted by the relay', { skip: !haveBinary && `no relayapi binary at ${BIN}` }, async () => {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'relayapi-node-'));
  const up = await upstream();
  const { privateKey, publicKey } = Issuer.generateKey();
  fs.writeFileSync(path.join(data, 'issuer.pub.pem'), publicKey);
  const added = JSON.parse(execFileSync(BIN, ['issuer', 'add', 'node-backend', '--provider', 'openai',
    '--upstream', up.url, '--max-calls', '5', '--public-key', path.join(data, 'issuer.pub.pem'), '--json'],
  { env: { ...process.env, RELAYAPI_DATA_DIR: data, RELAYAPI_LOG: 'warn' } }));
  const issuer = new Issuer('node-backend', privateKey, added.relay_public_key);
  const token = issuer.mint(API_KEY, { upstream: up.url, maxCalls: 2, ttlSeconds: 120 });
  const relay = await startRelay(data);
  try {
    assert.strictEqual((await chat(relay, token)).status, 200);
    assert.strictEqual((await chat(relay, token)).status, 200);
    const third = await chat(relay, token);
    assert.deepStrictEqual([third.status, third.body.error.code], [429, 'calls_exhausted']);
    assert.deepStrictEqual(up.seen, [`Bearer ${API_KEY}`, `Bearer ${API_KEY}`]);
    const tooMany = issuer.mint(API_KEY, { upstream: up.url, maxCalls: 50 });
    assert.strictEqual((await chat(relay, tooMany)).body.error.code, 'invalid_token');
  } finally {
    await stop(relay);
    up.close();
    fs.rmSync(data, { recursive: true, force: true });
  }
});

test('admin client round trip', { skip: !haveBinary && `no relayapi binary at ${BIN}` }, async () => {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'relayapi-node-'));
  const up = await upstream();
  const relay = await startRelay(data, ['--admin-token-env', 'NODE_ADMIN'], { NODE_ADMIN: ADMIN_SECRET });
  try {
    const admin = new AdminClient(relay.url, ADMIN_SECRET);
    assert.ok(!JSON.stringify(admin).includes(ADMIN_SECRET));
    const issued = await admin.issue({ api_key: API_KEY, upstream: up.url, max_calls: 1 });
    assert.ok(issued.token.startsWith('rly_'));
    assert.strictEqual((await chat(relay, issued.token)).status, 200);
    assert.strictEqual((await admin.get(issued.id)).used_calls, 1);
    assert.strictEqual((await admin.revoke(issued.id)).status, 'revoked');
    assert.strictEqual((await chat(relay, issued.token)).body.error.code, 'token_revoked');
    await assert.rejects(admin.issue({ api_key: API_KEY, ips: ['nope'] }),
      (e) => e instanceof AdminError && e.status === 400 && e.param === 'ip');
    await assert.rejects(new AdminClient(relay.url, 'wrong').list(), (e) => e.status === 401);
  } finally {
    await stop(relay);
    up.close();
    fs.rmSync(data, { recursive: true, force: true });
  }
});
