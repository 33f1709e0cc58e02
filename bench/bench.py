#!/usr/bin/env python3
"""Drives the relayapi benchmark (run by bench/run.sh after the build). Stdlib only.

Targets, each given the same scenarios (c1, c64 with server CPU, stream, paced):
  relay          relayapi serve, a token without a call limit (counted in batches)
  relay-limited  the same relay, a token with a call limit (one atomic UPDATE per call)
  nginx, litellm ../shared/bench's reverse proxy and LiteLLM (when PEERS allows)
  mock           the upstream itself (the floor)
Relay-only scenarios: 1,000 concurrent slow streams (peak RSS), c64 with 100,000 tokens in
the store, and c64 with 1,000,000 usage records already written.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "bench")
CLK_TCK = os.sysconf("SC_CLK_TCK")

QUICK = os.environ.get("QUICK") == "1"
SERVER_CPUS = os.environ.get("SERVER_CPUS", "1")
LOADGEN_CPUS = os.environ.get("LOADGEN_CPUS", "0")
PEERS = os.environ.get("PEERS", "auto")
N_SEQ = int(os.environ.get("N_SEQ", "300" if QUICK else "2000"))
DUR = int(os.environ.get("DUR", "3" if QUICK else "10"))
SLOW_STREAMS = int(os.environ.get("SLOW_STREAMS", "1000"))
SEED_TOKENS = int(os.environ.get("SEED_TOKENS", "10000" if QUICK else "100000"))
SEED_USAGE = int(os.environ.get("SEED_USAGE", "100000" if QUICK else "1000000"))
RELAY_PORT, MOCK_PORT = 18090, 19081
# The relay the side scripts serve with (syscalls.py, tls.py): RELAY=/path for another build.
RELAY_BIN = os.path.abspath(os.environ.get("RELAY", os.path.join(REL, "relayapi")))
UPSTREAM_KEY = "sk-real-bench-upstream-key"

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}
procs = []


def pin(cpus):
    return ["taskset", "-c", cpus] if cpus else []


def start(name, cmd, env=None, log_dir=None):
    log = open(os.path.join(log_dir, f"{name}.log"), "w")
    p = subprocess.Popen(pin(SERVER_CPUS) + cmd, stdout=log, stderr=subprocess.STDOUT,
                         env={**os.environ, **(env or {})}, start_new_session=True)
    procs.append(p)
    return p


def stop_all():
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def wait_http(url, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {seconds}s")


def cpu_ticks(pid):
    """utime + stime of a process and its descendants."""
    children, ticks = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            s = open(f"/proc/{d}/stat").read()
            rest = s[s.rindex(")") + 2:].split()
            children.setdefault(int(rest[1]), []).append(int(d))
            ticks[int(d)] = int(rest[11]) + int(rest[12])
        except (OSError, ValueError, IndexError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += ticks.get(p, 0)
        todo.extend(children.get(p, []))
    return total


def rss_kib(pid, field="VmRSS"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def oha(url, key, body, conc, n=None, secs=None, timeout_s="30s", headers=()):
    """Runs oha; returns its JSON summary (bounded by count or duration, and by timeout)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(body, f)
    amount = ["-n", str(n)] if n else ["-z", f"{secs}s", "-w"]
    limit = 240 if n else secs + 60
    threads = "1" if LOADGEN_CPUS and "," not in LOADGEN_CPUS and "-" not in LOADGEN_CPUS else str(os.cpu_count())
    cmd = ["timeout", "-k", "5", str(limit)] + pin(LOADGEN_CPUS) + [
        "oha", "--no-tui", "--output-format", "json", "--worker-threads", threads,
        "-c", str(conc), *amount, "-t", timeout_s, "-m", "POST", "-T", "application/json",
        "-H", f"Authorization: Bearer {key}",
        *[arg for h in headers for arg in ("-H", h)], "-D", f.name, url]
    out = subprocess.run(cmd, capture_output=True, text=True)
    os.unlink(f.name)
    if out.returncode != 0:
        raise SystemExit(f"oha failed ({out.returncode}): {out.stderr[-500:]}")
    d = json.loads(out.stdout)
    s, p = d["summary"], d.get("latencyPercentiles") or {}
    codes = {str(k): v for k, v in (d.get("statusCodeDistribution") or {}).items()}
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    errs = {k: v for k, v in (d.get("errorDistribution") or {}).items() if "deadline" not in k}
    fb = d.get("firstBytePercentiles") or {}
    return {
        "ok": ok, "failed": sum(codes.values()) - ok + sum(errs.values()),
        "rps": ok / s["total"] if s.get("total") else 0.0,
        "p50": (p.get("p50") or 0) * 1e3, "p99": (p.get("p99") or 0) * 1e3,
        "ttfb50": (fb.get("p50") or 0) * 1e3, "ttfb99": (fb.get("p99") or 0) * 1e3,
    }


