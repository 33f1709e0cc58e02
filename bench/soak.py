#!/usr/bin/env python3
"""Soak run (started by bench/soak.sh after the build). Stdlib only.

For SOAK_SECONDS (default 600): oha drives JSON calls at concurrency 48 and streamed calls
at concurrency 16 through one relay, while a loop issues a fresh token every 5 s, uses it,
revokes it and checks that the relay refuses it within 2 s. RSS, open descriptors and
threads of the relay are sampled every 5 s. At the end: errors, the samples over time, and
whether the relay's counts equal the calls made.
"""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (shared helpers: start, stop_all, oha, relay_cli, rss_kib, ...)

SECONDS = int(os.environ.get("SOAK_SECONDS", "600"))
RELAY_PORT, MOCK_PORT = 18190, 19181


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid):
    return bench.rss_kib(pid, "Threads")


def call(url, token, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def main():
    work = bench.tempfile.mkdtemp(prefix="relayapi-soak-")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    upstream = f"http://127.0.0.1:{MOCK_PORT}"
    relay_url = f"http://127.0.0.1:{RELAY_PORT}"
    chat_url = relay_url + "/v1/chat/completions"
    samples, revocations, anomalies = [], [], []
    results = {}
    try:
        bench.start("mock", [os.path.join(bench.REL, "examples", "mock_upstream"),
                             f"127.0.0.1:{MOCK_PORT}"], log_dir=work)
        bench.wait_http(upstream + "/health")
        data = os.path.join(work, "relay")
        issue = lambda *a: json.loads(bench.relay_cli(
            data, "token", "issue", "--upstream", upstream, "--api-key-env",
            "BENCH_UPSTREAM_KEY", "--json", *a))
        json_token, stream_token = issue("--name", "soak-json"), issue("--name", "soak-stream")
        relay = bench.start("relay", [os.path.join(bench.REL, "relayapi"), "serve", "--listen",
                                      f"127.0.0.1:{RELAY_PORT}"],
                            env={"RELAYAPI_DATA_DIR": data, "RELAYAPI_LOG": "warn"}, log_dir=work)
        bench.wait_http(relay_url + "/healthz")
        done = threading.Event()

        def sample():
            t0 = time.time()
            while not done.is_set():
                samples.append((time.time() - t0, bench.rss_kib(relay.pid) / 1024,
                                fds(relay.pid), threads(relay.pid)))
                done.wait(5)

        def revoke_loop():
            while not done.is_set():
                tok = issue("--name", "soak-revoked", "--max-calls", "10")
                statuses = [call(chat_url, tok["token"], bench.CHAT) for _ in range(3)]
                bench.relay_cli(data, "token", "revoke", tok["id"], "--yes")
                t = time.time()
                refused_after = None
                while time.time() - t < 2:
                    if call(chat_url, tok["token"], bench.CHAT) == 401:
                        refused_after = time.time() - t
                        break
                    time.sleep(0.05)
                revocations.append(refused_after)
                if statuses != [200, 200, 200] or refused_after is None:
                    anomalies.append({"statuses": statuses, "refused_after": refused_after})
                done.wait(5)

        helpers = [threading.Thread(target=sample), threading.Thread(target=revoke_loop)]
        loads = {
            "json c48": threading.Thread(target=lambda: results.update({"json c48": bench.oha(
                chat_url, json_token["token"], bench.CHAT, 48, secs=SECONDS)})),
            "stream c16": threading.Thread(target=lambda: results.update({"stream c16": bench.oha(
                chat_url, stream_token["token"], {**bench.CHAT, "stream": True}, 16, secs=SECONDS)})),
        }
        for t in helpers + list(loads.values()):
            t.start()
        for t in loads.values():
            t.join()
        done.set()
        for t in helpers:
            t.join()
        time.sleep(1)  # the last usage batch
        counted = {name: json.loads(bench.relay_cli(data, "token", "show", tok["id"], "--json"))["used_calls"]
                   for name, tok in (("json c48", json_token), ("stream c16", stream_token))}
    finally:
        bench.stop_all()

    report = render(results, counted, samples, revocations, anomalies)
    print("\n" + report)
    path = os.path.join(bench.ROOT, "bench", "results", f"soak-{stamp}.md")
    with open(path, "w") as f:
        f.write(report)
    print(f"written to {path}")
    bench.shutil.rmtree(work, ignore_errors=True)
    unexpected = sum(r["failed"] for r in results.values()) + len(anomalies) + sum(
        1 for name in results if counted[name] != results[name]["ok"])
    sys.exit(1 if unexpected else 0)


def render(results, counted, samples, revocations, anomalies):
    lines = [f"relayapi soak, {time.strftime('%Y-%m-%d %H:%M')}: {SECONDS} s, JSON at c48 and "
             "streams at c16 through one relay (SQLite), a token issued, used, revoked every ~5 s.", "",
             "| load | calls ok | failed | req/s | p99 ms | relay's count | count = calls |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['ok']} | {r['failed']} | {r['rps']:.0f} | {r['p99']:.2f} | "
                     f"{counted[name]} | {'yes' if counted[name] == r['ok'] else 'NO'} |")
    refused = [r for r in revocations if r is not None]
    lines += ["", f"- revocations: {len(revocations)}, refused within 2 s: {len(refused)}"
              + (f", slowest {max(refused) * 1000:.0f} ms" if refused else "")
              + f"; anomalies: {len(anomalies)} {anomalies[:3] if anomalies else ''}", "",
              "| t (s) | RSS (MiB) | open fds | threads |", "|---:|---:|---:|---:|"]
    step = max(1, len(samples) // 12)
    for t, rss, fd, th in samples[::step] + ([samples[-1]] if samples and (len(samples) - 1) % step else []):
        lines.append(f"| {t:.0f} | {rss:.1f} | {fd} | {th} |")
    if len(samples) > 24:
        warm = samples[len(samples) // 10:]
        first, last = warm[: len(warm) // 4], warm[-(len(warm) // 4):]
        avg = lambda xs, i: sum(x[i] for x in xs) / len(xs)
        lines += ["", f"- after warm-up: RSS {avg(first, 1):.1f} → {avg(last, 1):.1f} MiB (first vs last quarter), "
                  f"max {max(s[1] for s in samples):.1f} MiB; fds {avg(first, 2):.0f} → {avg(last, 2):.0f}, "
                  f"max {max(s[2] for s in samples)}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
