#!/usr/bin/env python3
"""A/B of two relayapi builds: interleaved rounds against the project's own mock, medians.

    bench/ab.py A_BINARY B_BINARY [ROUNDS]

Each round starts each build afresh (new data directory, key and token), in alternating
order, and measures c1 p50 (ROUNDS x 1,000 calls), c64 req/s with the server's CPU time per
request (6 s), and the paced-stream TTFB above the mock's 20 ms pause (c16, 5 s); with
RSS=1 also the peak RSS with bench.py's SLOW_STREAMS (1,000) slow streams at once; with
LIMITED=1 the token has a call limit (each call counted by its own conditional UPDATE). The
upstream is ../shared/bench's nginx mock when it exists (MOCK=own: examples/mock_upstream).
Every process runs on SERVER_CPUS (default 1) and oha on LOADGEN_CPUS (default 0), as in
bench.py. Only the two builds' figures within one run are compared: this machine drifts.
All traffic stays on 127.0.0.1; every step is bounded by a count or a duration.
"""
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

PORT = 18091
RSS = os.environ.get("RSS") == "1"
LIMITED = ["--max-calls", "1000000000"] if os.environ.get("LIMITED") == "1" else []


def run_one(binary, upstream, work, label):
    data = tempfile.mkdtemp(prefix=f"{label}-", dir=work)
    env = {**os.environ, "RELAYAPI_DATA_DIR": data, "RELAYAPI_LOG": "warn",
           "BENCH_UPSTREAM_KEY": bench.UPSTREAM_KEY}
    out = bench.subprocess.run(
        [binary, "token", "issue", "--provider", "openai", "--upstream", upstream,
         "--api-key-env", "BENCH_UPSTREAM_KEY", "--quiet", *LIMITED],
        capture_output=True, text=True, env=env, timeout=60, check=True)
    token = out.stdout.strip()
    relay = bench.start(label, [binary, "serve", "--listen", f"127.0.0.1:{PORT}"],
                        env={"RELAYAPI_DATA_DIR": data, "RELAYAPI_LOG": "warn"}, log_dir=work)
    try:
        url = f"http://127.0.0.1:{PORT}"
        bench.wait_http(url + "/healthz")
        chat = url + "/v1/chat/completions"
        bench.oha(chat, token, bench.CHAT, 8, n=500)  # warm-up
        c1 = bench.oha(chat, token, bench.CHAT, 1, n=1000)
        t0 = bench.cpu_ticks(relay.pid)
        c64 = bench.oha(chat, token, bench.CHAT, 64, secs=6)
        cpu = (bench.cpu_ticks(relay.pid) - t0) / bench.CLK_TCK * 1e6 / max(c64["ok"], 1)
        paced = bench.oha(chat, token, {**bench.CHAT, "model": "mock-paced-20-2", "stream": True},
                          16, secs=5)
        failed = c1["failed"] + c64["failed"] + paced["failed"]
        result = {"c1_p50": c1["p50"], "c64_rps": c64["rps"], "cpu_us": cpu,
                  "paced_ttfb": paced["ttfb50"], "failed": failed}
        if RSS:
            slow, _, peak = bench.peak_rss(url, token, relay.pid)
            result["rss_mib"] = peak / 1024
            result["failed"] += bench.SLOW_STREAMS - slow["ok"]
        return result
    finally:
        relay.terminate()
        relay.wait(timeout=15)


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    builds = {"A": os.path.abspath(sys.argv[1]), "B": os.path.abspath(sys.argv[2])}
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    work = tempfile.mkdtemp(prefix="relayapi-ab-")
    shared = None
    if os.path.isdir(bench.SHARED) and os.environ.get("MOCK") != "own":
        # The same upstream bench.py uses with peers: ../shared/bench's nginx mock.
        shared = bench.shared_copy(work)
        bench.subprocess.run(["python3", "mock/gen_bodies.py"], cwd=shared, check=True)
        bench.subprocess.run(["bash", "start.sh", "mock"], cwd=shared, check=True,
                             env={**os.environ, "SERVER_CPUS": bench.SERVER_CPUS})
        upstream = "http://127.0.0.1:18081"
    else:
        upstream = f"http://127.0.0.1:{bench.MOCK_PORT}"
        bench.start("mock", [os.path.join(bench.REL, "examples", "mock_upstream"),
                             f"127.0.0.1:{bench.MOCK_PORT}"], log_dir=work)
    results = {"A": [], "B": []}
    try:
        bench.wait_http(upstream + "/health")
        for r in range(rounds):
            order = ["A", "B"] if r % 2 == 0 else ["B", "A"]
            for label in order:
                res = run_one(builds[label], upstream, work, label)
                results[label].append(res)
                print(f"round {r + 1} {label}: c1 p50 {res['c1_p50']:.3f} ms, "
                      f"c64 {res['c64_rps']:.0f} req/s {res['cpu_us']:.0f} us/req, "
                      f"paced TTFB {res['paced_ttfb']:.3f} ms, "
                      f"{'peak RSS %.1f MiB, ' % res['rss_mib'] if RSS else ''}"
                      f"failed {res['failed']}",
                      flush=True)
    finally:
        bench.stop_all()
        if shared:
            bench.subprocess.run(["bash", "stop.sh"], cwd=shared)
    print(f"\nA = {builds['A']}\nB = {builds['B']}\nmedians of {rounds} rounds "
          f"({time.strftime('%Y-%m-%d %H:%M')}):\n")
    rss_head = (" peak RSS MiB |", "---:|") if RSS else ("", "")
    print(f"| build | c1 p50 ms | c64 req/s | CPU µs/req | paced TTFB ms |{rss_head[0]} failed |")
    print(f"|---|---:|---:|---:|---:|{rss_head[1]}---:|")
    for label in ("A", "B"):
        rs = results[label]
        med = {k: statistics.median(x[k] for x in rs) for k in rs[0]}
        print(f"| {label} | {med['c1_p50']:.3f} | {med['c64_rps']:.0f} | {med['cpu_us']:.0f} | "
              f"{med['paced_ttfb']:.3f} |{' %.1f |' % med['rss_mib'] if RSS else ''} "
              f"{sum(x['failed'] for x in rs)} |")


if __name__ == "__main__":
    main()
