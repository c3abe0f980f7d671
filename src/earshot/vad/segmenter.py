"""Speech-probability → utterance events: a pure hysteresis state machine.

The segmenter never reads a clock: each `VadSegmenter.push` gives it one frame's probability and
the frame's position in input-audio time (ms), and it answers with the events that frame causes.

* **Start.** Speech starts after a run of consecutive frames with ``prob >= threshold`` that
  spans at least ``min_speech_ms``; `SpeechStarted.start_ms` is the start of the run's first
  frame. Shorter blips are ignored.
* **Continue.** While in speech a frame counts as voiced if ``prob >= stop_threshold``, a lower
  threshold (hysteresis), so a probability flickering around ``threshold`` does not split the
  utterance.
* **End.** After ``hangover_frames + 1`` consecutive frames below ``stop_threshold``,
  `SpeechEnded` is emitted with ``end_ms`` = end of the last voiced frame. This is the VAD's
  "speech end", not the end of the user's turn: the turn detector decides that from the silence
  measured since ``end_ms``.

The two thresholds follow Silero's own reference iterator, which leaves speech only when the
probability falls below ``threshold - 0.15`` (snakers4/silero-vad, src/silero_vad/utils_vad.py:
``VADIterator`` and ``get_speech_timestamps``'s ``neg_threshold``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """An utterance began at ``start_ms`` (input-audio time, start of its first voiced frame)."""

    start_ms: float


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """An utterance ended at ``end_ms`` (input-audio time, end of its last voiced frame)."""

    end_ms: float


VadEvent = SpeechStarted | SpeechEnded

DEFAULT_THRESHOLD = 0.5
"""Start threshold; Silero's documented default ("lazy 0.5 is pretty good for most datasets")."""

STOP_THRESHOLD_OFFSET = 0.15
"""Stop threshold = start threshold − 0.15, as in Silero's ``VADIterator``."""

DEFAULT_MIN_SPEECH_MS = 60.0
"""Voiced run needed to start an utterance: 3 frames of 20 ms."""


