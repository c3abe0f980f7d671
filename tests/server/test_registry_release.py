"""Admission control: a call whose caller is gone frees its slot while its report is written,
and a teardown backlog as large as the capacity refuses new calls (pure counts, no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from earshot.server.registry import CallRegistry, ServerFullError, admission_decision


def test_decision_admits_below_capacity_and_refuses_at_it() -> None:
    assert admission_decision(1, 2) is None
    full = admission_decision(2, 2)
    assert full is not None and "server full" in full and "--max-calls" in full


def test_decision_refuses_when_the_teardown_backlog_reaches_capacity() -> None:
    assert admission_decision(0, 2, finishing=1) is None
    busy = admission_decision(0, 2, finishing=2)
    assert busy is not None and "still writing their reports" in busy


def test_release_frees_the_slot_and_counts_the_call_as_finishing(tmp_path: Path) -> None:
    registry = CallRegistry(max_calls=1, out_dir=tmp_path)
    with registry.admit("ws") as first:
        assert registry.active_calls == 1
        with pytest.raises(ServerFullError), registry.admit("ws"):
            pass
        first.release()
        first.release()  # idempotent
        assert (registry.active_calls, registry.finishing_calls) == (0, 1)
        # The hung-up caller's slot is free for a new caller while its report is written...
        assert admission_decision(registry.active_calls, 1, registry.finishing_calls) is not None
        # ...unless the backlog is as large as the capacity (here max_calls=1), as now.
        status = registry.status()
        assert (status.active_calls, status.finishing_calls) == (0, 1)
    assert (registry.active_calls, registry.finishing_calls) == (0, 0)


def test_a_released_slot_admits_the_next_caller(tmp_path: Path) -> None:
    registry = CallRegistry(max_calls=2, out_dir=tmp_path)
    with registry.admit("ws") as first, registry.admit("ws"):
        with pytest.raises(ServerFullError), registry.admit("ws"):
            pass
        first.release()
        with registry.admit("ws") as third:
            assert registry.active_calls == 2 and registry.finishing_calls == 1
            assert third.call_id != first.call_id
    assert registry.refused_total == 1 and registry.admitted_total == 3
