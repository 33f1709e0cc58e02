#!/usr/bin/env python3
"""System calls, context switches and futex wake-ups per request, relay beside nginx.

    bench/syscalls.py            # after `cargo build --release` (bench/run.sh builds it)
    N=5000 bench/syscalls.py     # fewer requests per target
    RELAY=/path/to/relayapi bench/syscalls.py   # another build

For each target, in the same run and with the same pinning as bench.py (servers on
SERVER_CPUS, oha on LOADGEN_CPUS), N requests at concurrency 64 are sent twice:
  1. plain: voluntary and involuntary context switches of every thread of the server
     (from /proc/PID/task/*/status, before and after);
  2. under `perf trace -a -S` (system-wide; only the server's threads are kept): system
     calls by type, and futex calls that wake (`op: WAKE...`), from the trace's events.
Everything is divided by the requests answered 2xx. Targets: ../shared/bench's nginx
reverse proxy (the floor), the relay with a token without a call limit and with one, and
Portkey's gateway (PORTKEY=1; N/10 requests, it is ~100x slower). Needs root for perf.
All traffic stays on 127.0.0.1; every step is bounded by a count and by `timeout`.
"""
import collections
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

N = int(os.environ.get("N", "20000"))
# The relay build to measure (default: target/release/relayapi).
PORTKEY = os.environ.get("PORTKEY") == "1"


def tids(pid):
    """Every thread of a process and of its descendants (nginx's workers)."""
    children = collections.defaultdict(list)
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
                children[int(stat[stat.rindex(")") + 2:].split()[1])].append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            out.update(int(t) for t in os.listdir(f"/proc/{p}/task"))
        except OSError:
            pass
    return out


def switches(pid):
    """(voluntary, involuntary) context switches summed over the server's live threads."""
    vol = invol = 0
    for tid in tids(pid):
        try:
            for line in open(f"/proc/{tid}/status"):
                if line.startswith("voluntary_ctxt_switches:"):
                    vol += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    invol += int(line.split()[1])
        except OSError:
            pass
    return vol, invol


SECTION = re.compile(r"^ (.+) \((\d+)\), \d+ events")
ROW = re.compile(r"^\s+(\w+)\s+(\d+)\s+\d+\s+[\d.]+")
WAKE = re.compile(r"/(\d+) futex\(.*op: WAKE")


def parse_trace(path, keep):
    """Calls by syscall name, and futex wake calls, of the threads in `keep`."""
    calls, wakes, tid = collections.Counter(), 0, None
    in_summary = False
    with open(path, errors="replace") as f:
        for line in f:
            if not in_summary:
                if "Summary of events" in line:
                    in_summary = True
                    continue
                m = WAKE.search(line)
                if m and int(m.group(1)) in keep:
                    wakes += 1
                continue
            m = SECTION.match(line)
            if m:
                tid = int(m.group(2))
                continue
            m = ROW.match(line)
            if m and tid in keep:
                calls[m.group(1)] += int(m.group(2))
    return calls, wakes


