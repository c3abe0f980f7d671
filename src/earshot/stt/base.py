"""The streaming speech-to-text interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from earshot.audio.frames import Pcm16


@dataclass(frozen=True, slots=True)
class WordSegment:
    """One recognised word; times in ms from the start of the audio pushed since `start()`."""

    text: str
    start_ms: float
    end_ms: float


@dataclass(frozen=True, slots=True)
class Transcript:
    """A final transcript of one user turn."""

    text: str
    words: tuple[WordSegment, ...] = ()


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
