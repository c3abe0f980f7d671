"""The scheduler on its own: cleanup runs for every response task, however it ends."""

from __future__ import annotations

import asyncio
import warnings

from earshot.metrics.turn import TurnRecord
from earshot.session.response import ResponseFailed, ResponseHandle
from earshot.session.scheduler import Scheduler


def test_cleanup_runs_for_a_task_cancelled_before_it_started() -> None:
    cleaned: list[int] = []
    ran: list[int] = []

    async def work(i: int) -> None:
        ran.append(i)
        await asyncio.sleep(0)

    async def main() -> None:
        async with Scheduler() as scheduler:
            early = ResponseHandle(1, TurnRecord(1))
            later = ResponseHandle(2, TurnRecord(2))
            scheduler.start(early, work(1), cleanup=lambda h: cleaned.append(h.response_id))
            scheduler.start(later, work(2), cleanup=lambda h: cleaned.append(h.response_id))
            early.interrupt()  # before the loop ever ran the task
            await asyncio.sleep(0.01)
            assert scheduler.running == 0

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # "coroutine ... never awaited"
        asyncio.run(main())
    assert ran == [2]
    assert sorted(cleaned) == [1, 2]


def test_a_task_that_raises_is_a_failure_event_and_is_cleaned_up() -> None:
    failures: list[ResponseFailed] = []
    cleaned: list[int] = []

    async def broken() -> None:
        raise KeyError("bug")

    async def main() -> None:
        async with Scheduler(on_failure=failures.append) as scheduler:
            handle = ResponseHandle(3, TurnRecord(1))
            scheduler.start(handle, broken(), cleanup=lambda h: cleaned.append(h.response_id))
            await asyncio.sleep(0.01)
            assert handle.turn.extra["response_error"] == "KeyError: 'bug'"

    asyncio.run(main())
    assert [(f.response_id, f.stage, f.recovered) for f in failures] == [(3, "internal", False)]
    assert cleaned == [3]
