"""One shutdown path for every way a user stops earshot.

SIGTERM is turned into SIGINT: whatever handles Ctrl-C at that moment handles it — during start-up
Python's default handler raises `KeyboardInterrupt`; inside an event loop run by
`asyncio.Runner` (both clocks use one) the main task is cancelled, every task group unwinds, and
`KeyboardInterrupt` is raised once the loop is done — so a terminated run writes its partial
outputs exactly as an interrupted one does. `stopped_by` tells the two apart afterwards, for the
exit status (130 or 143).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

_received: list[str] = []


@contextlib.contextmanager
def sigterm_as_sigint() -> Iterator[None]:
    """Within the block, handle SIGTERM like SIGINT; the previous handler is restored after.

    Main thread only (elsewhere signals cannot be handled, and this does nothing).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _received.append("SIGTERM")
    signal.raise_signal(signal.SIGINT)


def stopped_by() -> str:
    """The signal that stopped the run: ``"SIGTERM"`` if one was received, else ``"SIGINT"``."""
    return "SIGTERM" if _received else "SIGINT"
