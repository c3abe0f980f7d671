"""The turn detector: VAD speech segments + an end-of-turn policy → user turns.

A pure state machine. It is fed one frame at a time with the frame's audio-time span, whether the
VAD segmenter holds speech, and the STT's partial text; it returns typed events. It reads no
clock: the caller stamps decisions with the session clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from earshot.audio.frames import Pcm16, ms_to_samples
from earshot.turns.endpointer import Endpointer, PauseContext

DEFAULT_MIN_SPEECH_MS = 200.0
"""Voiced time a turn needs before it can end (shorter blips are discarded as clicks).

Pipecat's Silero ``VADParams.start_secs`` default is 0.2 s (REFERENCE.md, peers' defaults).
"""

TAIL_AUDIO_MS = 1000.0


@dataclass(frozen=True, slots=True)
class TurnStarted:
    """The user started a turn; ``start_ms`` is the first voiced frame (audio time)."""

    start_ms: float


@dataclass(frozen=True, slots=True)
class TurnResumed:
    """The user spoke again after a pause of ``pause_ms`` that did not end the turn."""

    start_ms: float
    pause_ms: float


@dataclass(frozen=True, slots=True)
class TurnDiscarded:
    """A voiced stretch too short to be a turn (click, cough) ended; nothing is answered."""

    start_ms: float
    end_ms: float


@dataclass(frozen=True, slots=True)
class EndOfTurn:
    """The end-of-turn decision.

    Attributes:
        speech_end_ms: end of the last voiced frame of the turn (audio time).
        decided_at_ms: audio time of the end of the frame on which the policy decided.
        speech_ms: voiced duration of the whole turn.
    """

    speech_end_ms: float
    decided_at_ms: float
    speech_ms: float


TurnEvent = TurnStarted | TurnResumed | TurnDiscarded | EndOfTurn


class TurnDetector:
    """Turns from per-frame speech flags and an `Endpointer`.

    Args:
        endpointer: the end-of-turn policy asked on every frame of a pause.
        min_speech_ms: voiced time below which a stretch is discarded instead of answered.
        sample_rate_hz: sample rate of the frames given to `push` (for the tail audio).
    """

    def __init__(
        self,
        endpointer: Endpointer,
        min_speech_ms: float = DEFAULT_MIN_SPEECH_MS,
        sample_rate_hz: int = 16_000,
    ) -> None:
        self.endpointer = endpointer
        self.min_speech_ms = min_speech_ms
        self._tail: deque[Pcm16] = deque()
        self._tail_samples = 0
        self._tail_max = ms_to_samples(TAIL_AUDIO_MS, sample_rate_hz)
        self._tail_cache: Pcm16 | None = None
        self._in_turn = False
        self._speaking = False
        self._turn_start_ms = 0.0
        self._segment_start_ms = 0.0
        self._speech_ms = 0.0
        self._speech_end_ms = 0.0

    @property
    def in_turn(self) -> bool:
        """True from the first voiced frame of a turn until its end-of-turn decision."""
        return self._in_turn

    @property
    def speaking(self) -> bool:
        return self._speaking

    def push(
        self,
        frame_start_ms: float,
        frame_end_ms: float,
        is_speech: bool,
        partial_text: str = "",
        frame: Pcm16 | None = None,
        voiced_end_ms: float | None = None,
    ) -> list[TurnEvent]:
        """Advance by one frame.

        Args:
            frame_start_ms: audio time of the frame's first sample (ms).
            frame_end_ms: audio time just past its last sample (ms).
            is_speech: the VAD segmenter's state after this frame.
            partial_text: the STT's current partial transcript of the turn.
            frame: the frame's int16 audio (kept as tail audio for acoustic cues).
            voiced_end_ms: on the frame where speech stops, the VAD segmenter's end of the
                last voiced frame, if it knows better than "end of the last speech frame"
                (a segmenter with hangover).

        Returns:
            The events this frame caused, in order.
        """
        events: list[TurnEvent] = []
        if is_speech:
            if frame is not None:
                self._keep_tail(frame)
            if not self._speaking:
                self._speaking = True
                self._segment_start_ms = frame_start_ms
                if not self._in_turn:
                    self._in_turn = True
                    self._turn_start_ms = frame_start_ms
                    self._speech_ms = 0.0
                    events.append(TurnStarted(frame_start_ms))
                else:
                    pause_ms = frame_start_ms - self._speech_end_ms
                    self.endpointer.on_resume(pause_ms)
                    events.append(TurnResumed(frame_start_ms, pause_ms))
            self._speech_end_ms = frame_end_ms
            return events

        if self._speaking:
            self._speaking = False
            if voiced_end_ms is not None:
                self._speech_end_ms = max(self._segment_start_ms, voiced_end_ms)
            self._speech_ms += self._speech_end_ms - self._segment_start_ms
        if not self._in_turn:
            return events
        silence_ms = frame_end_ms - self._speech_end_ms
        if self._speech_ms < self.min_speech_ms:
            # Too short to be a turn; once the pause is as long as the speech needed to
            # start one, give up on it (a click, a cough).
            if silence_ms >= self.min_speech_ms:
                events.append(TurnDiscarded(self._turn_start_ms, self._speech_end_ms))
                self._end_turn()
            return events
        ctx = PauseContext(
            silence_ms=silence_ms,
            speech_ms=self._speech_ms,
            partial_text=partial_text,
            tail_audio=self._tail_audio(),
            frame=frame,
        )
        if self.endpointer.decide(ctx):
            events.append(EndOfTurn(self._speech_end_ms, frame_end_ms, self._speech_ms))
            self._end_turn()
            self.endpointer.on_turn_end()
        return events

    def _end_turn(self) -> None:
        self._in_turn = False
        self._tail.clear()
        self._tail_samples = 0
        self._tail_cache = None

    def _keep_tail(self, frame: Pcm16) -> None:
        self._tail_cache = None
        self._tail.append(frame)
        self._tail_samples += len(frame)
        while self._tail and self._tail_samples - len(self._tail[0]) >= self._tail_max:
            self._tail_samples -= len(self._tail.popleft())

    def _tail_audio(self) -> Pcm16 | None:
        if not self._tail:
            return None
        if self._tail_cache is None:
            self._tail_cache = np.concatenate(list(self._tail))
        return self._tail_cache
