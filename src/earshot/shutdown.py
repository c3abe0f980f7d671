"""One shutdown path for every way a user stops earshot.

SIGTERM is turned into SIGINT: whatever handles Ctrl-C at that moment handles it — during start-up
Python's default handler raises `KeyboardInterrupt`; inside an event loop run by
`run_stoppable` (both clocks use it) the main task is cancelled, every task group unwinds, and
`KeyboardInterrupt` is raised once the loop is done — so a terminated run writes its partial
outputs exactly as an interrupted one does. `stopped_by` tells the two apart afterwards, for the
exit status (130 or 143).

A second stop, while the first one unwinds or while the partial outputs are written, ends the
process at once (`run_stoppable`, `hard_stop`): one line on stderr, the exit status, no further
unwinding; once the outputs are written (`outputs_written`) further stops are ignored.
Raising a second `KeyboardInterrupt` there would land in whatever runs at that moment — a
native module's import (matplotlib's pybind11 extensions then abort the interpreter at exit:
"Fatal Python error: PyThreadState_Get"), an executor thread still inside a model — and the
files already renamed into place are whole anyway (`earshot.outputs.atomic_write`); the temp
file of a write still in flight is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")

EXIT_SIGINT = 130  # the exit statuses of a stopped run (table in `earshot.outcome`)
EXIT_SIGTERM = 143


@contextlib.contextmanager
def sigterm_as_sigint() -> Iterator[None]:
    """Within the block, handle SIGTERM like SIGINT; the previous handlers are restored after,
    unless the run was stopped (`run_stoppable`): then they stay until the process exits.

    The block owns the process (the ``earshot`` command): only there does a second stop end
    the process (`hard_stop`). Main thread only (elsewhere signals cannot be handled, and
    this does nothing).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state.sigterm = False
    _state.stopping = False
    _state.owns_process = True
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    previous_int = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        # A stopped run keeps its handlers to the end: a late SIGTERM still goes the SIGINT
        # way (`run_stoppable`'s hard stop, or ignored once the outputs are written).
        if not _state.stopping:
            _state.owns_process = False
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _state.sigterm = True
    signal.raise_signal(signal.SIGINT)


def stopped_by() -> str:
    """The signal that stopped the run: ``"SIGTERM"`` if one was received, else ``"SIGINT"``."""
    return "SIGTERM" if _state.sigterm else "SIGINT"


def run_stoppable(
    main: Coroutine[Any, Any, T],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> T:
    """Run ``main`` on a new event loop; the first Ctrl-C cancels it, a second ends the process.

    The first SIGINT (or SIGTERM, within `sigterm_as_sigint`) cancels the main task: every task
    group unwinds and executor jobs finish, then `KeyboardInterrupt` is raised here, so the
    caller writes its partial outputs. Within `sigterm_as_sigint` (the ``earshot`` command)
    another one from then on, until `outputs_written`, ends the process at once
    (`hard_stop`). Outside it (earshot used as a library, e.g. in a notebook) a second one
    raises `KeyboardInterrupt` at once, as `asyncio.Runner` does, and each call starts afresh.

    Off the main thread (where signals cannot be handled) this is `asyncio.Runner.run`.

    Args:
        main: the coroutine to run.
        loop_factory: makes the event loop (`earshot.clock.SimulatedClock` passes its own).

    Returns:
        What ``main`` returned.

    Raises:
        KeyboardInterrupt: the run was stopped (even if ``main`` absorbed the cancellation).
        BaseException: whatever ``main`` raised.
    """
    if threading.current_thread() is not threading.main_thread():
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(main)
    tasks: list[asyncio.Task[Any]] = []

    async def tracked() -> T:
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        if _state.stopping:  # stopped before the task began
            main.close()
            raise asyncio.CancelledError
        return await main

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if _state.stopping:
            if _state.owns_process:
                hard_stop()
                return
            raise KeyboardInterrupt
        _state.stopping = True
        if tasks and not tasks[0].done():
            tasks[0].cancel()
            tasks[0].get_loop().call_soon_threadsafe(lambda: None)  # wake the selector
        # else: the loop is closing (executor jobs finishing); KeyboardInterrupt follows

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            try:
                result = runner.run(tracked())
            except asyncio.CancelledError:
                if _state.stopping:
                    raise KeyboardInterrupt from None
                raise
        if _state.stopping:  # even if main absorbed the cancellation
            raise KeyboardInterrupt
        return result
    finally:
        # The command keeps the handler for the rest of a stopped run (its partial outputs).
        if not (_state.stopping and _state.owns_process):
            signal.signal(signal.SIGINT, previous)
            _state.stopping = False


def outputs_written() -> None:
    """Say that a stopped run's outputs are all written: from now on, stops are ignored.

    What is left is printing the summary and exiting; a second Ctrl-C there would only cut the
    summary short. Does nothing unless the run was stopped (`run_stoppable`). Main thread only.
    """
    if _state.stopping and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def hard_stop() -> None:
    """End the process now: one line on stderr, exit status 130 (143 after a SIGTERM).

    Removes the temp files of writes in flight (`temp_file_in_flight`); runs no ``finally``,
    no ``atexit``, no interpreter shutdown. Called while a temp file is being created (its name
    not yet known), it waits for that name.
    """
    if _state.naming:
        _state.stop_when_named = True
        return
    how = stopped_by()
    for path in tuple(_state.in_flight):
        with contextlib.suppress(OSError):
            path.unlink()
    with contextlib.suppress(OSError):
        os.write(2, f"earshot: stopped by {'Ctrl-C' if how == 'SIGINT' else how}\n".encode())
    os._exit(EXIT_SIGTERM if how == "SIGTERM" else EXIT_SIGINT)


@contextlib.contextmanager
def temp_file_in_flight() -> Iterator[Callable[[Path], None]]:
    """Within the block, a `hard_stop` removes the temp file given to the yielded callback.

    Create the file inside the block and pass its path to the callback at once: a hard stop
    that comes before (while ``mkstemp`` is running) is held until then, so no temp file is
    left behind. Thread-safe.
    """
    path: list[Path] = []

    def named(p: Path) -> None:
        path.append(p)
        register_temp(p)
        _end_naming()

    with _state.lock:
        _state.naming += 1
    try:
        yield named
    finally:
        if path:
            release_temp(path[0])
        else:
            _end_naming()


def register_temp(path: Path) -> None:
    """A `hard_stop` removes ``path`` (a temp file that is renamed into place when done)."""
    with _state.lock:
        _state.in_flight.add(path)


def release_temp(path: Path) -> None:
    """``path`` was renamed into place or removed: `hard_stop` leaves it alone."""
    with _state.lock:
        _state.in_flight.discard(path)


def _end_naming() -> None:
    with _state.lock:
        _state.naming -= 1
        stop = not _state.naming and _state.stop_when_named
    if stop:
        hard_stop()


@dataclass
class _StopState:
    sigterm: bool = False
    """A SIGTERM was received (the run's exit status is then 143)."""
    stopping: bool = False
    owns_process: bool = False
    """Inside `sigterm_as_sigint`: the ``earshot`` command, which may end the process."""
    naming: int = 0
    stop_when_named: bool = False
    in_flight: set[Path] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)  # never taken by hard_stop


_state = _StopState()
