"""The scheduler: owns every response task of a session in one `asyncio.TaskGroup`.

A response task that raises (anything but cancellation) does not take the session down and is
not lost: the scheduler turns it into a `ResponseFailed` event and calls the task's cleanup.
Closing the scheduler cancels whatever is still running and waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any

from earshot.session.response import ResponseFailed, ResponseHandle, describe_error

log = logging.getLogger("earshot.session")


class Scheduler:
    """Runs response tasks in a TaskGroup; use as ``async with Scheduler(...) as s:``.

    Args:
        on_failure: called with a `ResponseFailed` (stage ``"internal"``) for a task that
            raised; the session records it in the turn.
    """

    def __init__(self, on_failure: Callable[[ResponseFailed], None] | None = None) -> None:
        self.on_failure = on_failure
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Scheduler:
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tg is not None
        self.cancel_all()
        try:
            await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None

    @property
    def running(self) -> int:
        """Response tasks not finished yet."""
        return len(self._tasks)

    def start(
        self,
        handle: ResponseHandle,
        work: Coroutine[Any, Any, None],
        cleanup: Callable[[ResponseHandle], None] | None = None,
    ) -> asyncio.Task[None]:
        """Run ``work`` for ``handle`` as a task of the group (``handle.task`` is set).

        Args:
            handle: the response the work belongs to.
            work: the coroutine (not yet started).
            cleanup: called when the task ends for any reason (in ``finally``; for a task
                cancelled before it began, from its done callback).

        Raises:
            RuntimeError: the scheduler is not entered (or already closed).
        """
        if self._tg is None:
            work.close()
            raise RuntimeError("Scheduler.start outside `async with Scheduler()`")
        started: list[bool] = []
        task = self._tg.create_task(self._guard(handle, work, cleanup, started))
        handle.task = task
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not started:  # cancelled before it ran: close the work, still clean up
                work.close()
                if cleanup is not None:
                    cleanup(handle)

        task.add_done_callback(done)
        return task

    def cancel_all(self) -> None:
        """Cancel every running response task (shutdown)."""
        for task in list(self._tasks):
            task.cancel()

    async def _guard(
        self,
        handle: ResponseHandle,
        work: Coroutine[Any, Any, None],
        cleanup: Callable[[ResponseHandle], None] | None,
        started: list[bool],
    ) -> None:
        started.append(True)
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = describe_error(exc)
            log.error("response %d failed: %s", handle.response_id, error, exc_info=exc)
            handle.turn.extra.setdefault("response_error", error)
            if self.on_failure is not None:
                self.on_failure(ResponseFailed(handle.response_id, "internal", error, False))
        finally:
            if cleanup is not None:
                cleanup(handle)