def peak_rss(relay_url, token, pid):
    """SLOW_STREAMS slow streams at once through the relay; answers oha's summary and the
    relay's RSS before and at its peak (KiB), sampled every 50 ms."""
    before = rss_kib(pid)
    peak = [before]
    slow = {**CHAT, "model": "mock-paced-1000-50", "stream": True}
    result = {}
    job = threading.Thread(target=lambda: result.update(
        oha(relay_url + "/v1/chat/completions", token, slow, SLOW_STREAMS, n=SLOW_STREAMS,
            timeout_s="60s")))
    job.start()
    while job.is_alive():
        peak.append(rss_kib(pid))
        time.sleep(0.05)
    job.join()
    return result, before, max(peak)


def scenarios(name, url, key, pid, n_seq, headers=(), streams=True):
    """`headers`: sent on every request (Portkey's gateway takes its upstream from them);
    `streams=False` for a target whose streams fail, so only its JSON figures count."""
    chat = url + "/v1/chat/completions"
    print(f"== {name} {chat}", flush=True)
    run = lambda body, conc, **k: oha(chat, key, body, conc, headers=headers, **k)  # noqa: E731
    run(CHAT, 8, n=300)  # warm-up
    if streams:
        run({**CHAT, "stream": True}, 4, n=100)
    r = {}
    r["c1"] = run(CHAT, 1, n=n_seq)
    t0 = cpu_ticks(pid) if pid else None
    r["c64"] = run(CHAT, 64, secs=DUR)
    if pid:
        r["c64"]["cpu_us"] = (cpu_ticks(pid) - t0) / CLK_TCK * 1e6 / max(r["c64"]["ok"], 1)
    if streams:
        r["stream"] = run({**CHAT, "stream": True}, 16, secs=DUR)
        r["paced"] = run({**CHAT, "model": "mock-paced-20-2", "stream": True}, 16, secs=DUR)
    for k, v in r.items():
        extra = f" cpu {v['cpu_us']:.0f}us/req" if "cpu_us" in v else ""
        print(f"  {k:6s} {v['rps']:9.0f} req/s p50 {v['p50']:.3f} p99 {v['p99']:.3f} ms "
              f"ttfb {v['ttfb50']:.3f} failed {v['failed']}{extra}", flush=True)
    return r


def shared_copy(work):
    """A private copy of ../shared/bench: its own run/ and results/ are left untouched."""
    dest = os.path.join(work, "shared")
    shutil.copytree(SHARED, dest, ignore=shutil.ignore_patterns("results", "run", ".venv"))
    return dest


def relay_cli(data_dir, *args, stdin=None):
    env = {**os.environ, "RELAYAPI_DATA_DIR": data_dir, "RELAYAPI_LOG": "warn",
           "BENCH_UPSTREAM_KEY": UPSTREAM_KEY}
    out = subprocess.run([os.path.join(REL, "relayapi"), *args], capture_output=True,
                         text=True, env=env, input=stdin, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"relayapi {args[0]} failed: {out.stderr}")
    return out.stdout.strip()


