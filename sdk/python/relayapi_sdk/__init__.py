"""relayapi SDK for Python backends.

- `Issuer` mints issuer-signed relayapi tokens offline (format v2): no network round trip
  and no database row per token. Register the issuer first with `relayapi issuer add`.
- `AdminClient` calls the relay's admin HTTP API (`serve --admin-token-env VAR`).

Only the `cryptography` package is needed. The token format is specified in
docs/token-format.md of the relayapi repository.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Iterable, Optional

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["Issuer", "AdminClient", "AdminError", "load_relay_public_key"]

TOKEN_PREFIX = "rly_"
FORMAT_V1 = 0x01
FORMAT_V2 = 0x02
KDF_LABEL = b"relayapi token v1"
SIGNATURE_LABEL = b"relayapi signed token v2"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _compressed(public: ec.EllipticCurvePublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)


def load_relay_public_key(value: str | bytes) -> ec.EllipticCurvePublicKey:
    """The relay's public key, as SEC1 hex (what `relayapi issuer add` prints) or SPKI PEM."""
    if isinstance(value, str) and not value.strip().startswith("-----BEGIN"):
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes.fromhex(value.strip()))
    data = value.encode() if isinstance(value, str) else value
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("the relay's public key must be a P-256 key")
    return key


def kid_of(public: ec.EllipticCurvePublicKey) -> bytes:
    return hashlib.sha256(_compressed(public)).digest()[:8]


def seal(version: int, server: ec.EllipticCurvePublicKey, plaintext: bytes,
         ephemeral: Optional[ec.EllipticCurvePrivateKey] = None) -> str:
    """ECIES-seals a plaintext into a token string (docs/token-format.md, "Sealing")."""
    header = bytes([version]) + kid_of(server)
    eph = ephemeral or ec.generate_private_key(ec.SECP256R1())
    eph_pub = _compressed(eph.public_key())
    shared = eph.exchange(ec.ECDH(), server)
    okm = HKDF(algorithm=hashes.SHA256(), length=44, salt=None,
               info=KDF_LABEL + eph_pub + _compressed(server)).derive(shared)
    sealed = AESGCM(okm[:32]).encrypt(okm[32:], plaintext, header)
    blob = header + eph_pub + sealed
    return TOKEN_PREFIX + base64.urlsafe_b64encode(blob).decode().rstrip("=")


def _signed_plaintext(claims_json: bytes, signature: bytes) -> bytes:
    if len(claims_json) > 8192:
        raise ValueError("claims longer than 8192 bytes")
    return struct.pack(">H", len(claims_json)) + claims_json + signature


class Issuer:
    """Mints signed tokens for one registered issuer."""

    def __init__(self, name: str, private_key_pem: str | bytes, relay_public_key: str | bytes):
        data = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError("the issuer key must be a P-256 private key")
        self.name = name
        self._key = key
        self._relay = load_relay_public_key(relay_public_key)

    @staticmethod
    def generate_key() -> tuple[bytes, bytes]:
        """A new issuer key pair: (private PKCS#8 PEM, public SPKI PEM for `issuer add --public-key`)."""
        key = ec.generate_private_key(ec.SECP256R1())
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        return private, public

    def mint(self, api_key: str, *, provider: str = "openai", upstream: Optional[str] = None,
             ttl_seconds: int = 300, max_calls: Optional[int] = None,
             models: Iterable[str] = (), origins: Iterable[str] = (), endpoints: Iterable[str] = (),
             max_output_tokens: Optional[int] = None, token_id: Optional[str] = None,
             now: Optional[int] = None) -> str:
        """A signed token; its limits must stay within the issuer's caps, or the relay refuses it."""
        if not api_key:
            raise ValueError("api_key is empty")
        iat = int(time.time()) if now is None else now
        claims: dict[str, Any] = {"iss": self.name, "id": token_id or os.urandom(16).hex(),
                                  "key": api_key, "provider": provider}
        if upstream is not None:
            claims["upstream"] = upstream
        claims["iat"] = iat
        claims["exp"] = iat + int(ttl_seconds)
        if max_calls is not None:
            claims["max_calls"] = int(max_calls)
        for field, values in (("models", models), ("origins", origins), ("endpoints", endpoints)):
            values = list(values)
            if values:
                claims[field] = values
        if max_output_tokens is not None:
            claims["max_output_tokens"] = int(max_output_tokens)
        claims_json = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
        return self.mint_claims(claims_json)

    def mint_claims(self, claims_json: bytes, ephemeral: Optional[ec.EllipticCurvePrivateKey] = None,
                    signature: Optional[bytes] = None) -> str:
        """Signs and seals exact claims bytes (`signature` only to reproduce test vectors)."""
        header = bytes([FORMAT_V2]) + kid_of(self._relay)
        if signature is None:
            der = self._key.sign(SIGNATURE_LABEL + header + claims_json, ec.ECDSA(hashes.SHA256()))
            r, s = decode_dss_signature(der)
            # The relay accepts only low-S signatures (each has a high-S twin).
            s = min(s, P256_ORDER - s)
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return seal(FORMAT_V2, self._relay, _signed_plaintext(claims_json, signature), ephemeral)


class AdminError(Exception):
    def __init__(self, status: int, body: Any):
        error = body.get("error", {}) if isinstance(body, dict) else {}
        super().__init__(f"{status} {error.get('code')}: {error.get('message')}")
        self.status, self.code, self.param = status, error.get("code"), error.get("param")


class AdminClient:
    """The admin HTTP API: `AdminClient("http://127.0.0.1:8080", secret).issue(api_key=..., ...)`."""

    def __init__(self, base_url: str, secret: str, timeout: float = 10.0):
        self.base = base_url.rstrip("/") + "/admin/v1"
        self._secret = secret
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"AdminClient({self.base!r}, secret=[redacted])"

    def _call(self, method: str, path: str, body: Optional[dict] = None, query: Optional[dict] = None) -> Any:
        url = self.base + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"Bearer {self._secret}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            try:
                payload = json.loads(e.read())
            except ValueError:
                payload = None
            raise AdminError(e.code, payload) from None

    def issue(self, **fields: Any) -> dict:
        """Fields as `token issue`: api_key (required), provider, upstream, max_calls, expires_in, models, origins, …"""
        return self._call("POST", "/tokens", fields)

    def list(self, all: bool = False) -> list:
        return self._call("GET", "/tokens", query={"all": "true" if all else None})

    def get(self, token_id: str) -> dict:
        return self._call("GET", f"/tokens/{urllib.parse.quote(token_id)}")

    def update(self, token_id: str, **fields: Any) -> dict:
        """A field left out stays; None clears it; a value sets it."""
        return self._call("PATCH", f"/tokens/{urllib.parse.quote(token_id)}", fields)

    def revoke(self, token_id: str) -> dict:
        return self._call("DELETE", f"/tokens/{urllib.parse.quote(token_id)}")

    def usage(self, by: str = "token", token: Optional[str] = None, since: Optional[str] = None,
              until: Optional[str] = None) -> list:
        return self._call("GET", "/usage", query={"by": by, "token": token, "since": since, "until": until})
