"""End-of-turn policies: when has the user finished speaking?

An endpointer is a pure, clock-free policy. The turn detector calls `decide` on every frame of
silence that follows speech, with the evidence so far; the policy answers whether the turn is
over now. Policies never read a clock: all times come in the `PauseContext`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from earshot.audio.frames import Pcm16


@dataclass(frozen=True, slots=True)
class PauseContext:
    """Evidence at one frame of a pause after user speech.

    Attributes:
        silence_ms: silence so far, from the end of the last voiced frame (ms).
        speech_ms: voiced duration of the turn so far (ms).
        partial_text: the streaming STT's current partial transcript of the turn.
        tail_audio: int16 16 kHz mono audio of the last voiced stretch before the pause
            (up to ~1 s), for acoustic cues; may be empty.
        frame: int16 16 kHz mono audio of this frame of the pause (the noise floor), if known.
    """

    silence_ms: float
    speech_ms: float
    partial_text: str
    tail_audio: Pcm16 | None = None
    frame: Pcm16 | None = None


class Endpointer(Protocol):
    """A pluggable end-of-turn policy (fixed threshold, rules, learned classifier...)."""

    name: str

    def decide(self, ctx: PauseContext) -> bool:
        """True if the user's turn is over at this frame."""
        ...

    def on_resume(self, pause_ms: float) -> None:
        """The user spoke again after a pause of ``pause_ms`` that did not end the turn."""
        ...

    def on_turn_end(self) -> None:
        """The turn ended (reset per-turn state; keep per-user statistics)."""
        ...


class FixedEndpointer:
    """End of turn after a fixed silence (the OpenAI Realtime ``server_vad`` style policy).

    Args:
        silence_ms: silence after speech that ends a turn. Default 500 ms, the
            ``silence_duration_ms`` default of OpenAI Realtime ``server_vad`` and the clean-audio
            sweet spot of §39.2.2 (Exercise 39.2.2).
    """

    name = "fixed"

    def __init__(self, silence_ms: float = 500.0) -> None:
        if silence_ms <= 0:
            raise ValueError(f"end-of-turn silence must be > 0 ms, got {silence_ms}")
        self.silence_ms = silence_ms

    def decide(self, ctx: PauseContext) -> bool:
        return ctx.silence_ms >= self.silence_ms

    def on_resume(self, pause_ms: float) -> None:
        pass

    def on_turn_end(self) -> None:
        pass
