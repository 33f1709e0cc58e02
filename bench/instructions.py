#!/usr/bin/env python3
"""Instructions per call under callgrind: an A/B measure that this machine's drift cannot move.

    bench/instructions.py                  # target/release/relayapi
    bench/instructions.py A B              # two builds, one after the other
    N=3200 bench/instructions.py           # calls per build (default 3200)

Each build serves HTTPS (HTTP/1.1, as `tls.py`'s h1 scenario) under
`valgrind --tool=callgrind`, in front of the project's mock (examples/mock_upstream). 16
keep-alive clients (Python's http.client) send 320 calls to warm it up; the counters are
zeroed, N calls are sent on 16 new connections (their TLS handshakes, ~6 K instructions a
call at N=3200, are included), and the counters dumped. Printed per call: every instruction of the
relay, and those under the connections' tasks (the request path with the TLS and HTTP work of
the client's side), the usage writer and the count.

Instructions are not time (a cache miss costs more than an add), and under callgrind the
relay runs ~50x slower, so what runs on a timer (usage batches, token refreshes) is counted
in smaller batches than at full speed: compare builds with it, not the relay with nginx.
Needs valgrind and openssl; run after
`cargo build --release --bin relayapi --example mock_upstream`.
All traffic on 127.0.0.1, bounded by N and by timeouts.
"""
import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as b  # noqa: E402
import tls  # noqa: E402

N = int(os.environ.get("N", "3200"))
CLIENTS = 16
RELAY, MOCK = 18392, 19392
# Parts of the profile, by the function whose inclusive count they are.
PARTS = [
    ("connections", "relayapi::server::listener::serve::{{closure}}::{{closure}} "),
    ("usage writer", "relayapi::usage::write_loop::{{closure}} "),
    ("count, inline", "relayapi::server::counter::CallCounter::count_inline "),
    ("count, batched", "relayapi::server::counter::CallCounter::spawn_writer::{{closure}} "),
]


def send(port, token, calls):
    """`calls` chat completions from CLIENTS keep-alive connections; how many got a 200."""
    body = json.dumps(tls.BODY)
    context = ssl._create_unverified_context()
    ok = [0]
    lock = threading.Lock()

    def client(n):
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=120)
        for _ in range(n):
            conn.request("POST", "/v1/chat/completions", body,
                         {"Authorization": f"Bearer {token}",
                          "Content-Type": "application/json"})
            answer = conn.getresponse()
            answer.read()
            if answer.status == 200:
                with lock:
                    ok[0] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(calls // CLIENTS,)) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ok[0]


def inclusive(profile):
    """Total and inclusive instruction counts by function name, from callgrind_annotate."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", profile],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    counts = {}
    total = 0
    for line in out.splitlines():
        row = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$", line)
        if not row:
            continue
        count = int(row[1].replace(",", ""))
        if row[2].strip() == "PROGRAM TOTALS":
            total = count
        else:
            # `file:function [object]`
            name = row[2].split(":", 1)[-1].rsplit(" [", 1)[0]
            counts.setdefault(name + " ", count)
    return total, counts


def measure(binary, work, cert, key):
    data = os.path.join(work, f"data-{len(os.listdir(work))}")
    token = json.loads(b.relay_cli(
        data, "token", "issue", "--api-key-env", "BENCH_UPSTREAM_KEY", "--json",
        "--provider", "custom", "--upstream", f"http://127.0.0.1:{MOCK}"))["token"]
    profile = os.path.join(work, "callgrind.out")
    relay = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={profile}", binary, "serve",
         "--listen", f"127.0.0.1:{RELAY}", "--tls-cert", cert, "--tls-key", key],
        env={**os.environ, "RELAYAPI_DATA_DIR": data, "RELAYAPI_LOG": "warn"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                if send(RELAY, token, CLIENTS) == CLIENTS:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit("the relay did not answer under valgrind within 120 s")
            time.sleep(1)
        send(RELAY, token, 320)
        control = ["timeout", "60", "callgrind_control"]
        subprocess.run([*control, "-z", str(relay.pid)], check=True, capture_output=True)
        ok = send(RELAY, token, N)
        subprocess.run([*control, "-d", str(relay.pid)], check=True, capture_output=True)
    finally:
        relay.terminate()
        relay.wait(timeout=60)
    if ok != N // CLIENTS * CLIENTS:
        raise SystemExit(f"{binary}: {ok} of {N // CLIENTS * CLIENTS} calls answered 200")
    dumps = sorted(f for f in os.listdir(work) if f.startswith("callgrind.out."))
    total, counts = inclusive(os.path.join(work, dumps[0]))
    for f in os.listdir(work):
        if f.startswith("callgrind.out"):
            os.unlink(os.path.join(work, f))
    return total / ok, {label: counts.get(name, 0) / ok for label, name in PARTS}


def main():
    builds = [os.path.abspath(p) for p in sys.argv[1:]] or [b.RELAY_BIN]
    work = tempfile.mkdtemp(prefix="relayapi-instructions-")
    cert, key = tls.certificate(work)
    b.start("mock", [os.path.join(b.REL, "examples", "mock_upstream"), f"127.0.0.1:{MOCK}"],
            log_dir=work)
    try:
        rows = [(path, *measure(path, work, cert, key)) for path in builds]
    finally:
        b.stop_all()
    print(f"Instructions per call under callgrind: HTTPS, HTTP/1.1, {CLIENTS} keep-alive "
          f"clients, {N} calls after 320 to warm up.")
    print("| build | all | " + " | ".join(label for label, _ in PARTS) + " |")
    print("|---|---:|" + "---:|" * len(PARTS))
    for path, total, parts in rows:
        print(f"| {path} | {total:,.0f} | "
              + " | ".join(f"{parts[label]:,.0f}" for label, _ in PARTS) + " |")


if __name__ == "__main__":
    main()
