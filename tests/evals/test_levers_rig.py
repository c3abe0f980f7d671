"""The rig's CPU placement helpers on this process (Linux affinity; skipped elsewhere)."""

from __future__ import annotations

import os
import threading

import pytest

from earshot.evals.llm_rig import allowed_cpus, away_from

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(allowed_cpus()) < 2,
    reason="needs CPU affinity and at least two CPUs",
)


def test_away_from_moves_every_thread_off_the_servers_cpu_and_back() -> None:
    before = allowed_cpus()
    server_cpu = before[0]
    seen: list[set[int]] = []
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, daemon=True)
    worker.start()  # a thread that exists before: it must move too (the proxy's)
    try:
        with away_from([server_cpu, None]) as cpus:
            assert cpus == before[1:]
            seen.append(os.sched_getaffinity(0))
            assert worker.native_id is not None
            seen.append(os.sched_getaffinity(worker.native_id))
    finally:
        stop.set()
    assert seen == [set(before[1:]), set(before[1:])]
    assert allowed_cpus() == before


def test_away_from_every_cpu_leaves_the_process_where_it_was() -> None:
    before = allowed_cpus()
    with away_from(before) as cpus:
        assert cpus == before and allowed_cpus() == before
    with away_from([None]) as cpus:
        assert cpus == before
