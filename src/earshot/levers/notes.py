"""Lever notes: what a lever did during one turn, written into that turn's record.

A lever that wraps a stage (e.g. `earshot.levers.hedge.HedgedLLM`, a `LanguageModel`) cannot
see the turn it serves through the stage's interface. The response that runs the stage binds the
turn's ``extra`` dict with `bind_turn_notes` for the duration of its task; the lever calls
`note`. It is a `contextvars.ContextVar`, so concurrent responses (a preemptive one and a normal
one) each see their own turn, and a lever used outside a session records nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

_TURN_NOTES: ContextVar[dict[str, Any] | None] = ContextVar("earshot_turn_notes", default=None)


@contextlib.contextmanager
def bind_turn_notes(extra: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Route `note` calls made in this context (and tasks it starts) into ``extra``."""
    token = _TURN_NOTES.set(extra)
    try:
        yield extra
    finally:
        _TURN_NOTES.reset(token)


def note(key: str, value: Any) -> None:
    """Record ``value`` under ``key`` in the bound turn's ``extra`` (no-op when unbound)."""
    extra = _TURN_NOTES.get()
    if extra is not None:
        extra[key] = value


def current_notes() -> dict[str, Any] | None:
    """The bound turn's ``extra`` dict, or None outside a response."""
    return _TURN_NOTES.get()
