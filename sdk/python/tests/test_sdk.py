"""Tests of the Python SDK: the documented vectors, and round trips against the real relay
(started from the workspace's build: RELAYAPI_BIN or target/debug/relayapi)."""

import json
import os
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from relayapi_sdk import AdminClient, AdminError, Issuer, seal  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "token-format.md").read_text()
BIN = os.environ.get("RELAYAPI_BIN", str(ROOT / "target" / "debug" / "relayapi"))
API_KEY = "sk-real-python-sdk-0123456789abcdef"
ADMIN_SECRET = "python-admin-secret-0123456789abcdef"


def vectors(start):
    out, current = [], None
    for line in DOC.splitlines():
        line = line.strip()
        if line.startswith("```"):
            if current:
                out.append(current)
            current = None
            continue
        if ": " in line:
            name, value = line.split(": ", 1)
            if name == start:
                current = {}
            if current is not None:
                current[name] = value
    return out


def private_key(hex_scalar):
    return ec.derive_private_key(int(hex_scalar, 16), ec.SECP256R1())


class Upstream:
    """A local OpenAI-style upstream that records the Authorization header it receives."""

    def __init__(self):
        self.seen = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length") or 0))
                seen.append(self.headers.get("authorization"))
                body = b'{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Relay:
    def __init__(self, data_dir, *args, env=None):
        self.data_dir = data_dir
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", "127.0.0.1:0", *args], stderr=subprocess.PIPE, text=True,
            env={**os.environ, "RELAYAPI_DATA_DIR": data_dir, "RELAYAPI_LOG": "warn", **(env or {})})
        for line in self.proc.stderr:
            if line.startswith("relayapi listening on "):
                self.url = line.split()[-1]
                break
        else:
            raise RuntimeError("relayapi serve did not start")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def chat(self, token):
        request = urllib.request.Request(self.url + "/v1/chat/completions", data=b'{"model":"m"}',
                                         headers={"Authorization": f"Bearer {token}"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.proc.stderr.close()


def cli(data_dir, *args):
    out = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "RELAYAPI_DATA_DIR": data_dir, "RELAYAPI_LOG": "warn"})
    if out.returncode != 0:
        raise AssertionError(f"relayapi {' '.join(args)}: {out.stderr}")
    return out.stdout


class VectorTests(unittest.TestCase):
    def test_registered_token_vectors(self):
        found = vectors("vector")
        self.assertGreaterEqual(len(found), 2)
        for v in found:
            server = private_key(v["server_private_key"]).public_key()
            key = v["api_key"].encode()
            plaintext = bytes.fromhex(v["token_id"]) + len(key).to_bytes(2, "big") + key
            token = seal(1, server, plaintext, private_key(v["ephemeral_private_key"]))
            self.assertEqual(token, v["token"])

    def test_signed_token_vector(self):
        found = vectors("signed_vector")
        self.assertGreaterEqual(len(found), 1)
        for v in found:
            issuer_pem = private_key(v["issuer_private_key"]).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            issuer = Issuer("web-backend", issuer_pem, v["server_public_key"])
            token = issuer.mint_claims(v["claims"].encode(), private_key(v["ephemeral_private_key"]),
                                       bytes.fromhex(v["signature"]))
            self.assertEqual(token, v["token"])


class RelayTests(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(BIN):
            self.skipTest(f"no relayapi binary at {BIN} (build it, or set RELAYAPI_BIN)")
        self.tmp = tempfile.TemporaryDirectory()
        self.data = self.tmp.name
        self.upstream = Upstream()

    def tearDown(self):
        self.upstream.close()
        self.tmp.cleanup()

    def test_minted_tokens_are_accepted_and_counted(self):
        private_pem, public_pem = Issuer.generate_key()
        public_file = Path(self.data) / "issuer.pub.pem"
        public_file.write_bytes(public_pem)
        added = json.loads(cli(self.data, "issuer", "add", "py-backend", "--provider", "openai",
                               "--upstream", self.upstream.url, "--max-calls", "5",
                               "--public-key", str(public_file), "--json"))
        issuer = Issuer("py-backend", private_pem, added["relay_public_key"])
        token = issuer.mint(API_KEY, upstream=self.upstream.url, max_calls=2, ttl_seconds=120)
        relay = Relay(self.data)
        try:
            self.assertEqual(relay.chat(token)[0], 200)
            self.assertEqual(relay.chat(token)[0], 200)
            status, body = relay.chat(token)
            self.assertEqual((status, body["error"]["code"]), (429, "calls_exhausted"))
            self.assertEqual(self.upstream.seen, [f"Bearer {API_KEY}"] * 2)
            # Beyond the issuer's caps: refused.
            too_many = issuer.mint(API_KEY, upstream=self.upstream.url, max_calls=50)
            self.assertEqual(relay.chat(too_many)[1]["error"]["code"], "invalid_token")
            forged = Issuer("py-backend", Issuer.generate_key()[0], added["relay_public_key"])
            self.assertEqual(relay.chat(forged.mint(API_KEY, upstream=self.upstream.url))[0], 401)
        finally:
            relay.stop()

    def test_admin_client_round_trip(self):
        relay = Relay(self.data, "--admin-token-env", "PY_ADMIN", env={"PY_ADMIN": ADMIN_SECRET})
        try:
            admin = AdminClient(relay.url, ADMIN_SECRET)
            self.assertNotIn(ADMIN_SECRET, repr(admin))
            issued = admin.issue(api_key=API_KEY, upstream=self.upstream.url, max_calls=1, name="py")
            self.assertTrue(issued["token"].startswith("rly_"))
            self.assertEqual(relay.chat(issued["token"])[0], 200)
            self.assertEqual(admin.get(issued["id"])["used_calls"], 1)
            self.assertEqual(len(admin.list()), 1)
            updated = admin.update(issued["id"], max_calls=None)
            self.assertIsNone(updated["max_calls"])
            self.assertEqual(admin.revoke(issued["id"])["status"], "revoked")
            self.assertEqual(relay.chat(issued["token"])[1]["error"]["code"], "token_revoked")
            with self.assertRaises(AdminError) as e:
                admin.issue(api_key=API_KEY, ips=["not-a-cidr"])
            self.assertEqual((e.exception.status, e.exception.param), (400, "ip"))
            with self.assertRaises(AdminError) as e:
                AdminClient(relay.url, "wrong-secret").list()
            self.assertEqual(e.exception.status, 401)
        finally:
            relay.stop()


if __name__ == "__main__":
    unittest.main()