class VadSegmenter:
    """Hysteresis segmentation of per-frame speech probabilities into utterances.

    Args:
        threshold: start threshold in (0, 1]; a frame with ``prob >= threshold`` is voiced.
        stop_threshold: continue threshold in [0, threshold]; while in speech a frame is voiced if
            ``prob >= stop_threshold``. Default ``max(threshold - 0.15, 0.01)`` (Silero's
            ``neg_threshold``).
        min_speech_ms: a start needs consecutive voiced frames spanning at least this many ms
            (``ceil(min_speech_ms / frame_ms)`` frames: 3 at 20 ms, 6 at 10 ms, 2 at 40 ms).
        hangover_frames: frames below ``stop_threshold`` tolerated inside an utterance; the next
            one ends it. 0 ends on the first unvoiced frame; the default 1 bridges a one-frame dip.

    Raises:
        ValueError: a threshold is outside its range, ``min_speech_ms`` is negative, or
            ``hangover_frames`` is negative.
    """

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        stop_threshold: float | None = None,
        min_speech_ms: float = DEFAULT_MIN_SPEECH_MS,
        hangover_frames: int = 1,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if stop_threshold is None:
            stop_threshold = max(threshold - STOP_THRESHOLD_OFFSET, 0.01)
        if not 0.0 <= stop_threshold <= threshold:
            raise ValueError(
                f"stop_threshold must be in [0, threshold={threshold}], got {stop_threshold}"
            )
        if min_speech_ms < 0:
            raise ValueError(f"min_speech_ms must be >= 0, got {min_speech_ms}")
        if hangover_frames < 0:
            raise ValueError(f"hangover_frames must be >= 0, got {hangover_frames}")
        self.threshold = threshold
        self.stop_threshold = stop_threshold
        self.min_speech_ms = min_speech_ms
        self.hangover_frames = hangover_frames
        self.reset()

    def reset(self) -> None:
        """Back to silence, forgetting all history (start of a new stream)."""
        self._in_speech = False
        self._run_start_ms: float | None = None  # start of the current voiced run (not in speech)
        self._speech_start_ms: float | None = None
        self._last_voiced_end_ms: float | None = None
        self._unvoiced_frames = 0  # consecutive frames below stop_threshold while in speech
        self._next_frame_ms: float | None = None  # end of the previous frame

    @property
    def is_speech(self) -> bool:
        """True between `SpeechStarted` and `SpeechEnded` (including hangover frames)."""
        return self._in_speech

    @property
    def last_voiced_end_ms(self) -> float | None:
        """End (ms, input-audio time) of the latest voiced frame of an utterance; None before any.

        Frames of a blip that never started an utterance do not count.
        """
        return self._last_voiced_end_ms

    @property
    def speech_start_ms(self) -> float | None:
        """Start (ms) of the current utterance, or of the last one once it ended; None before."""
        return self._speech_start_ms

    def push(self, prob: float, frame_start_ms: float, frame_ms: float) -> list[VadEvent]:
        """Feed one frame's speech probability; return the events it causes (at most one).

        Args:
            prob: speech probability of the frame, in [0, 1].
            frame_start_ms: the frame's start in input-audio time (ms); frames must not overlap
                or go back in time (gaps are allowed).
            frame_ms: the frame's duration (ms), > 0.

        Raises:
            ValueError: ``prob`` is outside [0, 1] or NaN, ``frame_ms <= 0``, or the frame starts
                before the previous one ended.
        """
        if not 0.0 <= prob <= 1.0:  # also rejects NaN
            raise ValueError(f"speech probability must be in [0, 1], got {prob}")
        if not frame_ms > 0:
            raise ValueError(f"frame_ms must be > 0, got {frame_ms}")
        if self._next_frame_ms is not None and frame_start_ms < self._next_frame_ms - 1e-6:
            raise ValueError(
                f"frame at {frame_start_ms} ms starts before the previous frame ended "
                f"({self._next_frame_ms} ms); push frames in order without overlap"
            )
        frame_end_ms = frame_start_ms + frame_ms
        self._next_frame_ms = frame_end_ms

        if self._in_speech:
            if prob >= self.stop_threshold:
                self._unvoiced_frames = 0
                self._last_voiced_end_ms = frame_end_ms
                return []
            self._unvoiced_frames += 1
            if self._unvoiced_frames <= self.hangover_frames:
                return []
            self._in_speech = False
            self._unvoiced_frames = 0
            return [SpeechEnded(self._speech_end_ms())]

        if prob < self.threshold:
            self._run_start_ms = None
            return []
        run_start_ms = frame_start_ms if self._run_start_ms is None else self._run_start_ms
        if frame_end_ms - run_start_ms < self.min_speech_ms - 1e-6:
            self._run_start_ms = run_start_ms
            return []
        self._in_speech = True
        self._speech_start_ms = run_start_ms
        self._last_voiced_end_ms = frame_end_ms
        self._run_start_ms = None
        return [SpeechStarted(run_start_ms)]

    def finish(self) -> list[VadEvent]:
        """End of input: close an open utterance at its last voiced frame.

        Afterwards the segmenter is in silence and accepts frames from any position (a new
        stream may restart at 0 ms); `last_voiced_end_ms` and `speech_start_ms` keep their values.

        Returns:
            ``[SpeechEnded(last_voiced_end_ms)]`` if an utterance was open, else ``[]``.
        """
        events: list[VadEvent] = [SpeechEnded(self._speech_end_ms())] if self._in_speech else []
        self._in_speech = False
        self._run_start_ms = None
        self._unvoiced_frames = 0
        self._next_frame_ms = None
        return events

    def _speech_end_ms(self) -> float:
        if self._last_voiced_end_ms is None:  # unreachable: set when speech starts
            raise RuntimeError("VadSegmenter in speech without a voiced frame")
        return self._last_voiced_end_ms
