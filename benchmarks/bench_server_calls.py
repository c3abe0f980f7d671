"""Calls one ``earshot serve`` process holds, side by side with a bare asyncio chain.

For N = 1, 2, 4, ... concurrent WebSocket callers (`earshot.server.client.CallClient`, the tone
caller below, 2 turns per 10 s), each of three servers runs in its own subprocess, fresh for
every N:

* ``bare`` — a bare asyncio chain of the same shape: the same WebSocket protocol, clock sync and
  frame ticker, a per-call input queue and worker (frame RMS instead of a VAD), one output frame
  sent per tick; no session, no models;
* ``fake`` — ``earshot serve --stack fake``: the whole session on the shipped fakes
  (orchestration only);
* ``fast`` — ``earshot serve --stack fast`` (the default): Silero, pocketsphinx, scripted LLM,
  espeak-ng; any other ``earshot serve --stack`` (``neural``, ``local``) runs the same way.

A server "holds" N calls when the p99 lateness of its frame ticks (how late each call's 20 ms
tick ran, from ``/healthz``) stays under 20 ms and no call failed. Reported: the largest N held
per server and the ratios fake/bare and fast/bare. The callers run in this process; their
own send lateness is printed too, so an overloaded load generator is visible.

``--memory`` instead runs ``--memory-calls`` calls of ``--long-s`` seconds against
``--stack`` and reads the server's RSS at ``--short-s`` and at the end: per-call memory then
vs now (flat = ratio near 1).

    python benchmarks/bench_server_calls.py [--duration-s 20] [--max-n 16]
    python benchmarks/bench_server_calls.py --memory --short-s 60 --long-s 600
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

from earshot.clock import SystemClock  # noqa: E402
from earshot.server.client import CallClient  # noqa: E402

LATENESS_LIMIT_MS = 20.0

BARE_SERVER = r"""
import asyncio, sys
import numpy as np
from aiohttp import web, WSMsgType
from earshot.clock import SystemClock
from earshot.server import protocol as proto
from earshot.transports.clocksync import ClockSync, ProbeBook
from earshot.transports.websocket import LatenessStats

LATE = LatenessStats()

async def call(request):
    ws = web.WebSocketResponse(); await ws.prepare(request)
    clock = SystemClock(); sync = ClockSync(); probes = ProbeBook(sync)
    hello = proto.parse_client((await ws.receive()).data)
    q = asyncio.Queue(); ended = asyncio.Event(); levels = []
    async def reader():
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                a = proto.unpack_uplink(msg.data, 1, 640); q.put_nowait(a.payload)
            else:
                m = proto.parse_client(msg.data)
                if isinstance(m, proto.SyncReply):
                    probes.reply(m.id, m.t0_ms, m.t1_ms, m.t2_ms, clock.now_ms())
                elif isinstance(m, proto.End):
                    ended.set()
        ended.set()
    async def worker():
        while True:
            pcm = np.frombuffer(await q.get(), "<i2")
            levels.append(float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))))
            del levels[:-50]
    async def ticker():
        start = clock.now_ms(); k = 0; seq = 0
        while True:
            k += 1; due = start + 20 * k
            await clock.sleep_until_ms(due); LATE.add(clock.now_ms() - due)
            pcm = np.zeros(320, np.int16)
            await ws.send_bytes(proto.pack_downlink(
                1, seq == 0, seq, 1, seq * 320, clock.now_ms(), pcm.tobytes()))
            seq += 1
    async with asyncio.TaskGroup() as tg:
        r = tg.create_task(reader()); w = tg.create_task(worker())
        for _ in range(5):
            i, t0 = probes.probe(clock.now_ms())
            await ws.send_str(proto.dump(proto.Sync(id=i, t0_ms=t0)))
            await asyncio.sleep(0.03)
        await ws.send_str(proto.dump(proto.Ready(call_id="bare", codec="pcm16", frame_ms=20)))
        t = tg.create_task(ticker())
        await ended.wait()
        for x in (r, w, t): x.cancel()
    await ws.send_str(proto.dump(proto.Bye(call_id="bare", out_dir="-", turns=0)))
    await ws.close()
    return ws

