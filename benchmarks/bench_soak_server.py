"""Server soak: many concurrent calls on loopback, some clients misbehaving, for minutes.

Issue 10, "Tests and a soak", server half. One ``earshot serve --stack fake --max-calls 60``
subprocess (the shipped fakes: orchestration only, no models) on 127.0.0.1; in this process
``--callers`` (default 50) concurrent callers, each making calls back to back until
``--duration-s`` (default 600) is over. Every caller is an
`earshot.server.client.CallClient` (a subclass for the misbehaving ones):

* healthy (the rest) — stream the bundled recording (``demo_caller.wav``, looped to
  ``--call-s``) in real time, play the replies, wait for ``bye``;
* ``vanish`` — stream a few seconds, then abort the TCP connection (no close frame);
* ``garbage`` — stream a few seconds, then send one of: malformed JSON, a JSON message of an
  unknown type, a 7-byte binary frame, a wrong-size audio frame, a 1 MiB message;
* ``stall`` — stream a few seconds, then neither send nor read (the socket's reading is paused)
  for ``--stall-s`` seconds, then either continue the call or abort.

Measured side by side in one run:

* healthy calls' uplink frames: client-sent vs received by the server's session, from the
  ``uplink: N frames received, C concealed, L late, D duplicate`` line of each call's
  ``report.md`` (written by `earshot.server.session_stack`); lost = sent - received;
* healthy calls' TTFAT p50/p95 (``turns.jsonl`` records as sent in ``turn_done``);
* healthy calls that ended with an error (any is a failure);
* misbehaving calls: how each ended (they must only end their own call);
* the server's RSS from ``/healthz`` every 10 s: the first minute's mean vs the last minute's
  (flat = ratio near 1).

"Lost" frames are split in two: frames that never reached the server (must be 0: the uplink is
TCP) and frames that reached it after their slot in the adaptive uplink jitter buffer
(`earshot.transports.uplink`, sized to the 95 % quantile of arrival jitter, so late ones are
concealed by design). On a loaded machine the second count is scheduling jitter of this
process and the server's, not a fault of the misbehaving clients; it still means those frames
did not reach the session. Exit status 1 if a healthy call failed, any healthy frame never
reached the server, more than ``--max-late-ratio`` (default 0) came late, or the server died.

    python benchmarks/bench_soak_server.py [--duration-s 600] [--callers 50] [--bad-share 0.2]

Last measured (2026-12-01, 2 shared cores, 1-min load average 1.2 at start and 4.3 at the end,
``--duration-s 120``, defaults otherwise: 50 callers of which 10 misbehave, 30 s calls): all 50
ran. Healthy: 160 calls, 0 failed, 0 refused; 240 000 uplink frames sent, 0 never reached the
server, 11 183 (4.7 %) reached it after their jitter-buffer slot and were concealed (every call
had some; the load generator itself sent 1 987 frames more than one frame late); TTFAT p50
1 497 ms, p95 5 067 ms over 479 turns (the fake stack's TTFAT is ~960 ms on an idle machine
with a few calls: the rest is CPU contention). Misbehaving: 192 calls (101 vanish, 75 garbage,
16 stall), each ended only itself; the server stayed up with 0 tracebacks in its log (the run
before the fix in `earshot.server.routes` logged 71 "Cannot write to closing transport"
tracebacks, one per caller gone before its bye, and one call failed on a concurrent
``ast.parse`` in the report writer, fixed in `earshot.metrics.report`). Server RSS: first
minute 143.0 MiB, last minute 183.0 MiB (ratio 1.28, 15 samples, max 187.4): two minutes,
mostly the ramp to 50 live calls, are too short to call it flat or growing. Exit status 1 (the
late frames).

The full 10 minutes (same day, same defaults, load average 3.8 at start, 3.0 at the end, the
machine shared with other jobs) does NOT pass: healthy 674 calls, 19 failed with "no 'bye'
from the server in time" (30 s tail), 452 calls of all kinds refused ``server_full`` at
``--max-calls 60`` although at most 50 callers connect at once (server-side calls outlive
their clients: not yet diagnosed); 982 500 frames sent, 0 never reached the server, 60 172
(6.1 %) late and concealed; client sends more than one frame late 31 478; TTFAT p50 1 427 ms,
p95 13 990 ms over 1 940 turns; misbehaving 915 calls (486 vanish, 359 garbage, 70 stall);
server alive, 0 tracebacks; RSS first minute 142.3 MiB, last minute 215.1 MiB (ratio 1.51, 63
samples, max 218.1): not flat. The failed healthy calls all started in the run's first two
minutes, while pytest, mypy and a merge ran on the same two cores: their server reports show
the overload (one call: 1 079 of 1 500 frames on time, 421 late). Both the growth and the
lingering calls need a run with ``/healthz`` ``active_calls`` logged next to RSS (not done).

Since then a call frees its slot when its caller is gone and writes its report as
*finishing* (`earshot.server.registry`). After that change, ``--duration-s 180 --callers 40``
(load average 2.7 at start, 1.3 at the end, the machine shared with other jobs): healthy 192
calls, 0 failed, 0 refused of all kinds; 288 000 frames sent, 0 never reached the server,
6 449 (2.2 %) late and concealed; TTFAT p50 1 040 ms, p95 1 692 ms over 576 turns;
misbehaving 256 calls, each ended only itself; 0 tracebacks; RSS 141.8 → 183.7 MiB (ratio
1.30, again mostly the ramp).

The full 10 minutes again, with ``/healthz``'s live calls logged beside RSS (2026-12-01, same
defaults, load average 0.44 at start and 1.50 at the end, nothing else running): healthy 787
calls, **0 failed, 0 refused of all kinds** (the 452 refusals of the first 10-minute run are
gone); 1 180 500 frames sent, 0 never reached the server, 24 704 (2.09 %) late and concealed
(every call had some; the load generator sent 37 more than one frame late); TTFAT p50 1 141 ms,
p95 1 975 ms over 2 361 turns; misbehaving 1 005 calls (531 vanish, 394 garbage, 80 stall),
each ended only itself; server alive, 0 tracebacks. RSS against live calls: 76.5 MiB idle,
172.9 at 50 s (49 calls), 184.9 at 200 s, 188.5 at 351 s, 188.7 at 601 s (45 calls) — the
growth is the ramp to 50 calls and then levels off (+3.8 MiB over the last 250 s with ~50
calls live; the first-minute mean 141.9 vs last minute 189.0 MiB, ratio 1.33, includes the
ramp). Exit status 1, for the concealed late frames only (``--max-late-ratio 0``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import aiohttp
import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

from earshot.audio.frames import Pcm16  # noqa: E402
from earshot.clock import SystemClock  # noqa: E402
from earshot.server import protocol as proto  # noqa: E402
from earshot.server.client import CallClient, ClientResult  # noqa: E402

Kind = Literal["healthy", "vanish", "garbage", "stall"]
BAD_KINDS: tuple[Kind, ...] = ("vanish", "garbage", "stall")
UPLINK_RE = re.compile(r"(\d+) frames received, (\d+) concealed, (\d+) late, (\d+) duplicate")
GARBAGE: tuple[str | bytes, ...] = (
    "{not json",
    '{"type": "teleport", "to": "mars"}',
    b"\x01\x00\x00",
    proto.UPLINK_HEADER.pack(proto.CODEC_PCM16, 0, 0, 10**6, 0.0) + b"\x00" * 100,
    b"\x00" * (1024 * 1024),
)


class MisbehavingClient(CallClient):
    """A `CallClient` that streams ``after_frames`` frames normally, then misbehaves."""

    def __init__(
        self, url: str, kind: Kind, variant: int, after_frames: int, stall_s: float
    ) -> None:
        super().__init__(url, SystemClock(), tail_ms=15_000.0)
        self.kind = kind
        self.variant = variant
        self.after_frames = after_frames
        self.stall_s = stall_s
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def _sender(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        await super()._sender(ws)

    def _abort(self) -> None:
        conn = self._ws._conn if self._ws is not None else None
        if conn is not None and conn.transport is not None:
            conn.transport.abort()
        self._done.set()

    async def _stream(self, caller: Pcm16) -> None:
        n = self.frame_samples
        await super()._stream(caller[: self.after_frames * n])
        # super() queued an End after the prefix: take it back out (the call goes on).
        kept = [item for item in _drain(self._up_q) if item is None or b'"end"' not in _b(item)]
        for item in kept:
            self._up_q.put_nowait(item)
        await asyncio.sleep(0.2)  # let the prefix leave
        if self._done.is_set():
            return
        if self.kind == "vanish":
            self._abort()
        elif self.kind == "garbage":
            self._up_q.put_nowait((self.clock.now_ms(), GARBAGE[self.variant % len(GARBAGE)]))
        else:
            conn = self._ws._conn if self._ws is not None else None
            transport = conn.transport if conn is not None else None
            if transport is not None:
                transport.pause_reading()
            await asyncio.sleep(self.stall_s)
            if self.variant % 2:
                self._abort()
                return
            if transport is not None:
                transport.resume_reading()
            # Continue where it stopped, on a fresh real-time schedule.
            rest = caller[self.after_frames * n :]
            start = self.clock.now_ms()
            codec = proto.CODECS[self.codec]
            for k in range(-(-len(rest) // n)):
                if self._done.is_set():
                    return
                await self.clock.sleep_until_ms(start + (k + 1) * self.frame_ms)
                frame = rest[k * n : (k + 1) * n]
                if len(frame) < n:
                    frame = np.concatenate([frame, np.zeros(n - len(frame), np.int16)])
                seq = self.after_frames + k
                data = proto.pack_uplink(codec, seq, start + k * self.frame_ms, frame.tobytes())
                self.result.sent_up += 1
                self._up_q.put_nowait((self.clock.now_ms(), data))
            self._send_control(proto.End())


def _drain(
    q: asyncio.Queue[tuple[float, str | bytes] | None],
) -> list[tuple[float, str | bytes] | None]:
    items = []
    while not q.empty():
        items.append(q.get_nowait())
    return items


def _b(item: tuple[float, str | bytes]) -> bytes:
    data = item[1]
    return data.encode() if isinstance(data, str) else b""


@dataclass(slots=True)
class Tally:
    """What the callers saw, by kind."""

    healthy_calls: int = 0
    healthy_errors: list[str] = field(default_factory=list)
    frames_sent: int = 0
    frames_received: int = 0
    frames_late: int = 0
    frames_concealed: int = 0
    client_late_sends: int = 0
    missing_reports: int = 0
    lossy_calls: int = 0
    ttfat_ms: list[float] = field(default_factory=list)
    bad_calls: dict[str, int] = field(default_factory=dict)
    bad_endings: dict[str, int] = field(default_factory=dict)
    refused: int = 0
    connect_errors: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, out: Path, max_calls: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    cmd = [sys.executable, "-m", "earshot.cli", "serve", "--stack", "fake", "--quiet"]
    cmd += ["--port", str(port), "--out", str(out), "--max-calls", str(max_calls)]
    log = open(out.parent / "server.log", "wb")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"earshot serve exited with {proc.returncode}: see {log.name}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("earshot serve did not start within 60 s")


def check_healthy(result: ClientResult, tally: Tally) -> None:
    tally.healthy_calls += 1
    tally.client_late_sends += result.late_frames
    if result.error is not None:
        tally.healthy_errors.append(f"{result.call_id or '?'}: {result.error}")
        return
    tally.ttfat_ms += [t["ttfat_ms"] for t in result.turns if t.get("ttfat_ms") is not None]
    report = Path(result.out_dir) / "report.md"
    match = UPLINK_RE.search(report.read_text()) if report.exists() else None
    if match is None:
        tally.missing_reports += 1
        tally.healthy_errors.append(f"{result.call_id}: no uplink frame count in {report}")
        return
    received, concealed, late, _dup = (int(g) for g in match.groups())
    tally.frames_sent += result.sent_up
    tally.frames_received += received
    tally.frames_concealed += concealed
    tally.frames_late += late
    if received != result.sent_up:
        tally.lossy_calls += 1


async def caller_loop(
    i: int,
    kind: Kind,
    url: str,
    call: Pcm16,
    args: argparse.Namespace,
    tally: Tally,
    end_at: float,
) -> None:
    await asyncio.sleep(args.ramp_s * i / args.callers)
    variant = i
    while time.monotonic() < end_at:
        client: CallClient
        if kind == "healthy":
            client = CallClient(url, SystemClock(), tail_ms=30_000.0)
        else:
            after = int((2.0 + (variant % 5)) * 50)  # 2-6 s of audio at 20 ms frames
            client = MisbehavingClient(url, kind, variant, after, args.stall_s)
        try:
            result = await client.run(call)
        except (aiohttp.ClientError, OSError) as exc:
            if kind == "healthy":
                tally.connect_errors.append(f"{type(exc).__name__}: {exc}")
                tally.healthy_calls += 1
            else:
                tally.bad_endings[f"{kind}: {type(exc).__name__}"] = (
                    tally.bad_endings.get(f"{kind}: {type(exc).__name__}", 0) + 1
                )
            variant += 1
            continue
        if result.refused:
            tally.refused += 1
        elif kind == "healthy":
            check_healthy(result, tally)
        else:
            tally.bad_calls[kind] = tally.bad_calls.get(kind, 0) + 1
            ending = (result.error or "no error").split(":")[0]
            key = f"{kind}: {ending}"
            tally.bad_endings[key] = tally.bad_endings.get(key, 0) + 1
        variant += 1


@dataclass(frozen=True, slots=True)
class Health:
    """One ``/healthz`` sample: seconds since the soak began, RSS (MiB), live calls."""

    t_s: float
    rss_mb: float
    active_calls: int
    finishing_calls: int


async def sample_rss(base: str, samples: list[Health], stop: asyncio.Event) -> None:
    from earshot.server.registry import RegistryStatus

    t0 = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            with contextlib.suppress(aiohttp.ClientError, OSError, ValueError):
                async with http.get(base + "/healthz") as resp:
                    st = RegistryStatus.model_validate(await resp.json())
                    if st.process_rss_mb is not None:
                        samples.append(
                            Health(
                                time.monotonic() - t0,
                                st.process_rss_mb,
                                st.active_calls,
                                st.finishing_calls,
                            )
                        )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 10.0)


async def soak(args: argparse.Namespace, base: str) -> tuple[Tally, list[Health]]:
    from earshot.data_files import DEMO_CALLER, bundled_data
    from earshot.server.loadtest import looped
    from earshot.transports.file import load_caller

    call = looped(load_caller(bundled_data(DEMO_CALLER)), args.call_s)
    num_bad = round(args.callers * args.bad_share)
    kinds: list[Kind] = [BAD_KINDS[j % 3] for j in range(num_bad)]
    kinds += ["healthy"] * (args.callers - num_bad)
    # Interleave so that misbehaving callers start among healthy ones.
    order = sorted(range(args.callers), key=lambda j: (j * 7) % args.callers)
    kinds = [kinds[j] for j in order]
    tally = Tally()
    rss: list[Health] = []
    stop = asyncio.Event()
    end_at = time.monotonic() + args.duration_s
    url = base.replace("http://", "ws://") + "/ws"
    async with asyncio.TaskGroup() as tg:
        poller = tg.create_task(sample_rss(base, rss, stop))
        async with asyncio.TaskGroup() as callers:
            for i, kind in enumerate(kinds):
                callers.create_task(caller_loop(i, kind, url, call, args, tally, end_at))
        stop.set()
        await poller
    return tally, rss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--duration-s", type=float, default=600.0, help="how long callers keep calling")
    ap.add_argument("--callers", type=int, default=50, help="concurrent callers")
    ap.add_argument("--bad-share", type=float, default=0.2, help="share that misbehave (0-1)")
    ap.add_argument("--call-s", type=float, default=30.0, help="length of one healthy call (s)")
    ap.add_argument("--stall-s", type=float, default=5.0, help="how long a stalling client stalls")
    ap.add_argument("--ramp-s", type=float, default=10.0, help="spread of the callers' starts")
    ap.add_argument(
        "--max-late-ratio",
        type=float,
        default=0.0,
        help="healthy frames allowed to reach the server after their jitter-buffer slot "
        "(default 0: every frame must reach the session)",
    )
    ap.add_argument("--keep", type=Path, help="keep the server log and call folders here")
    ap.add_argument("--max-calls", type=int, default=60, help="the server's --max-calls")
    args = ap.parse_args()
    if args.callers < 1 or not 0.0 <= args.bad_share < 1.0 or args.duration_s <= 0:
        ap.error("need --callers >= 1, 0 <= --bad-share < 1, --duration-s > 0")

    with tempfile.TemporaryDirectory(prefix="earshot-soak-") as tmp_dir:
        tmp = args.keep or Path(tmp_dir)
        out = Path(tmp) / "calls"
        out.mkdir(parents=True, exist_ok=True)
        port = free_port()
        proc = start_server(port, out, args.max_calls)
        load0 = os.getloadavg()
        try:
            tally, rss = asyncio.run(soak(args, f"http://127.0.0.1:{port}"))
            alive = proc.poll() is None
        finally:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            if proc.poll() is None:
                proc.kill()
        server_log = (Path(tmp) / "server.log").read_text(errors="replace")
    load1 = os.getloadavg()
    return report(args, tally, rss, alive, server_log, load0, load1)


def report(
    args: argparse.Namespace,
    tally: Tally,
    rss: list[Health],
    alive: bool,
    server_log: str,
    load0: tuple[float, float, float],
    load1: tuple[float, float, float],
) -> int:
    def pct(q: float) -> str:
        return f"{np.percentile(tally.ttfat_ms, q):.0f} ms" if tally.ttfat_ms else "—"

    first = [h.rss_mb for h in rss if h.t_s < 60.0]
    last = [h.rss_mb for h in rss if h.t_s >= rss[-1].t_s - 60.0] if rss else []
    late = tally.frames_late
    never = tally.frames_sent - tally.frames_received - late
    lost = never + late
    failed = len(tally.healthy_errors) + len(tally.connect_errors)
    print(
        f"server soak: {args.callers} callers ({round(args.callers * args.bad_share)} "
        f"misbehaving) x {args.duration_s:.0f} s, calls of {args.call_s:.0f} s, fake stack"
    )
    print(f"load average at start {load0[0]:.2f}, at end {load1[0]:.2f} (1 min)")
    print(
        f"healthy calls: {tally.healthy_calls} ({failed} failed, {tally.refused} refused "
        f"of all kinds)"
    )
    sent = max(1, tally.frames_sent)
    print(
        f"healthy uplink frames: sent {tally.frames_sent}, reached the session "
        f"{tally.frames_received}, lost {lost} ({lost / sent:.2%}) = never reached the "
        f"server {never} + reached it after their jitter-buffer slot (concealed) {late} "
        f"({late / sent:.2%}); calls with loss {tally.lossy_calls}"
    )
    print(f"client sends > 1 frame late (load generator overload): {tally.client_late_sends}")
    print(f"healthy TTFAT: p50 {pct(50)}, p95 {pct(95)} over {len(tally.ttfat_ms)} turns")
    print(f"misbehaving calls: {dict(sorted(tally.bad_calls.items()))}")
    print(f"  how they ended: {dict(sorted(tally.bad_endings.items()))}")
    if first and last:
        a, b = float(np.mean(first)), float(np.mean(last))
        print(
            f"server RSS: first minute {a:.1f} MiB, last minute {b:.1f} MiB, ratio "
            f"{b / a:.3f} ({len(rss)} samples, min {min(h.rss_mb for h in rss):.1f}, "
            f"max {max(h.rss_mb for h in rss):.1f})"
        )
        # Memory against the calls alive at that moment: growth with a flat call count is a
        # leak; growth that tracks the calls is their working set.
        print("  t s | RSS MiB | active calls | finishing")
        for h in rss[:: max(1, len(rss) // 12)] + rss[-1:]:
            print(f"  {h.t_s:4.0f} | {h.rss_mb:7.1f} | {h.active_calls:12d} | {h.finishing_calls}")
    tracebacks = server_log.count("Traceback")
    print(f"server alive at the end: {alive}; tracebacks in its log: {tracebacks}")
    for e in (tally.healthy_errors + tally.connect_errors)[:10]:
        print(f"  healthy failure: {e}", file=sys.stderr)
    bad = failed > 0 or never != 0 or late / sent > args.max_late_ratio or not alive
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
