"""Admission control for many calls in one process: a bounded set of call slots.

A new call is admitted only while fewer than ``max_calls`` are active and the teardown
backlog is bounded; otherwise it is refused at once with a message that says why (the server
is full), rather than admitted and every call degraded. The decision is a pure function of the
counts (`admission_decision`), so it is tested without a server.

A call is *active* while its caller is connected. When the transport ends, the call releases
its slot (`Admission.release`) and becomes *finishing* while its report and chart are written
on the inference pool; a caller who hung up no longer holds a slot a new caller could use.
Finishing calls are bounded too (at ``max_calls``), so a teardown backlog under CPU overload
refuses new calls instead of growing without bound.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from earshot.transports.websocket import LatenessStats


class ServerFullError(RuntimeError):
    """No call slot is free; the message is what the refused caller is told."""


class RegistryStatus(BaseModel):
    """What ``GET /healthz`` reports.

    Attributes:
        process_cpu_percent: the server process's CPU since the previous status (100 = one
            core), from psutil.
        process_rss_mb: its resident memory (MiB).
        tick_lateness_p50_ms, tick_lateness_p99_ms: how late call frame ticks ran, over the
            calls finished so far (ms; 1 ms bins).
    """

    active_calls: int
    finishing_calls: int = 0
    """Calls whose caller has gone and whose outputs are still being written."""
    max_calls: int
    admitted_total: int
    refused_total: int
    pool_workers: int
    process_cpu_percent: float | None = None
    process_rss_mb: float | None = None
    ticks: int = 0
    tick_lateness_p50_ms: float = 0.0
    tick_lateness_p99_ms: float = 0.0


def _no_release() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Admission:
    """An admitted call: its id and the folder its outputs go into.

    Attributes:
        release: frees the call's slot once its caller is gone (idempotent); the call then
            counts as finishing until the ``with registry.admit(...)`` block ends.
    """

    call_id: str
    out_dir: Path
    release: Callable[[], None] = field(default=_no_release, compare=False, repr=False)


def admission_decision(active: int, max_calls: int, finishing: int = 0) -> str | None:
    """Why a new call must be refused, or None to admit it.

    Args:
        active: calls in progress now (caller connected).
        max_calls: the process's capacity in calls.
        finishing: calls whose caller is gone and whose outputs are still being written; at
            ``max_calls`` or more the teardown backlog refuses new calls.
    """
    if active >= max_calls:
        return (
            f"server full: {active} of {max_calls} calls in progress; try again later "
            "or start another earshot serve process (--max-calls sets the capacity)"
        )
    if finishing >= max_calls:
        return (
            f"server busy: {finishing} finished calls are still writing their reports (the "
            "machine is overloaded); try again later or start another earshot serve process"
        )
    return None


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class CallRegistry:
    """Call slots and per-call output folders for one server process.

    Args:
        max_calls: concurrent calls admitted.
        out_dir: parent of the per-call folders (``<out_dir>/<call_id>/``).
        pool_workers: size of the inference pool (reported in the status only).
    """

    def __init__(self, max_calls: int, out_dir: Path, pool_workers: int | None = None) -> None:
        self.max_calls = max_calls
        self.out_dir = out_dir
        self.pool_workers = pool_workers or (os.cpu_count() or 1)
        self._active: set[str] = set()
        self._finishing: set[str] = set()
        self._ids = itertools.count(1)
        self.admitted_total = 0
        self.refused_total = 0
        from earshot.transports.websocket import LatenessStats

        self.lateness = LatenessStats()
        """Frame-tick lateness of every finished call, merged (`record_lateness`)."""
        self._process: Any = None

    @property
    def active_calls(self) -> int:
        """Calls whose caller is connected."""
        return len(self._active)

    @property
    def finishing_calls(self) -> int:
        """Calls whose caller is gone and whose outputs are still being written."""
        return len(self._finishing)

    @contextmanager
    def admit(self, kind: str) -> Iterator[Admission]:
        """Hold a call slot for the duration of the ``with`` block.

        Args:
            kind: transport name for the call id (``"ws"``, ``"rtc"``, ``"realtime"``...).

        Raises:
            ServerFullError: every slot is taken (the message is for the caller).
        """
        reason = admission_decision(len(self._active), self.max_calls, len(self._finishing))
        if reason is not None:
            self.refused_total += 1
            raise ServerFullError(reason)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        call_id = f"{stamp}-{_SAFE.sub('_', kind)}-{next(self._ids):04d}"
        self._active.add(call_id)
        self.admitted_total += 1

        def release() -> None:
            if call_id in self._active:
                self._active.discard(call_id)
                self._finishing.add(call_id)

        try:
            yield Admission(call_id, self.out_dir / call_id, release)
        finally:
            self._active.discard(call_id)
            self._finishing.discard(call_id)

    def record_lateness(self, stats: LatenessStats) -> None:
        """Fold one finished call's tick lateness into the server's."""
        self.lateness.merge(stats)

    def status(self) -> RegistryStatus:
        cpu = rss = None
        try:
            import psutil

            if self._process is None:
                self._process = psutil.Process()
                self._process.cpu_percent(None)
            cpu = float(self._process.cpu_percent(None))
            rss = self._process.memory_info().rss / 2**20
        except ImportError:  # psutil comes with the server extra; without it, no figures
            pass
        return RegistryStatus(
            active_calls=len(self._active),
            finishing_calls=len(self._finishing),
            max_calls=self.max_calls,
            admitted_total=self.admitted_total,
            refused_total=self.refused_total,
            pool_workers=self.pool_workers,
            process_cpu_percent=cpu,
            process_rss_mb=rss,
            ticks=self.lateness.n,
            tick_lateness_p50_ms=self.lateness.quantile_ms(0.5),
            tick_lateness_p99_ms=self.lateness.quantile_ms(0.99),
        )
