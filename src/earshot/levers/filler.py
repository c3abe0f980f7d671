"""Latency masking for tool calls: a filler line only when the tool runs long, cut at a word.

T. Pan ("Voice AI in Production") lists the tactics: fire predictable tool calls at call start,
mask mid-call ones with a spoken acknowledgement, bridge with a statement past a time
threshold. `FillerSchedule` is the threshold rule: a tool that answers within ``threshold_ms``
gets no filler (a filler that is not needed only adds words before the answer); one that does
not gets the next line of ``lines`` spoken while it runs.

When the answer arrives while the filler is playing, the filler is never cut off mid-word:
`word_boundary_cut` finds where it may stop — the end of the word being played (word timings
from the TTS, `earshot.tts.base.WordTiming`), or the current position when it is between words —
and `cut_filler` keeps the audio up to there with a short fade-out ending at the boundary, so
the stop makes no click.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16
from earshot.tts.base import WordTiming

DEFAULT_FILLER_LINES: tuple[str, ...] = (
    "One moment while I check.",
    "Let me look that up.",
    "Just a second.",
)


@dataclass(frozen=True, slots=True)
class FillerConfig:
    """When and what to say while a tool runs.

    Args:
        threshold_ms: speak a filler if the tool has not answered this long after it started.
            300 ms is an assumption (no published figure): past the ~200–300 ms gap that reads
            as a natural turn transition, well inside the 700 ms that feels awkward (§39.2.1).
        lines: filler lines, used in rotation.
        fade_ms: fade-out at the cut (ms).

    Raises:
        ValueError: a negative threshold or fade, or no lines.
    """

    threshold_ms: float = 300.0
    lines: tuple[str, ...] = DEFAULT_FILLER_LINES
    fade_ms: float = 10.0

    def __post_init__(self) -> None:
        if self.threshold_ms < 0 or self.fade_ms < 0:
            raise ValueError("filler threshold_ms and fade_ms must be >= 0")
        if not self.lines or not all(line.strip() for line in self.lines):
            raise ValueError("give at least one non-empty filler line")


@dataclass(frozen=True, slots=True)
class SpeakFiller:
    """Speak ``text`` now (the tool has run past the threshold)."""

    text: str
    at_ms: float


@dataclass(slots=True)
class FillerSchedule:
    """The threshold rule for one tool wait, fed ``now_ms``.

    Args:
        config: threshold and lines.
        started_ms: when the tool call started.
        line_index: which of ``config.lines`` to use (rotate across calls).
    """

    config: FillerConfig
    started_ms: float
    line_index: int = 0
    spoken: SpeakFiller | None = None
    answered_ms: float | None = None
    _done: bool = field(default=False)

    @property
    def due_ms(self) -> float:
        """When the filler is due if the tool has not answered."""
        return self.started_ms + self.config.threshold_ms

    def poll(self, now_ms: float) -> SpeakFiller | None:
        """The filler, once, if the threshold has passed and the tool has not answered."""
        if self._done or self.spoken is not None or now_ms < self.due_ms:
            return None
        line = self.config.lines[self.line_index % len(self.config.lines)]
        self.spoken = SpeakFiller(line, now_ms)
        return self.spoken

    def answered(self, now_ms: float) -> None:
        """The tool answered at ``now_ms``; no filler after this."""
        self.answered_ms = now_ms
        self._done = True


def word_boundary_cut(words: Sequence[WordTiming], played_samples: int) -> int:
    """The first sample at or after ``played_samples`` where speech may stop without cutting a
    word: the end of the word being played, else ``played_samples`` itself (between words).

    Args:
        words: the filler's word timings, samples from its first sample, in order.
        played_samples: how much of the filler has played.
    """
    for word in words:
        if word.start_sample <= played_samples < word.end_sample:
            return word.end_sample
    return played_samples


def cut_filler(
    audio: Pcm16,
    words: Sequence[WordTiming],
    played_samples: int,
    fade_ms: float = 10.0,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
) -> Pcm16:
    """The part of the filler still to play, ending at a word boundary with a fade-out.

    Args:
        audio: the whole filler, int16 mono at ``sample_rate_hz``.
        words: its word timings (samples from its start).
        played_samples: samples already played.
        fade_ms: linear fade over the last ``fade_ms`` before the boundary (ms).

    Returns:
        int16, ``audio[played_samples:cut]`` faded out at its end; empty when the cut is here.

    Raises:
        ValueError: ``audio`` is not 1-D int16.
    """
    if audio.dtype != np.int16 or audio.ndim != 1:
        raise ValueError(f"filler audio must be 1-D int16, got {audio.dtype} {audio.shape}")
    played = min(max(0, played_samples), audio.size)
    cut = min(word_boundary_cut(words, played), audio.size)
    rest = audio[played:cut].astype(np.float64)
    fade = min(rest.size, round(fade_ms * sample_rate_hz / 1000.0))
    if fade > 0:
        rest[-fade:] *= np.linspace(1.0, 0.0, fade, endpoint=True)
    out: Pcm16 = np.round(rest).astype(np.int16)
    return out
