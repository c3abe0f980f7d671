"""The session clock: the one place earshot reads time.

Every latency in earshot is a difference between two marks taken from one injected `Clock`.
Two implementations:

* `SystemClock` — real time from `time.monotonic_ns()`; used by `earshot converse`.
* `SimulatedClock` — virtual time on its own asyncio event loop. Idle waits (frame pacing,
  scripted LLM latency, `asyncio.sleep`, time-outs) take no real time: when nothing is ready to
  run, the loop jumps straight to the next timer. Work that is really running — a blocking model
  call in the executor, or an external wait declared with `Clock.busy()` (an HTTP request) — is
  waited for in real time and, with ``charge_compute=True`` (the default), charged to the virtual
  clock at its measured duration, so latencies stay realistic while a 60 s recording replays in
  a few seconds. With ``charge_compute=False`` such work is free and every mark is an exact
  function of the inputs: this is what the deterministic tests use.

Code under test never calls `time.*` itself; it calls ``clock.now_ms()`` and
``await clock.sleep_ms(...)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Executor
from typing import Any, Protocol, TypeVar

from earshot import shutdown

T = TypeVar("T")


class Clock(Protocol):
    """A monotonic session clock in milliseconds since the session started."""

    simulated: bool

    def now_ms(self) -> float:
        """Milliseconds since the clock's origin (session start)."""
        ...

    async def sleep_ms(self, duration_ms: float) -> None:
        """Wait ``duration_ms`` milliseconds of this clock's time."""
        ...

    async def sleep_until_ms(self, deadline_ms: float) -> None:
        """Wait until ``now_ms() >= deadline_ms``; returns at once if already past."""
        ...

    def busy(self) -> contextlib.AbstractContextManager[None]:
        """Declare real work in flight that the clock must wait for (see `SimulatedClock`)."""
        ...

    def run(self, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``main()`` to completion on an event loop driven by this clock."""
        ...


class SystemClock:
    """Real time: the only clock that touches ``time.monotonic_ns()``."""

    simulated = False

    def __init__(self) -> None:
        self._origin_ns = time.monotonic_ns()

    def now_ms(self) -> float:
        return (time.monotonic_ns() - self._origin_ns) / 1e6

    def reset_origin(self) -> None:
        """Make ``now_ms()`` read 0 now (call at session start)."""
        self._origin_ns = time.monotonic_ns()

    async def sleep_ms(self, duration_ms: float) -> None:
        await asyncio.sleep(max(0.0, duration_ms) / 1000.0)

    async def sleep_until_ms(self, deadline_ms: float) -> None:
        await self.sleep_ms(deadline_ms - self.now_ms())

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        yield

    def run(self, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return shutdown.run_stoppable(main())


class _VirtualSelector(selectors.DefaultSelector):
    """A selector whose blocking wait advances virtual time instead of sleeping."""

    def __init__(self, clock: SimulatedClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready: list[tuple[selectors.SelectorKey, int]] = super().select(0)
        if ready or timeout == 0:
            return ready
        if self._clock._pending > 0:
            # Real work is running (executor job or declared external wait): wait for it in
            # real time, bounded by the next timer, and charge what it took.
            if not self._clock.charge_compute:
                # Work is free: virtual time stands still until the work reports back.
                return list(super().select(None))
            started_ns = time.monotonic_ns()
            ready = super().select(timeout)
            elapsed_ms = (time.monotonic_ns() - started_ns) / 1e6
            if timeout is not None:
                elapsed_ms = min(elapsed_ms, timeout * 1000.0)
            self._clock._advance(elapsed_ms)
            return ready
        if timeout is None:
            # Nothing scheduled and nothing running: wait for I/O in real time without
            # advancing virtual time (e.g. a server socket in a test).
            return list(super().select(None))
        self._clock._advance(timeout * 1000.0)
        return []


class _VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: SimulatedClock) -> None:
        self._virtual_clock = clock
        super().__init__(selector=_VirtualSelector(clock))

    def time(self) -> float:
        return self._virtual_clock._now_ms / 1000.0

    def run_in_executor(  # type: ignore[override]
        self, executor: Executor | None, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        fut = super().run_in_executor(executor, func, *args)
        self._virtual_clock._add_pending(1)

        def _done(_: asyncio.Future[T]) -> None:
            self._virtual_clock._add_pending(-1)

        fut.add_done_callback(_done)
        return fut


class SimulatedClock:
    """Virtual time that skips idle waits; see the module docstring.

    Args:
        charge_compute: charge measured real time of executor jobs and `busy()` sections to the
            virtual clock (realistic latencies); ``False`` makes such work free (exact tests).
    """

    simulated = True

    def __init__(self, *, charge_compute: bool = True) -> None:
        self.charge_compute = charge_compute
        self._now_ms = 0.0
        self._pending = 0
        self._pending_lock = threading.Lock()  # busy() may be entered from worker threads

    def _advance(self, duration_ms: float) -> None:
        if duration_ms > 0:
            self._now_ms += duration_ms

    def now_ms(self) -> float:
        return self._now_ms

    async def sleep_ms(self, duration_ms: float) -> None:
        await asyncio.sleep(max(0.0, duration_ms) / 1000.0)

    async def sleep_until_ms(self, deadline_ms: float) -> None:
        await self.sleep_ms(deadline_ms - self._now_ms)

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        self._add_pending(1)
        try:
            yield
        finally:
            self._add_pending(-1)

    def _add_pending(self, delta: int) -> None:
        with self._pending_lock:
            self._pending += delta

    def run(self, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
        # As under `SystemClock`: Ctrl-C cancels the main task (every task group unwinds,
        # executor jobs finish) and then raises KeyboardInterrupt, instead of raising it
        # wherever the loop happens to be; a second one ends the process at once.
        return shutdown.run_stoppable(main(), loop_factory=lambda: _VirtualTimeLoop(self))


_INFERENCE_EXECUTOR: Executor | None = None


def set_inference_executor(executor: Executor | None) -> None:
    """Run `run_blocking` calls in ``executor`` (None: the loop's default executor).

    ``earshot serve`` gives model inference its own pool sized to the cores, so that
    libraries which use the loop's default executor for short jobs (aiortc encodes every Opus
    frame there) never queue behind a model call.
    """
    global _INFERENCE_EXECUTOR
    _INFERENCE_EXECUTOR = executor


async def run_blocking(func: Callable[..., T], *args: Any) -> T:
    """Run a blocking call (model inference, synthesis) off the event loop, in the inference
    executor (`set_inference_executor`) or else the loop's default one.

    Under `SimulatedClock` the call's real duration is charged to virtual time.
    """
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_INFERENCE_EXECUTOR, func, *args)


class Stopwatch:
    """Real elapsed time of one piece of work, for backends that report their own compute cost.

    Started on construction. Session latencies never come from here (they are differences of
    `Clock` marks); this measures a cost, e.g. one Whisper decode, to put in a turn record.
    """

    def __init__(self) -> None:
        self._start_ns = time.monotonic_ns()

    def elapsed_ms(self) -> float:
        """Milliseconds since the stopwatch was made."""
        return (time.monotonic_ns() - self._start_ns) / 1e6
