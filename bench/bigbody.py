#!/usr/bin/env python3
"""Memory under large bodies (issue 14, item 13): 8 concurrent requests of just under
32 MiB each, against a release relay, measuring its peak RSS and how fast /healthz answers
throughout. Two rounds:

  spent   a token with no calls left (the reported attack: every answer is 429)
  capped  a token with a model list and an output cap (the body is read, checked, rewritten
          and forwarded to the project's mock upstream)

Target: peak RSS <= 8 x 32 MiB + 64 MiB, and /healthz within 50 ms throughout.
Run after `cargo build --release --bin relayapi --example mock_upstream`. Stdlib only;
all traffic on 127.0.0.1, bounded in count and time.
"""
import http.client
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time

os.environ.setdefault("SERVER_CPUS", "")  # both cores: parsing runs off the workers
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as b  # noqa: E402

CONCURRENT = 8
BODY_BYTES = 32 * 1024 * 1024 - 4096
PORT, MOCK = 18190, 19181
MIB = 1024 * 1024


def body():
    prefix = b'{"model":"gpt-4o-mini","stream":true,"max_tokens":100000,"messages":[{"role":"user","content":"'
    suffix = b'"}]}'
    return prefix + b"a" * (BODY_BYTES - len(prefix) - len(suffix)) + suffix


def post(token, payload, out, i):
    started = time.time()
    try:
        c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
        c.request("POST", "/v1/chat/completions", body=payload,
                  headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
        r = c.getresponse()
        r.read()
        out[i] = (r.status, time.time() - started)
    except Exception as e:  # a refusal may close the connection before the body is sent
        out[i] = (type(e).__name__, time.time() - started)


def health_probe(stop, worst):
    """Runs in a process of its own: the senders' threads share a GIL it must not wait on."""
    while not stop.is_set():
        started = time.time()
        try:
            c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
            c.request("GET", "/healthz")
            c.getresponse().read()
            c.close()
        except Exception:
            worst.append(float("inf"))
        worst.append(time.time() - started)
        time.sleep(0.01)


def round_(name, pid, token, payload):
    b.rss_kib(pid)
    baseline = b.rss_kib(pid) / 1024
    manager = multiprocessing.Manager()
    stop, probes = manager.Event(), manager.list()
    probe = multiprocessing.Process(target=health_probe, args=(stop, probes))
    probe.start()
    time.sleep(0.1)
    results = [None] * CONCURRENT
    threads = [threading.Thread(target=post, args=(token, payload, results, i))
               for i in range(CONCURRENT)]
    started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    elapsed = time.time() - started
    time.sleep(0.2)
    stop.set()
    probe.join()
    probes = list(probes)
    manager.shutdown()
    peak = b.rss_kib(pid, "VmHWM") / 1024
    statuses = {}
    for status, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {
        "round": name, "statuses": statuses, "seconds": round(elapsed, 2),
        "rss_before_mib": round(baseline, 1), "peak_rss_mib": round(peak, 1),
        "healthz_max_ms": round(max(probes) * 1e3, 1), "healthz_probes": len(probes),
    }


def main():
    work = tempfile.mkdtemp(prefix="relayapi-bigbody-")
    data = os.path.join(work, "data")
    b.start("mock", [os.path.join(b.REL, "examples", "mock_upstream"), f"127.0.0.1:{MOCK}"],
            log_dir=work)
    upstream = f"http://127.0.0.1:{MOCK}"
    issue = lambda *extra: json.loads(b.relay_cli(  # noqa: E731
        data, "token", "issue", "--api-key-env", "BENCH_UPSTREAM_KEY", "--json",
        "--provider", "custom", "--upstream", upstream, *extra))["token"]
    spent = issue("--max-calls", "1")
    capped = issue("--model", "gpt-4o*", "--max-output-tokens", "100")
    relay = b.start("relay", [os.path.join(b.REL, "relayapi"), "serve", "--listen",
                              f"127.0.0.1:{PORT}"],
                    env={"RELAYAPI_DATA_DIR": data, "RELAYAPI_LOG": "warn"}, log_dir=work)
    try:
        b.wait_http(f"http://127.0.0.1:{PORT}/healthz")
        c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
        c.request("POST", "/v1/chat/completions", body=json.dumps(b.CHAT),
                  headers={"authorization": f"Bearer {spent}", "content-type": "application/json"})
        assert c.getresponse().status == 200, "the spent token's one call"
        payload = body()
        rows = [round_("spent", relay.pid, spent, payload),
                round_("capped", relay.pid, capped, payload)]
    finally:
        b.stop_all()
    target = CONCURRENT * 32 + 64
    print(f"{CONCURRENT} concurrent bodies of {BODY_BYTES / MIB:.1f} MiB; target: peak RSS "
          f"<= {target} MiB, /healthz <= 50 ms")
    print("| round | answers | seconds | RSS before (MiB) | peak RSS (MiB) | /healthz max (ms) | met |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        met = r["peak_rss_mib"] <= target and r["healthz_max_ms"] <= 50
        print(f"| {r['round']} | {r['statuses']} | {r['seconds']} | {r['rss_before_mib']} | "
              f"{r['peak_rss_mib']} | {r['healthz_max_ms']} ({r['healthz_probes']} probes) | "
              f"{'yes' if met else 'no'} |")


if __name__ == "__main__":
    main()
