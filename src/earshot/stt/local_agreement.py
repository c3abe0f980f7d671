"""Streaming partials from a batch recognizer: the LocalAgreement policy, on audio time.

Whisper decodes a whole buffer at once. To stream it, the growing buffer of the open turn is
re-decoded from its start on a schedule, and a word is *committed* once two consecutive
decodes agree on it (the longest common prefix of the last two hypotheses, after the words
already committed): LocalAgreement-2 of Macháček, Dabre & Bojar, "Turning Whisper into
Real-Time Transcription System" (IJCNLP-AACL 2023 demo), §2. Committed words never change; the
partial shown is the committed words plus the newest hypothesis's unconfirmed tail.

This module is the policy alone: a synchronous state machine fed sample counts (all times are
audio time, ms since the turn's first sample) and the hypotheses of decodes the caller ran. It
never reads a clock or runs a model, so a replay is deterministic and tests drive it on
synthetic timelines.

The schedule: a re-decode is due when no decode is in flight, at least ``min_audio_ms`` of
audio has been pushed, and at least ``interval_ms`` of new audio has arrived since the previous
decode started — or ``cost_factor`` times the previous decode's measured cost, if that is
longer, so a slow machine decodes less often instead of falling behind (each Whisper decode
costs about the same whatever the buffer length, because the encoder pads to 30 s).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from earshot.audio.frames import SAMPLE_RATE_HZ
from earshot.stt.base import WordSegment

_NON_WORD = re.compile(r"[^\w']+")


def word_key(text: str) -> str:
    """The form two hypotheses are compared in: lower case, punctuation dropped."""
    return _NON_WORD.sub("", text.lower())


def common_prefix(a: Sequence[WordSegment], b: Sequence[WordSegment]) -> int:
    """How many leading words ``a`` and ``b`` share (compared by `word_key`)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if word_key(x.text) != word_key(y.text):
            break
        n += 1
    return n


@dataclass(frozen=True, slots=True)
class AgreementConfig:
    """The re-decode schedule.

    Attributes:
        interval_ms: least new audio (ms) between the starts of two partial decodes.
        min_audio_ms: no partial decode before this much audio (ms) of the turn.
        cost_factor: the interval is at least this times the last decode's cost (ms), so
            decoding takes at most ~1/cost_factor of one worker's time.
    """

    interval_ms: float = 700.0
    min_audio_ms: float = 600.0
    cost_factor: float = 1.5

    def __post_init__(self) -> None:
        if self.interval_ms <= 0 or self.min_audio_ms < 0 or self.cost_factor < 0:
            raise ValueError(
                "AgreementConfig needs interval_ms > 0, min_audio_ms >= 0 and cost_factor >= 0, "
                f"got {self.interval_ms}, {self.min_audio_ms}, {self.cost_factor}"
            )


class LocalAgreement:
    """LocalAgreement-2 over re-decodes of one turn's growing buffer.

    Calls, in stream order: `push` for every block of audio (it answers whether a partial
    decode is due), `decode_started` when the caller starts one, `decode_done` with its
    hypothesis. `reset` starts a new turn.

    Args:
        config: the re-decode schedule.
    """

    def __init__(self, config: AgreementConfig | None = None) -> None:
        self.config = config or AgreementConfig()
        self.reset()

    def reset(self) -> None:
        """Forget the turn: no audio, no hypotheses, nothing committed."""
        self._num_samples = 0
        self._in_flight = False
        self._last_start_ms: float | None = None
        self._last_cost_ms = 0.0
        self._previous: tuple[WordSegment, ...] = ()
        self._latest: tuple[WordSegment, ...] = ()
        self._committed: tuple[WordSegment, ...] = ()

    @property
    def audio_ms(self) -> float:
        """Audio pushed since `reset` (ms)."""
        return self._num_samples * 1000.0 / SAMPLE_RATE_HZ

    @property
    def num_samples(self) -> int:
        """Samples pushed since `reset` (16 kHz)."""
        return self._num_samples

    @property
    def committed(self) -> tuple[WordSegment, ...]:
        """Words two consecutive decodes agreed on; they never change within a turn."""
        return self._committed

    @property
    def partial(self) -> str:
        """Committed words plus the newest hypothesis's unconfirmed tail, space-separated."""
        tail = self._latest[len(self._committed) :]
        return " ".join(w.text for w in (*self._committed, *tail))

    @property
    def in_flight(self) -> bool:
        """A decode was started and has not reported back."""
        return self._in_flight

    def push(self, num_samples: int) -> bool:
        """Count ``num_samples`` new samples (16 kHz) of the turn.

        Returns:
            True when a partial decode of the whole buffer is due now.

        Raises:
            ValueError: ``num_samples`` is negative.
        """
        if num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {num_samples}")
        self._num_samples += num_samples
        return self.due()

    def due(self) -> bool:
        """True when a partial decode should start now (see the module docstring)."""
        if self._in_flight or self.audio_ms < self.config.min_audio_ms:
            return False
        if self._last_start_ms is None:
            return True
        gap_ms = max(self.config.interval_ms, self.config.cost_factor * self._last_cost_ms)
        return self.audio_ms - self._last_start_ms >= gap_ms

    def decode_started(self) -> int:
        """A decode of the whole buffer starts now.

        Returns:
            The number of samples it covers (the buffer as pushed so far).

        Raises:
            RuntimeError: a decode is already in flight.
        """
        if self._in_flight:
            raise RuntimeError("decode_started() while a decode is in flight")
        self._in_flight = True
        self._last_start_ms = self.audio_ms
        return self._num_samples

    def decode_done(self, words: Sequence[WordSegment], cost_ms: float = 0.0) -> str:
        """Take a finished decode's hypothesis and commit what two decodes agree on.

        Args:
            words: the hypothesis, in order, times in ms since the turn's first sample.
            cost_ms: what the decode cost (ms of compute), for the schedule.

        Returns:
            The new `partial`.

        Raises:
            RuntimeError: no decode was in flight.
        """
        if not self._in_flight:
            raise RuntimeError("decode_done() without decode_started()")
        self._in_flight = False
        self._last_cost_ms = max(0.0, cost_ms)
        hypothesis = tuple(words)
        self._previous, self._latest = self._latest, hypothesis
        n = len(self._committed)
        # The committed words must still lead the new hypothesis for the agreement to extend;
        # Whisper rarely rewrites them, and if it does the commitment stands.
        if common_prefix(self._committed, hypothesis) == n:
            agreed = common_prefix(self._previous[n:], hypothesis[n:])
            self._committed = (*self._committed, *hypothesis[n : n + agreed])
        return self.partial
