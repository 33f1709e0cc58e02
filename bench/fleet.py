#!/usr/bin/env python3
"""Two relays on one PostgreSQL (issue 17): requests/s at c64 (two oha runs of c32 at once,
one per relay) for a token with rpm and concurrency limits (set high enough never to
refuse, so that every call takes the fleet's path) beside a token without limits, with the
relays' CPU time per request and the fleet's database round trips per request (from
`relayapi_fleet_round_trips_total`).

Run after `cargo build --release --bin relayapi --example mock_upstream`; needs oha
(`cargo install oha --version 1.16.0 --locked`) and PostgreSQL on 127.0.0.1:5432 (trust,
user postgres; a database of its own is made and dropped). Relays and mock on CPU 1, oha on
CPU 0. QUICK=1 for 3 s runs. All traffic on 127.0.0.1, bounded in time.
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as b  # noqa: E402

SECS = 3 if os.environ.get("QUICK") == "1" else 10
PORTS, MOCK = (18490, 18491), 19490
PG = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
DB = "relayapi_bench_fleet"


def psql(sql):
    subprocess.run(["psql", f"{PG}/postgres", "-qc", sql], check=True, capture_output=True)


def metric(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def load(token):
    """c64 across both relays for SECS: (requests/s, failed, CPU µs per request)."""
    results = [None, None]

    def one(i):
        results[i] = b.oha(f"http://127.0.0.1:{PORTS[i]}/v1/chat/completions", token, b.CHAT,
                           32, secs=SECS)

    before = sum(b.cpu_ticks(p.pid) for p in b.procs[1:])
    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ticks = sum(b.cpu_ticks(p.pid) for p in b.procs[1:]) - before
    ok = sum(r["ok"] for r in results)
    rps = sum(r["rps"] for r in results)
    cpu_us = ticks / os.sysconf("SC_CLK_TCK") * 1e6 / ok if ok else 0
    return rps, sum(r["failed"] for r in results), cpu_us, ok


def main():
    work = tempfile.mkdtemp(prefix="relayapi-fleet-")
    data = os.path.join(work, "data")
    psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    psql(f"CREATE DATABASE {DB}")
    os.environ["RELAYAPI_DATABASE_URL"] = f"{PG}/{DB}"
    try:
        b.start("mock", [os.path.join(b.REL, "examples", "mock_upstream"), f"127.0.0.1:{MOCK}"],
                log_dir=work)
        issue = lambda *limits: json.loads(b.relay_cli(  # noqa: E731
            data, "token", "issue", "--api-key-env", "BENCH_UPSTREAM_KEY", "--json",
            "--provider", "custom", "--upstream", f"http://127.0.0.1:{MOCK}", *limits))["token"]
        free = issue()
        limited = issue("--rpm", "100000000", "--concurrency", "100000")
        for i, port in enumerate(PORTS):
            b.start(f"relay{i}", [os.path.join(b.REL, "relayapi"), "serve", "--listen",
                                  f"127.0.0.1:{port}", "--metrics"],
                    env={"RELAYAPI_DATA_DIR": data, "RELAYAPI_LOG": "warn"}, log_dir=work)
        for port in PORTS:
            b.wait_http(f"http://127.0.0.1:{port}/healthz")
        rows = []
        for name, token in (("no limits", free), ("rpm + concurrency", limited)):
            for port in PORTS:  # warm up: tokens opened, connections made
                b.oha(f"http://127.0.0.1:{port}/v1/chat/completions", token, b.CHAT, 8, n=200)
            trips = sum(metric(p, "relayapi_fleet_round_trips_total") for p in PORTS)
            rps, failed, cpu_us, ok = load(token)
            trips = sum(metric(p, "relayapi_fleet_round_trips_total") for p in PORTS) - trips
            rows.append((name, rps, failed, cpu_us, trips / ok if ok else 0))
        print(f"{SECS} s per scenario, c64 as 2 x c32 (one oha per relay); relays and mock on "
              f"CPU {b.SERVER_CPUS}, oha on CPU {b.LOADGEN_CPUS}; PostgreSQL unpinned")
        print(f"{'token':<20} {'req/s':>9} {'failed':>7} {'CPU us/req':>11} {'fleet trips/req':>16}")
        for name, rps, failed, cpu_us, trips in rows:
            print(f"{name:<20} {rps:>9.0f} {failed:>7} {cpu_us:>11.0f} {trips:>16.2f}")
        print(f"limited / unlimited requests/s: {rows[1][1] / rows[0][1]:.2f}x")
    finally:
        b.stop_all()
        psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
