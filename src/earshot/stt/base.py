"""The streaming speech-to-text interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from earshot.audio.frames import Pcm16


@dataclass(frozen=True, slots=True)
class WordSegment:
    """One recognised word; times in ms from the start of the audio pushed since `start()`."""

    text: str
    start_ms: float
    end_ms: float


@dataclass(frozen=True, slots=True)
class Transcript:
    """A final transcript of one user turn.

    Attributes:
        text: the recognised words.
        words: word segmentation, times in ms since `StreamingRecognizer.start`.
        decode_ms: wall cost (ms) of each decode run the recognizer made for this turn, in
            order (an early final decode started at a pause, then the one at `finish`, ...);
            empty when the backend does not measure it. Recorded as ``stt_decode_ms``.
        early_final: True when the final came from a decode started early (at a pause, see
            `SupportsPauseHints`) and was still valid at `finish`; False when it had to be
            redone; None when the backend makes no early decode. Recorded as
            ``stt_early_final``.
    """

    text: str
    words: tuple[WordSegment, ...] = ()
    decode_ms: tuple[float, ...] = ()
    early_final: bool | None = None


class StreamingRecognizer(Protocol):
    """Streaming STT: audio is pushed while the user speaks; the final comes on `finish()`.

    All methods are blocking (CPU-bound) and are called off the event loop, one at a time.
    """

    name: str

    def start(self) -> None:
        """Begin a new utterance (a user turn)."""
        ...

    def push_audio(self, pcm: Pcm16) -> str:
        """Feed int16 16 kHz mono audio; return the current partial hypothesis ('' if none)."""
        ...

    def finish(self) -> Transcript:
        """End the utterance and return its final transcript with word segmentation."""
        ...


@runtime_checkable
class SupportsPauseHints(Protocol):
    """Optional: a recognizer that wants to know when the caller pauses inside a turn.

    The session's STT worker calls these (off the event loop, one at a time, interleaved with
    the `StreamingRecognizer` calls in stream order) when the recognizer implements them, so a
    backend can start its final decode at the first silence, in parallel with the endpointing
    wait, and drop it if speech resumes.
    """

    def speech_paused(self, audio_ms: float) -> None:
        """The VAD segmenter reported the end of a speech run inside the open turn.

        Args:
            audio_ms: ms of audio pushed since `StreamingRecognizer.start` so far (the pause
                begins at or before this point of the pushed audio).
        """
        ...

    def speech_resumed(self) -> None:
        """Speech began again in the same turn (an early decode may be stale)."""
        ...
