"""Preemptive generation: start the reply on a stable partial transcript, before end-of-turn.

While the end-pointer waits out the caller's silence, the streaming recognizer's partial
transcript is usually already the final one. LiveKit Agents' ``preemptive_generation`` starts
the LLM (and TTS) on it then; earshot does the same:

* a partial that has stayed the same (after `normalize_transcript`) for ``stable_ms`` since
  the caller stopped speaking → `StartSpeculation` on it;
* the partial changes while a speculation runs → `CancelSpeculation` (the caller said more);
  it may start again once the new partial is stable;
* the final transcript arrives: if it normalizes to the speculated text → `CommitSpeculation`
  (its audio, held until now, is released); otherwise → `CancelSpeculation` and the reply
  is generated on the final as usual (a restart).

Nothing speculative is ever heard: audio is held until the final transcript confirms it. The
policy counts the waste — speculations started, cancelled, and (reported by the shell) tokens
discarded — and the shell reports the saving (how much of the LLM's TTFT and the TTS's first
audio was done before the final transcript).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from earshot.levers.normalize import normalize_transcript


@dataclass(frozen=True, slots=True)
class PreemptiveConfig:
    """When to speculate.

    Args:
        stable_ms: the normalized partial must be unchanged this long, counted from when it
            last changed or from the end of the caller's speech, whichever is later (ms).
        min_words: partials shorter than this are not speculated on.
        max_speculations: speculations per turn (each restart costs a request).

    Raises:
        ValueError: negative ``stable_ms`` or counts below 1.
    """

    stable_ms: float = 100.0
    min_words: int = 1
    max_speculations: int = 3

    def __post_init__(self) -> None:
        if self.stable_ms < 0:
            raise ValueError(f"stable_ms must be >= 0, got {self.stable_ms}")
        if self.min_words < 1 or self.max_speculations < 1:
            raise ValueError("min_words and max_speculations must be >= 1")


@dataclass(frozen=True, slots=True)
class StartSpeculation:
    """Generate (and synthesize, held) a reply to ``text`` now."""

    text: str
    at_ms: float


@dataclass(frozen=True, slots=True)
class CancelSpeculation:
    """Cancel the running speculation (``reason``: ``"partial_changed"``, ``"final_differs"``,
    ``"turn_restarted"``)."""

    reason: str
    at_ms: float


@dataclass(frozen=True, slots=True)
class CommitSpeculation:
    """The final transcript matches: release the speculation's held audio as the reply."""

    text: str
    at_ms: float


PreemptiveAction = StartSpeculation | CancelSpeculation | CommitSpeculation


@dataclass(slots=True)
class PreemptivePolicy:
    """The per-turn speculation state machine (see the module docstring); feed it in time order.

    Call `turn_started` when the caller starts a turn, `partial` for each partial transcript,
    `speech_paused`/`speech_resumed` from the VAD, `poll` on every frame, and `final` with the
    final transcript.
    """

    config: PreemptiveConfig = field(default_factory=PreemptiveConfig)
    _partial: str = ""
    _changed_ms: float = 0.0
    _paused_ms: float | None = None
    _running: str | None = None
    started: int = 0
    cancelled: int = 0
    committed: bool = False
    _log: list[dict[str, Any]] = field(default_factory=list)

    def turn_started(self, now_ms: float) -> list[PreemptiveAction]:
        """A new turn: forget the last one (cancelling anything still running)."""
        actions = self._cancel("turn_restarted", now_ms) if self._running is not None else []
        self._partial, self._changed_ms, self._paused_ms = "", now_ms, None
        self.started = self.cancelled = 0
        self.committed = False
        self._log.clear()
        return actions

    def speech_paused(self, end_ms: float) -> None:
        """The caller's speech stopped at ``end_ms`` (capture time)."""
        self._paused_ms = end_ms

    def speech_resumed(self, now_ms: float) -> None:
        """The caller speaks again: the stability clock waits for the next pause."""
        self._paused_ms = None

    def partial(self, text: str, now_ms: float) -> list[PreemptiveAction]:
        """A partial transcript arrived."""
        normalized = normalize_transcript(text)
        if normalized == self._partial:
            return self.poll(now_ms)
        self._partial, self._changed_ms = normalized, now_ms
        if self._running is not None and self._running != normalized:
            return self._cancel("partial_changed", now_ms)
        return []

    def poll(self, now_ms: float) -> list[PreemptiveAction]:
        """Start a speculation if the partial has been stable long enough during a pause."""
        if self._running is not None or self.committed or self._paused_ms is None:
            return []
        if self.started >= self.config.max_speculations:
            return []
        if len(self._partial.split()) < self.config.min_words:
            return []
        stable_since = max(self._changed_ms, self._paused_ms)
        if now_ms - stable_since < self.config.stable_ms:
            return []
        self._running = self._partial
        self.started += 1
        self._log.append({"event": "start", "at_ms": now_ms, "text": self._partial})
        return [StartSpeculation(self._partial, now_ms)]

    def final(self, text: str, now_ms: float) -> list[PreemptiveAction]:
        """The final transcript: commit the speculation if it matches, else cancel it."""
        if self._running is None:
            return []
        if normalize_transcript(text) == self._running:
            self.committed = True
            text_run, self._running = self._running, None
            self._log.append({"event": "commit", "at_ms": now_ms})
            return [CommitSpeculation(text_run, now_ms)]
        return self._cancel("final_differs", now_ms)

    @property
    def running(self) -> str | None:
        """The normalized text being speculated on, if any."""
        return self._running

    def summary(self) -> dict[str, Any]:
        """For the turn record: speculations started and cancelled, and whether one won."""
        return {
            "speculations": self.started,
            "cancelled": self.cancelled,
            "committed": self.committed,
            "events": [dict(e) for e in self._log],
        }

    def _cancel(self, reason: str, now_ms: float) -> list[PreemptiveAction]:
        self._running = None
        self.cancelled += 1
        self._log.append({"event": "cancel", "at_ms": now_ms, "reason": reason})
        return [CancelSpeculation(reason, now_ms)]


def clamp_marks(marks_ms: dict[str, float], order: tuple[str, ...], after: str) -> dict[str, float]:
    """Marks from ``after`` on, as the caller waited for them: each at least the one before.

    A speculation's LLM and TTS marks fall before ``stt_final`` (that is the point). On the
    critical path only what the caller still waited for counts, so each mark after ``after``
    becomes ``max(itself, the previous mark)``; the terms stay consecutive differences that sum
    to TTFAT. Returns the saving per mark: original value → clamped (ms moved).

    Raises:
        KeyError: ``after`` is not in ``order``.
    """
    moved: dict[str, float] = {}
    start = order.index(after)
    previous = marks_ms[after]
    for name in order[start + 1 :]:
        if name not in marks_ms:
            continue
        if marks_ms[name] < previous:
            moved[name] = previous - marks_ms[name]
            marks_ms[name] = previous
        previous = marks_ms[name]
    return moved
