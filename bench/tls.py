#!/usr/bin/env python3
"""HTTPS beside nginx (issue 16): the relay serving TLS itself (`--tls-cert/--tls-key`)
against nginx 1.22 as a TLS reverse proxy with the same certificate, both in front of the
project's mock upstream (examples/mock_upstream), both on CPU 1, oha on CPU 0.

  h1          10 s at c64 over HTTPS with HTTP/1.1 keep-alive: requests/s
  h2          10 s at c64 over HTTPS with HTTP/2 (64 streams on one connection per worker)
  handshakes  10 s at c16 with a new TLS connection per request: handshakes/s

Targets: the relay >= 0.7x nginx in requests/s, and >= 0.8x nginx in handshakes/s.
This machine drifts by tens of per cent within minutes, so each scenario runs ROUNDS times
(default 3), the relay and nginx back to back in alternating order; each round gives a
ratio, and the run reports the median round.
Run after `cargo build --release --bin relayapi --example mock_upstream`; needs oha
(`cargo install oha --version 1.16.0 --locked`), nginx and openssl. QUICK=1 for 3 s runs;
RELAY=/path/to/relayapi serves with another build.
All traffic on 127.0.0.1, bounded in time.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as b  # noqa: E402

SECS = 3 if os.environ.get("QUICK") == "1" else 10
ROUNDS = int(os.environ.get("ROUNDS", "3"))
RELAY, NGINX, MOCK = 18390, 18391, 19391
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}

NGINX_CONF = """
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx.error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {work}/tmp;
    proxy_temp_path {work}/tmp;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    tcp_nodelay on;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    upstream mock {{ server 127.0.0.1:{mock}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port} ssl http2 backlog=4096;
        ssl_certificate {work}/leaf.pem;
        ssl_certificate_key {work}/leaf.key;
        http2_max_concurrent_streams 256;
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer sk-real";
            proxy_buffering off;
        }}
    }}
}}
"""


def certificate(work):
    ssl = lambda *a: subprocess.run(["openssl", *a], cwd=work, check=True,  # noqa: E731
                                    capture_output=True)
    ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "leaf.key", "-out", "leaf.pem", "-days", "1", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1")
    return os.path.join(work, "leaf.pem"), os.path.join(work, "leaf.key")


def oha(url, token, conc, extra):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(BODY, f)
    cmd = ["timeout", "-k", "5", str(SECS + 60), "taskset", "-c", "0", "oha", "--no-tui",
           "--output-format", "json", "--insecure", "-c", str(conc), "-z", f"{SECS}s", "-w",
           "-m", "POST", "-T", "application/json", "-H", f"Authorization: Bearer {token}",
           "-D", f.name, *extra, url]
    out = subprocess.run(cmd, capture_output=True, text=True)
    os.unlink(f.name)
    if out.returncode != 0:
        raise SystemExit(f"oha failed: {out.stderr[-400:]}")
    d = json.loads(out.stdout)
    codes = d.get("statusCodeDistribution") or {}
    ok = sum(v for k, v in codes.items() if str(k).startswith("2"))
    failed = sum(codes.values()) - ok + sum((d.get("errorDistribution") or {}).values())
    return ok / d["summary"]["total"], failed


def cpu_per_request(pid, run):
    before = b.cpu_ticks(pid)
    rps, failed = run()
    used = (b.cpu_ticks(pid) - before) / b.CLK_TCK
    return rps, failed, used / max(rps * SECS, 1) * 1e6


def main():
    work = tempfile.mkdtemp(prefix="relayapi-tls-")
    os.makedirs(os.path.join(work, "tmp"))
    cert, key = certificate(work)
    data = os.path.join(work, "data")
    b.start("mock", [os.path.join(b.REL, "examples", "mock_upstream"), f"127.0.0.1:{MOCK}"],
            log_dir=work)
    token = json.loads(b.relay_cli(
        data, "token", "issue", "--api-key-env", "BENCH_UPSTREAM_KEY", "--json",
        "--provider", "custom", "--upstream", f"http://127.0.0.1:{MOCK}"))["token"]
    relay = b.start("relay", [b.RELAY_BIN, "serve", "--listen",
                              f"127.0.0.1:{RELAY}", "--tls-cert", cert, "--tls-key", key],
                    env={"RELAYAPI_DATA_DIR": data, "RELAYAPI_LOG": "warn"}, log_dir=work)
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(work=work, port=NGINX, mock=MOCK))
    nginx = b.start("nginx", ["nginx", "-p", work, "-c", os.path.join(work, "nginx.conf"),
                              "-g", "daemon off;"], log_dir=work)
    scenarios = [("h1", 64, [], 0.7), ("h2", 64, ["--http2"], 0.7),
                 ("handshakes", 16, ["--disable-keepalive"], 0.8)]
    rounds = {name: [] for name, *_ in scenarios}
    try:
        time.sleep(1)
        targets = [("relayapi", f"https://127.0.0.1:{RELAY}/v1/chat/completions", relay.pid),
                   ("nginx", f"https://127.0.0.1:{NGINX}/v1/chat/completions", nginx.pid)]
        for _, url, _ in targets:
            oha(url, token, 8, [])  # warm up
        for n in range(ROUNDS):
            order = targets if n % 2 == 0 else targets[::-1]
            for scenario, conc, extra, _ in scenarios:
                got = {}
                for name, url, pid in order:
                    got[name] = cpu_per_request(pid, lambda: oha(url, token, conc, extra))
                rounds[scenario].append(got)
    finally:
        b.stop_all()
    print(f"{SECS} s per scenario and server, {ROUNDS} rounds (relay and nginx back to back, "
          "alternating which goes first); servers on CPU 1, oha on CPU 0; nginx 1.22 proxies "
          "to the same mock. Each round's ratio, then the median round's figures:")
    print("| scenario | ratio per round | relayapi req/s | nginx req/s | ratio (median) | target | "
          "relayapi CPU µs/req | nginx CPU µs/req | failed (relay/nginx) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for scenario, _, _, target in scenarios:
        runs = sorted(rounds[scenario], key=lambda g: ratio_of(g))
        median = runs[len(runs) // 2]
        (r, rf, rc), (n, nf, nc) = median["relayapi"], median["nginx"]
        ratio = ratio_of(median)
        each = " / ".join(f"{ratio_of(g):.2f}" for g in rounds[scenario])
        failed = sum(g["relayapi"][1] for g in runs), sum(g["nginx"][1] for g in runs)
        print(f"| {scenario} | {each} | {r:,.0f} | {n:,.0f} | {ratio:.2f} | ≥ {target} "
              f"({'met' if ratio >= target else 'NOT met'}) | {rc:.0f} | {nc:.0f} | "
              f"{failed[0]}/{failed[1]} |")


def ratio_of(got):
    n = got["nginx"][0]
    return got["relayapi"][0] / n if n else 0


if __name__ == "__main__":
    main()