def main():
    work = tempfile.mkdtemp(prefix="relayapi-bench-")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results_dir = os.path.join(ROOT, "bench", "results")
    os.makedirs(results_dir, exist_ok=True)
    peers = PEERS == "1" or (PEERS == "auto" and os.path.isdir(SHARED))
    targets = {}
    try:
        if peers:
            shared = shared_copy(work)
            # LiteLLM's virtualenv is kept between runs under target/.
            venv = os.path.join(ROOT, "target", "bench-litellm-venv")
            # Made here, not by setup.sh: `python3 -m venv` cannot create one through a symlink.
            # The pinned version is setup.sh's own.
            if not os.path.exists(os.path.join(venv, "bin", "litellm")):
                pin = re.search(r"'(litellm\[proxy\]==[^']+)'",
                                open(os.path.join(shared, "setup.sh")).read()).group(1)
                subprocess.run(["python3", "-m", "venv", venv], check=True)
                subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", pin], check=True)
            os.symlink(venv, os.path.join(shared, ".venv"))
            subprocess.run(["bash", "setup.sh"], cwd=shared, check=True)
            subprocess.run(["bash", "start.sh", "mock", "nginx", "litellm", "portkey"], cwd=shared,
                           check=True,
                           env={**os.environ, "SERVER_CPUS": SERVER_CPUS})
            pid_of = lambda n: int(open(os.path.join(shared, "run", f"{n}.pid")).read())
            upstream = "http://127.0.0.1:18081"
        else:
            start("mock", [os.path.join(REL, "examples", "mock_upstream"), f"127.0.0.1:{MOCK_PORT}"],
                  log_dir=work)
            upstream = f"http://127.0.0.1:{MOCK_PORT}"
            wait_http(upstream + "/health")
        mock_pid = pid_of("mock") if peers else procs[-1].pid

        data = os.path.join(work, "relay")
        token = relay_cli(data, "token", "issue", "--provider", "openai", "--upstream", upstream,
                          "--api-key-env", "BENCH_UPSTREAM_KEY", "--name", "bench", "--quiet")
        limited = relay_cli(data, "token", "issue", "--provider", "openai", "--upstream", upstream,
                            "--api-key-env", "BENCH_UPSTREAM_KEY", "--max-calls", "1000000000",
                            "--quiet")
        relay = start("relay", [os.path.join(REL, "relayapi"), "serve", "--listen",
                                f"127.0.0.1:{RELAY_PORT}"],
                      env={"RELAYAPI_DATA_DIR": data, "RELAYAPI_LOG": "warn"}, log_dir=work)
        relay_url = f"http://127.0.0.1:{RELAY_PORT}"
        wait_http(relay_url + "/healthz")

        targets["mock"] = scenarios("mock", upstream, "sk-bench-master", mock_pid, N_SEQ)
        if peers:
            targets["nginx"] = scenarios("nginx", "http://127.0.0.1:18082", "sk-bench-master",
                                         pid_of("nginx"), N_SEQ)
        targets["relay"] = scenarios("relay", relay_url, token, relay.pid, N_SEQ)
        targets["relay-limited"] = scenarios("relay-limited", relay_url, limited, relay.pid, N_SEQ)
        if peers:
            targets["litellm"] = scenarios("litellm", "http://127.0.0.1:18083", "sk-bench-master",
                                           pid_of("litellm"), min(N_SEQ, 300))
            # Portkey's gateway: upstream from its headers; JSON only (its streams fail on
            # this Node, Portkey-AI/gateway#1389).
            targets["portkey"] = scenarios(
                "portkey", "http://127.0.0.1:18084", "sk-real", pid_of("portkey"),
                min(N_SEQ, 300), streams=False,
                headers=("x-portkey-provider: openai",
                         "x-portkey-custom-host: http://127.0.0.1:18081/v1"))

        # Peak RSS with many slow streams in flight at once.
        print(f"== relay: {SLOW_STREAMS} concurrent slow streams", flush=True)
        slow_result, rss_before, rss_peak = peak_rss(relay_url, token, relay.pid)
        extra = {"slow_streams": slow_result, "rss_idle_mib": rss_before / 1024,
                 "rss_peak_mib": rss_peak / 1024}
        print(f"  {slow_result.get('ok')} streams ok, peak RSS {rss_peak / 1024:.1f} MiB "
              f"(idle {rss_before / 1024:.1f} MiB)", flush=True)
        chat = relay_url + "/v1/chat/completions"

        # Many tokens in the store, then many usage records.
        db = f"sqlite://{data}/relayapi.db?mode=rwc"
        subprocess.run([os.path.join(REL, "examples", "bench_seed"), db, str(SEED_TOKENS), "0"], check=True)
        print(f"== relay with {SEED_TOKENS} more tokens in the store", flush=True)
        t0 = cpu_ticks(relay.pid)
        extra["many_tokens"] = oha(chat, token, CHAT, 64, secs=DUR)
        extra["many_tokens"]["cpu_us"] = (cpu_ticks(relay.pid) - t0) / CLK_TCK * 1e6 / max(extra["many_tokens"]["ok"], 1)
        print(f"  {extra['many_tokens']['rps']:.0f} req/s", flush=True)
        subprocess.run([os.path.join(REL, "examples", "bench_seed"), db, "0", str(SEED_USAGE)], check=True)
        print(f"== relay with {SEED_USAGE} more usage records", flush=True)
        extra["many_records"] = oha(chat, token, CHAT, 64, secs=DUR)
        print(f"  {extra['many_records']['rps']:.0f} req/s", flush=True)
    finally:
        stop_all()
        if peers:
            subprocess.run(["bash", "stop.sh"], cwd=os.path.join(work, "shared"))

    report = render(targets, extra, peers)
    print("\n" + report)
    path = os.path.join(results_dir, f"{stamp}.md")
    with open(path, "w") as f:
        f.write(report)
    with open(os.path.join(results_dir, f"{stamp}.json"), "w") as f:
        json.dump({"targets": targets, "extra": extra}, f, indent=1)
    print(f"written to {path}")
    shutil.rmtree(work, ignore_errors=True)


