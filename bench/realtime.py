#!/usr/bin/env python3
"""Realtime sessions through the relay (issue 15), against a WebSocket echo upstream:

  idle     1,000 sessions open at once and left idle: the relay's peak RSS (VmHWM)
           Target: <= 96 MiB.
  latency  10,000 small messages, each sent and its echo awaited, directly to the upstream
           and through the relay: p50 and p99 round trips. Target: the relay adds
           <= 0.2 ms at p50.
  audio    one session streaming 24 kHz PCM16 both ways (100 ms of audio, base64 in an
           `input_audio_buffer.append` event, ten a second, echoed) for 60 s: every echo
           keeps up, and the relay's RSS does not grow.

Run after `cargo build --release --bin relayapi`; needs `websockets` (tests/requirements.txt).
QUICK=1 shortens every round. All traffic on 127.0.0.1, bounded in count and time.
"""
import asyncio
import base64
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as b  # noqa: E402

from websockets.asyncio.client import connect  # noqa: E402
from websockets.asyncio.server import serve  # noqa: E402

os.environ.setdefault("SERVER_CPUS", "1")
QUICK = os.environ.get("QUICK") == "1"
IDLE = int(os.environ.get("IDLE_SESSIONS", "200" if QUICK else "1000"))
MESSAGES = int(os.environ.get("MESSAGES", "2000" if QUICK else "10000"))
AUDIO_SECONDS = int(os.environ.get("AUDIO_SECONDS", "10" if QUICK else "60"))
PORT, UPSTREAM = 18290, 19291
MIB = 1024 * 1024


def echo_upstream():
    """The provider: echoes every message. Runs in a process of its own (on CPU 0 with
    the client), so the relay's CPU is the relay's."""

    async def echo(ws):
        try:
            async for message in ws:
                await ws.send(message)
        except Exception:
            pass

    async def main():
        async with serve(echo, "127.0.0.1", UPSTREAM, max_size=None, ping_interval=None,
                         compression=None):
            await asyncio.Future()

    asyncio.run(main())


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def round_trips(url, headers, n):
    async with connect(url, additional_headers=headers, compression=None, max_size=None,
                       ping_interval=None) as ws:
        message = json.dumps({"type": "conversation.item.create", "pad": "x" * 64})
        for _ in range(200):  # warm up
            await ws.send(message)
            await ws.recv()
        rtts = []
        for _ in range(n):
            started = time.perf_counter()
            await ws.send(message)
            await ws.recv()
            rtts.append((time.perf_counter() - started) * 1e3)
        return rtts


async def idle_sessions(url, headers, n, pid):
    sessions = []
    for start in range(0, n, 50):
        batch = [connect(url, additional_headers=headers, compression=None,
                         ping_interval=None, open_timeout=30)
                 for _ in range(start, min(n, start + 50))]
        sessions.extend(await asyncio.gather(*batch))
    await asyncio.sleep(2)
    rss = b.rss_kib(pid) / 1024
    for ws in sessions:
        await ws.close()
    return len(sessions), rss


async def audio(url, headers, seconds, pid):
    chunk = base64.b64encode(os.urandom(4800)).decode()  # 100 ms of 24 kHz PCM16
    message = json.dumps({"type": "input_audio_buffer.append", "audio": chunk})
    lags, rss, late = [], [], 0.0
    async with connect(url, additional_headers=headers, compression=None, max_size=None,
                       ping_interval=None) as ws:
        started = time.perf_counter()
        for i in range(seconds * 10):
            due = started + i * 0.1
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            sent = time.perf_counter()
            late = max(late, sent - due)
            await ws.send(message)
            await ws.recv()
            lags.append((time.perf_counter() - sent) * 1e3)
            if i % 50 == 0:
                rss.append(b.rss_kib(pid) / 1024)
    return lags, rss, late


async def run(pid, token):
    relay = f"ws://127.0.0.1:{PORT}/v1/realtime?model=gpt-realtime"
    direct = f"ws://127.0.0.1:{UPSTREAM}/v1/realtime?model=gpt-realtime"
    auth = {"Authorization": f"Bearer {token}"}
    opened, idle_rss = await idle_sessions(relay, auth, IDLE, pid)
    idle_peak = max(idle_rss, b.rss_kib(pid, "VmHWM") / 1024)
    rows = []
    for _ in range(2):  # interleaved: drift hits both sides
        d = await round_trips(direct, {}, MESSAGES)
        r = await round_trips(relay, auth, MESSAGES)
        rows.append((d, r))
    lags, rss, late = await audio(relay, auth, AUDIO_SECONDS, pid)
    return opened, idle_rss, idle_peak, rows, lags, rss, late


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = tempfile.mkdtemp(prefix="relayapi-realtime-")
    data = os.path.join(work, "data")
    upstream = multiprocessing.Process(target=echo_upstream, daemon=True)
    upstream.start()
    os.sched_setaffinity(upstream.pid, {0})
    os.sched_setaffinity(0, {0})
    token = json.loads(b.relay_cli(
        data, "token", "issue", "--api-key-env", "BENCH_UPSTREAM_KEY", "--json",
        "--provider", "custom", "--upstream", f"http://127.0.0.1:{UPSTREAM}"))["token"]
    relay = b.start("relay", [os.path.join(b.REL, "relayapi"), "serve", "--listen",
                              f"127.0.0.1:{PORT}"],
                    env={"RELAYAPI_DATA_DIR": data, "RELAYAPI_LOG": "warn"}, log_dir=work)
    try:
        b.wait_http(f"http://127.0.0.1:{PORT}/healthz")
        before = b.rss_kib(relay.pid) / 1024
        opened, idle_rss, idle_peak, rows, lags, rss, late = asyncio.run(run(relay.pid, token))
    finally:
        b.stop_all()
        upstream.kill()

    print(f"relay on CPU {os.environ['SERVER_CPUS']}, client and echo upstream on CPU 0; "
          f"RSS at start {before:.1f} MiB")
    print(f"\nidle: {opened} sessions open: RSS {idle_rss:.1f} MiB, peak {idle_peak:.1f} MiB "
          f"(target <= 96 MiB: {'met' if idle_peak <= 96 else 'NOT met'})")
    print(f"\nlatency: {MESSAGES} round trips of a 100-byte message, p50 / p99 in ms")
    print("| run | direct p50 | relay p50 | added p50 | direct p99 | relay p99 |")
    print("|---|---|---|---|---|---|")
    added = []
    for i, (d, r) in enumerate(rows, 1):
        dp, rp = statistics.median(d), statistics.median(r)
        added.append(rp - dp)
        print(f"| {i} | {dp:.3f} | {rp:.3f} | {rp - dp:.3f} | {percentile(d, 0.99):.3f} | "
              f"{percentile(r, 0.99):.3f} |")
    print(f"added at p50: {min(added):.3f}–{max(added):.3f} ms (target <= 0.2 ms: "
          f"{'met' if max(added) <= 0.2 else 'NOT met'})")
    print(f"\naudio: {AUDIO_SECONDS} s of 24 kHz PCM16 both ways in 100 ms messages: echo "
          f"p50 {statistics.median(lags):.2f} ms, p99 {percentile(lags, 0.99):.2f} ms, "
          f"max {max(lags):.2f} ms; no message sent more than {late * 1e3:.1f} ms late; relay RSS "
          f"{rss[0]:.1f} → {rss[-1]:.1f} MiB (min {min(rss):.1f}, max {max(rss):.1f})")


if __name__ == "__main__":
    main()
