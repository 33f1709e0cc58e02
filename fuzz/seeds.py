#!/usr/bin/env python3
"""Writes the checked-in seed corpora (fuzz/seeds/<target>/). Run from fuzz/."""
import json, os, re, struct

def write(target, name, data):
    d = os.path.join("seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

# token_open: mode byte 0 = a token string; 1 = a v1 plaintext; 2 = a v2 plaintext.
doc = open("../docs/token-format.md").read()
for i, tok in enumerate(sorted(set(re.findall(r"rly_[A-Za-z0-9_-]{40,}", doc)))):
    write("token_open", f"vector_{i}", b"\x00" + tok.encode())
write("token_open", "not_a_token", b"\x00sk-proj-abcdef")
key = b"sk-test-0123456789"
write("token_open", "v1_plaintext", b"\x01" + bytes(range(16)) + struct.pack(">H", len(key)) + key)
write("token_open", "v1_bad_length", b"\x01" + bytes(16) + struct.pack(">H", 999) + key)
claims = json.dumps({"iss": "backend", "id": "00" * 16, "key": "sk-x", "provider": "openai",
                     "iat": 1, "exp": 2, "max_calls": 5, "models": ["gpt-4o*"]}).encode()
write("token_open", "v2_plaintext", b"\x02" + struct.pack(">H", len(claims)) + claims + bytes(64))

# sse_usage: settings byte (bit 0 hide, rest chunk length - 1), then the stream.
streams = {
    "openai": 'data: {"n":1}\n\ndata: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}\n\ndata: [DONE]\n\n',
    "anthropic": 'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":11,"output_tokens":1}}}\n\nevent: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":9}}\n\n',
    "gemini": 'data: {"candidates":[],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":6,"totalTokenCount":9}}\r\n\r\n',
    "responses": 'event: response.completed\ndata: {"type":"response.completed","response":{"usage":{"input_tokens":5,"output_tokens":7,"total_tokens":12}}}\n\n',
}
for name, text in streams.items():
    write("sse_usage", f"{name}_scan", bytes([0x0e]) + text.encode())
    write("sse_usage", f"{name}_hide", bytes([0x07]) + text.encode())

# body_policy: cap (u32 LE), family (0 openai, 1 anthropic, 2 gemini, 3 azure), path index
# (0 chat, 1 completions, 2 responses, 3 messages, 4 gemini), provider byte, then the body.
bodies = [
    (0, 0, '{"model":"gpt-4o","stream":true,"max_tokens":4000,"messages":[]}'),
    (0, 2, '{"model":"gpt-4o","max_output_tokens":null,"input":"hi"}'),
    (1, 3, '{"model":"claude-3-5","max_tokens":"lots"}'),
    (2, 4, '{"contents":[],"generationConfig":{"maxOutputTokens":99999}}'),
    (3, 0, '{"stream":true,"stream_options":{"include_usage":false}}'),
    (0, 1, '{"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}'),
]
for i, (family, path, body) in enumerate(bodies):
    write("body_policy", f"body_{i}", struct.pack("<I", 256) + bytes([family, path, 1]) + body.encode())

# forward_mapping: settings byte (auth style 0..4, bit 7 base path), then a request head.
heads = [
    (0x00, "/v1/chat/completions?stream=true\nauthorization: Bearer rly_abc\ncontent-type: application/json\norigin: https://app.example\ncookie: a=b"),
    (0x81, "/v1/messages\nx-api-key: rly_abc\nconnection: close, x-secret\nx-secret: 1\nanthropic-version: 2023-06-01"),
    (0x04, "/v1beta/models/gemini-pro:generateContent?key=rly_abc&alt=sse\nx-goog-api-key: rly_abc"),
    (0x80, "/v1/%2e%2e/admin?key=%72ly_abc\nx-forwarded-for: 1.2.3.4, 10.0.0.2"),
]
for i, (settings, head) in enumerate(heads):
    write("forward_mapping", f"head_{i}", bytes([settings]) + head.encode())