def render(t, extra, peers):
    lines = [f"relayapi benchmark, {time.strftime('%Y-%m-%d %H:%M')}; servers on CPU {SERVER_CPUS or 'any'}, "
             f"oha on CPU {LOADGEN_CPUS or 'any'}; c64/stream/paced {DUR}s each; latencies in ms.", "",
             "| target | c1 p50 | c1 p99 | c64 req/s | c64 p99 | CPU µs/req | stream req/s | stream TTFB p50 | paced TTFB p50 | failed |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in t.items():
        failed = sum(v["failed"] for v in r.values())
        cpu = r["c64"].get("cpu_us")
        # A target measured without streams shows a dash there.
        stream = (f"{r['stream']['rps']:.0f} | {r['stream']['ttfb50']:.3f} | {r['paced']['ttfb50']:.3f}"
                  if "stream" in r else "– | – | –")
        lines.append(f"| {name} | {r['c1']['p50']:.3f} | {r['c1']['p99']:.3f} | {r['c64']['rps']:.0f} | "
                     f"{r['c64']['p99']:.2f} | {'' if cpu is None else f'{cpu:.0f}'} | {stream} | {failed} |")
    relay, mock = t["relay"], t["mock"]
    lines += ["", f"- {SLOW_STREAMS} concurrent slow streams: {extra['slow_streams'].get('ok')} ok; "
              f"relay peak RSS {extra['rss_peak_mib']:.1f} MiB (idle {extra['rss_idle_mib']:.1f} MiB)",
              f"- c64 with {SEED_TOKENS} more tokens in the store: {extra['many_tokens']['rps']:.0f} req/s "
              f"({extra['many_tokens']['rps'] / relay['c64']['rps']:.2f}x one token)",
              f"- c64 with {SEED_USAGE} more usage records: {extra['many_records']['rps']:.0f} req/s "
              f"({extra['many_records']['rps'] / relay['c64']['rps']:.2f}x)"]
    if peers:
        n = t["nginx"]
        added = lambda x: x["c1"]["p50"] - mock["c1"]["p50"]
        # Issue 18's targets (speed, step 2), then the ones kept from the first benchmark.
        checks = [
            ("c64 req/s ≥ 0.7 × nginx", relay["c64"]["rps"] / n["c64"]["rps"], 0.7, ">="),
            ("CPU µs/req ≤ 2.0 × nginx", relay["c64"]["cpu_us"] / n["c64"]["cpu_us"], 2.0, "<="),
            ("added c1 p50 ≤ nginx's + 0.05 ms", added(relay) - added(n), 0.05, "<="),
            ("peak RSS, 1000 streams ≤ 48 MiB", extra["rss_peak_mib"], 48, "<="),
            ("paced TTFB ≤ nginx + 0.5 ms", relay["paced"]["ttfb50"] - n["paced"]["ttfb50"], 0.5, "<="),
            ("req/s with many tokens ≥ 0.9 × one", extra["many_tokens"]["rps"] / relay["c64"]["rps"], 0.9, ">="),
        ]
        if "portkey" in t:
            p = t["portkey"]["c64"]
            checks += [
                ("c64 req/s ≥ Portkey's (×)", relay["c64"]["rps"] / max(p["rps"], 1), 1, ">="),
                ("CPU µs/req ≤ Portkey's (×)", relay["c64"]["cpu_us"] / p["cpu_us"], 1, "<="),
            ]
        lines += ["", "| target (same run) | measured | limit | met |", "|---|---:|---:|---|"]
        for label, value, limit, op in checks:
            ok = value >= limit if op == ">=" else value <= limit
            lines.append(f"| {label} | {value:.3f} | {limit} | {'yes' if ok else 'no'} |")
        for peer, label in [("litellm", "LiteLLM"), ("portkey", "Portkey's gateway")]:
            if peer in t:
                lines.append(f"\nrelay vs {label} at c64: "
                             f"{relay['c64']['rps'] / max(t[peer]['c64']['rps'], 1):.0f}x the requests/s")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
