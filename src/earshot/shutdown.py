"""One shutdown path for every way a user stops earshot.

SIGTERM is turned into SIGINT: whatever handles Ctrl-C at that moment handles it — during start-up
Python's default handler raises `KeyboardInterrupt`; inside an event loop run by
`asyncio.Runner` (both clocks use one) the main task is cancelled, every task group unwinds, and
`KeyboardInterrupt` is raised once the loop is done — so a terminated run writes its partial
outputs exactly as an interrupted one does. `stopped_by` tells the two apart afterwards, for the
exit status (130 or 143).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_received: list[str] = []


def install() -> None:
    """Handle SIGTERM like SIGINT (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return
    _received.clear()
    signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _received.append("SIGTERM")
    signal.raise_signal(signal.SIGINT)


def stopped_by() -> str:
    """The signal that stopped the run: ``"SIGTERM"`` if one was received, else ``"SIGINT"``."""
    return "SIGTERM" if _received else "SIGINT"