def measure(name, url, key, pid, n, headers=()):
    chat = url + "/v1/chat/completions"
    run = lambda: bench.oha(chat, key, bench.CHAT, 64, n=n, headers=headers)  # noqa: E731
    bench.oha(chat, key, bench.CHAT, 8, n=min(n, 500), headers=headers)  # warm-up
    before = switches(pid)
    plain = run()
    after = switches(pid)
    keep = tids(pid)
    out = tempfile.NamedTemporaryFile(suffix=".trace", delete=False).name
    perf = subprocess.Popen(["timeout", "-s", "INT", "300", "perf", "trace", "-a", "-S",
                             "-o", out], stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # perf attaches to every CPU before the load starts
    traced = run()
    perf.send_signal(signal.SIGINT)
    perf.wait(timeout=120)
    keep |= tids(pid)
    calls, wakes = parse_trace(out, keep)
    os.unlink(out)
    ok_plain, ok_traced = max(plain["ok"], 1), max(traced["ok"], 1)
    r = {
        "requests": traced["ok"], "failed": plain["failed"] + traced["failed"],
        "rps_plain": plain["rps"],
        "voluntary": (after[0] - before[0]) / ok_plain,
        "involuntary": (after[1] - before[1]) / ok_plain,
        "futex_wakes": wakes / ok_traced,
        "syscalls": {k: v / ok_traced for k, v in calls.items()},
    }
    r["total"] = sum(r["syscalls"].values())
    print(f"== {name}: {r['total']:.1f} syscalls/req, {r['voluntary']:.2f} + "
          f"{r['involuntary']:.2f} switches/req, {r['futex_wakes']:.2f} futex wakes/req, "
          f"{r['rps_plain']:.0f} req/s untraced", flush=True)
    return r


def render(results):
    names = list(results)
    kinds = collections.Counter()
    for r in results.values():
        for k, v in r["syscalls"].items():
            kinds[k] = max(kinds[k], v)
    lines = [f"Per request at c64 ({N} requests per target; servers on CPU {bench.SERVER_CPUS}, "
             f"oha on CPU {bench.LOADGEN_CPUS}), {time.strftime('%Y-%m-%d %H:%M')}.", "",
             "| per request | " + " | ".join(names) + " |",
             "|---|" + "---:|" * len(names)]
    row = lambda label, get: lines.append(  # noqa: E731
        f"| {label} | " + " | ".join(get(results[n]) for n in names) + " |")
    row("**system calls**", lambda r: f"**{r['total']:.2f}**")
    for k, _ in sorted(kinds.items(), key=lambda kv: -kv[1]):
        if kinds[k] >= 0.01:
            row(f"`{k}`", lambda r, k=k: f"{r['syscalls'].get(k, 0):.2f}")
    row("futex wake-ups", lambda r: f"{r['futex_wakes']:.2f}")
    row("voluntary context switches", lambda r: f"{r['voluntary']:.2f}")
    row("involuntary context switches", lambda r: f"{r['involuntary']:.2f}")
    row("req/s (untraced run)", lambda r: f"{r['rps_plain']:.0f}")
    row("failed", lambda r: str(r["failed"]))
    if "nginx" in results:
        floor = results["nginx"]["total"]
        lines.append("")
        for n in names:
            if n != "nginx":
                lines.append(f"- {n}: {results[n]['total'] / floor:.2f}x nginx's system calls "
                             f"per request (target ≤ 1.5x)")
    return "\n".join(lines) + "\n"


def main():
    if os.geteuid() != 0:
        raise SystemExit("perf trace -a needs root")
    work = tempfile.mkdtemp(prefix="relayapi-syscalls-")
    results = {}
    peers = os.path.isdir(bench.SHARED) and bench.PEERS != "0"
    portkey = False
    try:
        if peers:
            shared = bench.shared_copy(work)
            portkey = PORTKEY and os.path.exists(os.path.join(
                shared, "portkey", "node_modules", "@portkey-ai", "gateway"))
            if PORTKEY and not portkey:
                print("Portkey's gateway skipped: not installed (bench/run.sh installs it)")
            services = ["mock", "nginx"] + (["portkey"] if portkey else [])
            subprocess.run(["bash", "start.sh", *services], cwd=shared, check=True,
                           env={**os.environ, "SERVER_CPUS": bench.SERVER_CPUS})
            pid_of = lambda s: int(open(os.path.join(shared, "run", f"{s}.pid")).read())  # noqa: E731
            upstream = "http://127.0.0.1:18081"
        else:
            bench.start("mock", [os.path.join(bench.REL, "examples", "mock_upstream"),
                                 f"127.0.0.1:{bench.MOCK_PORT}"], log_dir=work)
            upstream = f"http://127.0.0.1:{bench.MOCK_PORT}"
            bench.wait_http(upstream + "/health")
        data = os.path.join(work, "relay")
        issue = lambda *extra: bench.relay_cli(  # noqa: E731
            data, "token", "issue", "--provider", "openai", "--upstream", upstream,
            "--api-key-env", "BENCH_UPSTREAM_KEY", "--quiet", *extra)
        token, limited = issue(), issue("--max-calls", "1000000000")
        relay = bench.start("relay", [bench.RELAY_BIN, "serve", "--listen",
                                      f"127.0.0.1:{bench.RELAY_PORT}"],
                            env={"RELAYAPI_DATA_DIR": data, "RELAYAPI_LOG": "warn"}, log_dir=work)
        relay_url = f"http://127.0.0.1:{bench.RELAY_PORT}"
        bench.wait_http(relay_url + "/healthz")
        if peers:
            results["nginx"] = measure("nginx", "http://127.0.0.1:18082", "sk-bench-master",
                                       pid_of("nginx"), N)
        results["relay"] = measure("relay", relay_url, token, relay.pid, N)
        results["relay-limited"] = measure("relay-limited", relay_url, limited, relay.pid, N)
        if peers and portkey:
            results["portkey"] = measure(
                "portkey", "http://127.0.0.1:18084", "sk-real", pid_of("portkey"),
                max(N // 10, 500), headers=("x-portkey-provider: openai",
                                            "x-portkey-custom-host: http://127.0.0.1:18081/v1"))
    finally:
        bench.stop_all()
        if peers:
            subprocess.run(["bash", "stop.sh"], cwd=os.path.join(work, "shared"))
    report = render(results)
    print("\n" + report)
    results_dir = os.path.join(bench.ROOT, "bench", "results")
    os.makedirs(results_dir, exist_ok=True)
    path = os.path.join(results_dir, time.strftime("%Y%m%d-%H%M%S") + "-syscalls.md")
    with open(path, "w") as f:
        f.write(report)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