async def health(request):
    return web.json_response({"ticks": LATE.n, "tick_lateness_p99_ms": LATE.quantile_ms(0.99),
                              "active_calls": 0})

app = web.Application(); app.router.add_get("/ws", call); app.router.add_get("/healthz", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(kind: str, port: int, out: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    if kind == "bare":
        cmd = [sys.executable, "-c", BARE_SERVER, str(port)]
    else:
        cmd = [
            sys.executable,
            "-m",
            "earshot.cli",
            "serve",
            "--stack",
            kind,
            "--port",
            str(port),
            "--out",
            str(out),
            "--max-calls",
            "256",
        ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


def tone_caller(duration_s: float) -> np.ndarray:
    """Two 1.2 s tone "utterances" every 10 s (the fake energy VAD and Silero both hear
    speech-like energy; pocketsphinx makes words of it or none)."""
    sr = 16_000
    x = np.zeros(int(duration_s * sr), np.int16)
    t = np.arange(len(x)) / sr
    for start in np.arange(0.5, duration_s - 3.0, 5.0):
        i, j = int(start * sr), int((start + 1.2) * sr)
        x[i:j] = (
            np.sin(2 * np.pi * 220 * t[i:j]) * 6000 * (1 + 0.3 * np.sin(2 * np.pi * 3 * t[i:j]))
        ).astype(np.int16)
    return x


async def health(url: str) -> dict[str, float]:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(url + "/healthz") as resp:
        return dict(await resp.json())


async def run_calls(url: str, n: int, duration_s: float) -> tuple[int, float]:
    caller = tone_caller(duration_s)
    clients = [
        CallClient(url.replace("http", "ws") + "/ws", SystemClock(), tail_ms=30_000)
        for _ in range(n)
    ]

    async def one(i: int, c: CallClient) -> bool:
        await asyncio.sleep(0.05 * i)
        try:
            r = await c.run(caller)
        except OSError:
            return False
        return r.error is None

    ok = await asyncio.gather(*(one(i, c) for i, c in enumerate(clients)))
    late = [x for c in clients for x in c.result.frame_lateness_ms]
    return sum(ok), float(np.percentile(late, 99)) if late else 0.0


def step(kind: str, n: int, duration_s: float, out: Path) -> tuple[int, float, float, float]:
    """One server, N calls: (calls ok, server tick p99 ms, client send p99 ms, server CPU ms
    per call-second). CPU time is what the server process used during the calls (psutil),
    which scheduling noise from other processes does not inflate the way it does lateness."""
    import psutil

    port = free_port()
    proc = start_server(kind, port, out / f"{kind}-{n}")
    try:
        url = f"http://127.0.0.1:{port}"
        ps = psutil.Process(proc.pid)
        before = ps.cpu_times()
        ok, client_p99 = asyncio.run(run_calls(url, n, duration_s))
        after = ps.cpu_times()
        h = asyncio.run(health(url))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    cpu_ms = ((after.user - before.user) + (after.system - before.system)) * 1000.0
    return ok, float(h["tick_lateness_p99_ms"]), client_p99, cpu_ms / (n * duration_s)


def memory(kind: str, calls: int, short_s: float, long_s: float, out: Path) -> None:
    port = free_port()
    proc = start_server(kind, port, out / f"mem-{kind}")
    url = f"http://127.0.0.1:{port}"

    async def main() -> tuple[float, float, float]:
        idle = (await health(url))["process_rss_mb"]
        caller = tone_caller(long_s)
        clients = [
            CallClient(url.replace("http", "ws") + "/ws", SystemClock(), tail_ms=30_000)
            for _ in range(calls)
        ]
        task = asyncio.gather(*(c.run(caller) for c in clients))
        await asyncio.sleep(short_s)
        at_short = (await health(url))["process_rss_mb"]
        await asyncio.sleep(max(0.0, long_s - short_s - 2.0))
        at_long = (await health(url))["process_rss_mb"]
        await task
        return idle, at_short, at_long

    try:
        idle, at_short, at_long = asyncio.run(main())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    per_short = (at_short - idle) / calls
    per_long = (at_long - idle) / calls
    print(
        json.dumps(
            {
                "stack": kind,
                "calls": calls,
                "idle_rss_mb": round(idle, 1),
                "per_call_mb_at_short": round(per_short, 2),
                "short_s": short_s,
                "per_call_mb_at_long": round(per_long, 2),
                "long_s": long_s,
                "ratio_long_over_short": round(per_long / per_short, 3) if per_short > 0 else None,
            }
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration-s", type=float, default=20.0, help="seconds per call per step")
    p.add_argument("--max-n", type=int, default=16, help="largest N tried")
    p.add_argument("--stacks", default="bare,fake,fast", help="which servers, in order")
    p.add_argument("--memory", action="store_true", help="per-call memory instead")
    p.add_argument("--stack", default="fake", help="--memory: an earshot serve --stack")
    p.add_argument("--memory-calls", type=int, default=2)
    p.add_argument("--short-s", type=float, default=60.0)
    p.add_argument("--long-s", type=float, default=600.0)
    p.add_argument("--out", type=Path, default=Path("out/bench_server_calls"))
    args = p.parse_args()
    if args.memory:
        memory(args.stack, args.memory_calls, args.short_s, args.long_s, args.out)
        return
    ns = [n for n in (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64) if n <= args.max_n]
    kinds = args.stacks.split(",")
    results: dict[str, dict[int, tuple[int, float, float, float]]] = {k: {} for k in kinds}
    for n in ns:  # interleaved, so that a change in the machine's load hits every server
        for kind in kinds:
            ok, p99, client, cpu = step(kind, n, args.duration_s, args.out)
            results[kind][n] = (ok, p99, client, cpu)
            print(
                f"{kind:9s} N={n:3d}  ok {ok}/{n}  server tick p99 {p99:6.1f} ms  "
                f"client send p99 {client:6.1f} ms  server CPU {cpu:6.1f} ms per call-s",
                flush=True,
            )
    # The machine's own scheduling noise: the bare chain with one call.
    baseline = results[kinds[0]][ns[0]][1] if kinds[0] == "bare" else 0.0

    def held(kind: str, limit: float) -> int:
        best = 0
        for n in ns:
            ok, p99, _, _ = results[kind][n]
            if ok < n or p99 > limit:
                break
            best = n
        return best

    absolute = {k: held(k, LATENESS_LIMIT_MS) for k in kinds}
    relative = {k: held(k, baseline + LATENESS_LIMIT_MS) for k in kinds}
    cores = os.cpu_count() or 1
    cpu_per_call = {k: float(np.median([r[3] for r in results[k].values()])) for k in kinds}
    by_cpu: dict[str, float | None] = {
        k: round(cores * 1000.0 / v, 1) if v > 0 else None for k, v in cpu_per_call.items()
    }
    summary = {
        "cores": cores,
        "duration_s": args.duration_s,
        "held_p99_under_20ms": absolute,
        "bare_one_call_p99_ms": baseline,
        "held_p99_under_baseline_plus_20ms": relative,
        "server_cpu_ms_per_call_second": {k: round(v, 1) for k, v in cpu_per_call.items()},
        "calls_the_cores_can_carry": by_cpu,
    }
    print(json.dumps(summary))
    held_sets: tuple[tuple[str, dict[str, float | None]], ...] = (
        ("absolute", dict(absolute)),
        ("relative", dict(relative)),
        ("by CPU", by_cpu),
    )
    for name, held_n in held_sets:
        bare = held_n.get("bare")
        if bare:
            for kind in (k for k in kinds if k != "bare"):
                value = held_n.get(kind)
                if value is not None:
                    print(f"{name}: {kind}/bare = {value / bare:.2f}")


if __name__ == "__main__":
    main()
