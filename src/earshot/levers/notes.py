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
_TURN_MARKS: ContextVar[dict[str, float] | None] = ContextVar("earshot_turn_marks", default=None)


@contextlib.contextmanager
def bind_turn_notes(
    extra: dict[str, Any], marks_ms: dict[str, float] | None = None
) -> Iterator[dict[str, Any]]:
    """Route `note` calls made in this context (and tasks it starts) into ``extra``, and
    `mark` calls into ``marks_ms`` (the turn's marks), if given."""
    token = _TURN_NOTES.set(extra)
    marks_token = _TURN_MARKS.set(marks_ms)
    try:
        yield extra
    finally:
        _TURN_MARKS.reset(marks_token)
        _TURN_NOTES.reset(token)


def mark(name: str, now_ms: float) -> None:
    """Set the bound turn's mark ``name`` (ms, session clock) unless it is set already."""
    marks = _TURN_MARKS.get()
    if marks is not None:
        marks.setdefault(name, now_ms)


def note(key: str, value: Any) -> None:
    """Record ``value`` under ``key`` in the bound turn's ``extra`` (no-op when unbound)."""
    extra = _TURN_NOTES.get()
    if extra is not None:
        extra[key] = value


def current_notes() -> dict[str, Any] | None:
    """The bound turn's ``extra`` dict, or None outside a response."""
    return _TURN_NOTES.get()
