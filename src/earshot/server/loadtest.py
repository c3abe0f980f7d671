"""``earshot loadtest``: N concurrent WebSocket callers, TTFAT percentiles and server load.

Each caller is a `earshot.server.client.CallClient` streaming the recording (looped to
``duration_s``) in real time. While they run, the server's ``/healthz`` is read once a second
for its CPU and memory; a live table shows calls, turns and TTFAT so far. All callers run in
this process: its own lateness in sending frames is reported (``late_frames``: uplink frames
sent more than one frame late), so an overloaded load generator is visible, not mistaken for a
slow server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
from pydantic import BaseModel
from rich.live import Live
from rich.table import Table

from earshot.clock import SystemClock
from earshot.server.client import CallClient, ClientResult, NetConditions


@dataclass(frozen=True, slots=True)
class LoadTestOptions:
    """See ``earshot loadtest --help``.

    Raises:
        ValueError: ``calls`` < 1 or ``duration_s`` <= 0.
    """

    url: str
    calls: int = 4
    duration_s: float = 30.0
    caller: Path | None = None
    ramp_s: float = 1.0
    net: NetConditions = field(default_factory=NetConditions)
    codec: str = "pcm16"

    def __post_init__(self) -> None:
        if self.calls < 1:
            raise ValueError(f"--calls must be >= 1, got {self.calls}")
        if self.duration_s <= 0:
            raise ValueError(f"--duration-s must be > 0, got {self.duration_s}")


class LoadTestResults(BaseModel):
    """What a load test measured (ms unless named otherwise)."""

    calls: int
    duration_s: float
    completed_calls: int
    refused_calls: int
    failed_calls: int
    errors: list[str]
    turns: int
    ttfat_p50_ms: float | None
    ttfat_p95_ms: float | None
    ttfat_p99_ms: float | None
    late_frames: int
    frames_sent: int
    client_frame_lateness_p99_ms: float | None
    server_cpu_percent_max: float | None
    server_rss_mb_max: float | None
    server_tick_lateness_p99_ms: float | None


def looped(caller: np.ndarray, duration_s: float) -> np.ndarray:
    """``caller`` (int16 16 kHz) repeated and cut to ``duration_s`` seconds."""
    n = int(duration_s * 16_000)
    reps = -(-n // max(1, len(caller)))
    return np.tile(caller, reps)[:n].astype(np.int16)


async def _poll_health(url: str, samples: list[dict[str, float]], stop: asyncio.Event) -> None:
    health = url.replace("ws://", "http://").replace("wss://", "https://")
    health = health.split("/ws")[0] + "/healthz"
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            try:
                async with http.get(health) as resp:
                    samples.append(await resp.json())
            except (aiohttp.ClientError, OSError, ValueError):
                pass
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


async def run_loadtest(opts: LoadTestOptions) -> LoadTestResults:
    """Run the load test (see the module docstring)."""
    from earshot.data_files import DEMO_CALLER, bundled_data
    from earshot.transports.file import load_caller

    caller = looped(load_caller(opts.caller or bundled_data(DEMO_CALLER)), opts.duration_s)
    results: list[ClientResult | BaseException] = []
    clients: list[CallClient] = []
    health: list[dict[str, float]] = []
    stop = asyncio.Event()

    async def one(i: int) -> None:
        await asyncio.sleep(opts.ramp_s * i / max(1, opts.calls))
        client = CallClient(
            opts.url,
            SystemClock(),
            NetConditions(opts.net.delay_ms, opts.net.jitter_ms, opts.net.loss, opts.net.seed + i),
            codec=opts.codec,  # type: ignore[arg-type]
            tail_ms=30_000.0,
        )
        clients.append(client)
        try:
            results.append(await client.run(caller))
        except (aiohttp.ClientError, OSError) as exc:
            results.append(exc)

    def table() -> Table:
        t = Table(title=f"earshot loadtest: {opts.calls} calls × {opts.duration_s:.0f} s")
        for col in ("calls done", "turns", "TTFAT p50", "refused", "server CPU %", "RSS MiB"):
            t.add_column(col)
        ttfats = [
            r["ttfat_ms"] for c in clients for r in c.result.turns if r.get("ttfat_ms") is not None
        ]
        last = health[-1] if health else {}
        t.add_row(
            f"{len(results)}/{opts.calls}",
            str(sum(len(c.result.turns) for c in clients)),
            f"{np.percentile(ttfats, 50):.0f} ms" if ttfats else "—",
            str(sum(1 for c in clients if c.result.refused)),
            f"{last.get('process_cpu_percent') or 0:.0f}",
            f"{last.get('process_rss_mb') or 0:.0f}",
        )
        return t

    async with asyncio.TaskGroup() as tg:
        poller = tg.create_task(_poll_health(opts.url, health, stop))
        with Live(table(), refresh_per_second=2, transient=False) as live:
            async with asyncio.TaskGroup() as calls:
                for i in range(opts.calls):
                    calls.create_task(one(i))
                ticker = calls.create_task(_refresh(live, table, results, opts.calls))
            ticker.cancel()
            live.update(table())
        stop.set()
        await poller
    return _summarize(opts, results, health)


async def _refresh(
    live: Live, table: Callable[[], Table], results: Sequence[object], total: int
) -> None:
    while len(results) < total:
        await asyncio.sleep(0.5)
        live.update(table())


def _summarize(
    opts: LoadTestOptions,
    results: list[ClientResult | BaseException],
    health: list[dict[str, float]],
) -> LoadTestResults:
    done = [r for r in results if isinstance(r, ClientResult)]
    errors = [f"{type(r).__name__}: {r}" for r in results if not isinstance(r, ClientResult)]
    errors += [r.error for r in done if r.error is not None and not r.refused]
    ttfats = np.asarray(
        [t["ttfat_ms"] for r in done for t in r.turns if t.get("ttfat_ms") is not None]
    )
    lateness = np.asarray([x for r in done for x in r.frame_lateness_ms])

    def pct(a: np.ndarray, q: float) -> float | None:
        return float(np.percentile(a, q)) if a.size else None

    cpus = [h["process_cpu_percent"] for h in health if h.get("process_cpu_percent") is not None]
    rss = [h["process_rss_mb"] for h in health if h.get("process_rss_mb") is not None]
    tick = [h["tick_lateness_p99_ms"] for h in health if h.get("ticks")]
    return LoadTestResults(
        calls=opts.calls,
        duration_s=opts.duration_s,
        completed_calls=sum(1 for r in done if r.error is None),
        refused_calls=sum(1 for r in done if r.refused),
        failed_calls=len(errors),
        errors=errors[:20],
        turns=int(ttfats.size),
        ttfat_p50_ms=pct(ttfats, 50),
        ttfat_p95_ms=pct(ttfats, 95),
        ttfat_p99_ms=pct(ttfats, 99),
        late_frames=sum(r.late_frames for r in done),
        frames_sent=int(lateness.size),
        client_frame_lateness_p99_ms=pct(lateness, 99),
        server_cpu_percent_max=max(cpus) if cpus else None,
        server_rss_mb_max=max(rss) if rss else None,
        server_tick_lateness_p99_ms=tick[-1] if tick else None,
    )


def print_results(results: LoadTestResults) -> None:
    """The results as a table on the terminal."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title="earshot loadtest results")
    t.add_column("measure")
    t.add_column("value", justify="right")

    def f(v: float | None, unit: str = " ms") -> str:
        return "—" if v is None else f"{v:.0f}{unit}"

    rows = [
        (
            "calls (completed / refused / failed)",
            f"{results.completed_calls} / {results.refused_calls} / {results.failed_calls}",
        ),
        ("turns", str(results.turns)),
        (
            "TTFAT p50 / p95 / p99",
            f"{f(results.ttfat_p50_ms)} / {f(results.ttfat_p95_ms)} / {f(results.ttfat_p99_ms)}",
        ),
        ("late uplink frames (> 1 frame)", f"{results.late_frames} of {results.frames_sent}"),
        ("client frame lateness p99", f(results.client_frame_lateness_p99_ms)),
        ("server frame-tick lateness p99", f(results.server_tick_lateness_p99_ms)),
        ("server CPU max", f(results.server_cpu_percent_max, " %")),
        ("server RSS max", f(results.server_rss_mb_max, " MiB")),
    ]
    for k, v in rows:
        t.add_row(k, v)
    Console().print(t)
    for e in results.errors:
        Console(stderr=True).print(f"[red]error:[/red] {e}")
