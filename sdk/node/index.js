'use strict';
// relayapi SDK for Node.js backends: mint issuer-signed tokens offline (format v2) and call
// the admin HTTP API. Built-in `crypto` only. The format is specified in
// docs/token-format.md of the relayapi repository.

const crypto = require('node:crypto');

const TOKEN_PREFIX = 'rly_';
const FORMAT_V1 = 0x01;
const FORMAT_V2 = 0x02;
const KDF_LABEL = Buffer.from('relayapi token v1');
const SIGNATURE_LABEL = Buffer.from('relayapi signed token v2');

/** SEC1 compressed bytes of a P-256 public key given as hex, PEM or KeyObject. */
function compressedPublicKey(key) {
  if (typeof key === 'string' && !key.trim().startsWith('-----BEGIN')) {
    const bytes = Buffer.from(key.trim(), 'hex');
    return bytes.length === 33 ? bytes : Buffer.from(crypto.ECDH.convertKey(bytes, 'prime256v1', undefined, undefined, 'compressed'));
  }
  const object = typeof key === 'string' ? crypto.createPublicKey(key) : key;
  const jwk = object.export({ format: 'jwk' });
  if (jwk.crv !== 'P-256') throw new Error('the relay public key must be a P-256 key');
  const x = Buffer.from(jwk.x, 'base64url');
  const y = Buffer.from(jwk.y, 'base64url');
  return Buffer.concat([Buffer.from([(y[y.length - 1] & 1) ? 3 : 2]), x]);
}

function kidOf(serverCompressed) {
  return crypto.createHash('sha256').update(serverCompressed).digest().subarray(0, 8);
}

/** ECIES-seals a plaintext into a token string (docs/token-format.md, "Sealing"). */
function seal(version, serverPublicKey, plaintext, ephemeralPrivate) {
  const server = compressedPublicKey(serverPublicKey);
  const header = Buffer.concat([Buffer.from([version]), kidOf(server)]);
  const ecdh = crypto.createECDH('prime256v1');
  if (ephemeralPrivate) ecdh.setPrivateKey(ephemeralPrivate);
  else ecdh.generateKeys();
  const ephemeral = ecdh.getPublicKey(null, 'compressed');
  const shared = ecdh.computeSecret(server);
  const okm = Buffer.from(crypto.hkdfSync('sha256', shared, Buffer.alloc(0),
    Buffer.concat([KDF_LABEL, ephemeral, server]), 44));
  const cipher = crypto.createCipheriv('aes-256-gcm', okm.subarray(0, 32), okm.subarray(32, 44));
  cipher.setAAD(header);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return TOKEN_PREFIX + Buffer.concat([header, ephemeral, body]).toString('base64url');
}

class Issuer {
  /**
   * @param {string} name the issuer's registered name
   * @param {string|crypto.KeyObject} privateKey PKCS#8 PEM or KeyObject (P-256)
   * @param {string} relayPublicKey SEC1 hex (as `relayapi issuer add` prints) or PEM
   */
  constructor(name, privateKey, relayPublicKey) {
    this.name = name;
    this.key = typeof privateKey === 'string' ? crypto.createPrivateKey(privateKey) : privateKey;
    if (this.key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new Error('the issuer key must be a P-256 private key');
    }
    this.relay = compressedPublicKey(relayPublicKey);
  }

  /** A new key pair: { privateKey, publicKey } as PEM (give the public one to `issuer add --public-key`). */
  static generateKey() {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    return {
      privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }),
      publicKey: publicKey.export({ type: 'spki', format: 'pem' }),
    };
  }

  /** A signed token; its limits must stay within the issuer's caps, or the relay refuses it. */
  mint(apiKey, { provider = 'openai', upstream, ttlSeconds = 300, maxCalls, models = [], origins = [],
    endpoints = [], maxOutputTokens, tokenId, now } = {}) {
    if (!apiKey) throw new Error('apiKey is empty');
    const iat = now ?? Math.floor(Date.now() / 1000);
    const claims = { iss: this.name, id: tokenId ?? crypto.randomBytes(16).toString('hex'), key: apiKey, provider };
    if (upstream !== undefined) claims.upstream = upstream;
    claims.iat = iat;
    claims.exp = iat + ttlSeconds;
    if (maxCalls !== undefined) claims.max_calls = maxCalls;
    if (models.length) claims.models = models;
    if (origins.length) claims.origins = origins;
    if (endpoints.length) claims.endpoints = endpoints;
    if (maxOutputTokens !== undefined) claims.max_output_tokens = maxOutputTokens;
    return this.mintClaims(Buffer.from(JSON.stringify(claims)));
  }

  /** Signs and seals exact claims bytes (`signature` only to reproduce test vectors). */
  mintClaims(claimsJson, ephemeralPrivate, signature) {
    if (claimsJson.length > 8192) throw new Error('claims longer than 8192 bytes');
    const header = Buffer.concat([Buffer.from([FORMAT_V2]), kidOf(this.relay)]);
    const sig = signature ?? lowS(crypto.sign('sha256', Buffer.concat([SIGNATURE_LABEL, header, claimsJson]),
      { key: this.key, dsaEncoding: 'ieee-p1363' }));
    const length = Buffer.alloc(2);
    length.writeUInt16BE(claimsJson.length);
    return seal(FORMAT_V2, this.relay.toString('hex'), Buffer.concat([length, claimsJson, sig]), ephemeralPrivate);
  }
}

const P256_ORDER = BigInt('0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551');

/** The relay accepts only low-S signatures (each has a high-S twin): r ‖ min(s, n − s). */
function lowS(sig) {
  const s = BigInt('0x' + sig.subarray(32).toString('hex'));
  if (s <= P256_ORDER / 2n) return sig;
  const low = (P256_ORDER - s).toString(16).padStart(64, '0');
  return Buffer.concat([sig.subarray(0, 32), Buffer.from(low, 'hex')]);
}

class AdminError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(`${status} ${error.code}: ${error.message}`);
    this.status = status;
    this.code = error.code;
    this.param = error.param;
  }
}

/** The admin HTTP API (`relayapi serve --admin-token-env VAR`). */
class AdminClient {
  #secret;

  constructor(baseUrl, secret) {
    this.base = baseUrl.replace(/\/$/, '') + '/admin/v1';
    this.#secret = secret;
  }

  async #call(method, path, body, query) {
    const params = new URLSearchParams(Object.entries(query || {}).filter(([, v]) => v !== undefined && v !== null));
    const url = this.base + path + (params.toString() ? `?${params}` : '');
    const response = await fetch(url, {
      method,
      headers: { Authorization: `Bearer ${this.#secret}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const payload = await response.json().catch(() => null);
    if (!response.ok) throw new AdminError(response.status, payload);
    return payload;
  }

  issue(fields) { return this.#call('POST', '/tokens', fields); }
  list({ all = false } = {}) { return this.#call('GET', '/tokens', undefined, { all: all ? 'true' : undefined }); }
  get(id) { return this.#call('GET', `/tokens/${encodeURIComponent(id)}`); }
  /** A field left out stays; null clears it; a value sets it. */
  update(id, fields) { return this.#call('PATCH', `/tokens/${encodeURIComponent(id)}`, fields); }
  revoke(id) { return this.#call('DELETE', `/tokens/${encodeURIComponent(id)}`); }
  usage(query = {}) { return this.#call('GET', '/usage', undefined, query); }
}

module.exports = { Issuer, AdminClient, AdminError, seal, FORMAT_V1, FORMAT_V2 };
