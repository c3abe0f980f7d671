"""The streaming text-to-speech interface."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Protocol

from earshot.audio.frames import Pcm16


@dataclass(frozen=True, slots=True)
class WordTiming:
    """Where one spoken word sits in the synthesized audio.

    Sample positions are at 16 kHz, relative to the first sample of this `synthesize()` call;
    ``end_sample`` is exclusive.
    """

    text: str
    start_sample: int
    end_sample: int


@dataclass(frozen=True, slots=True)
class TtsChunk:
    """A piece of synthesized audio (int16, 16 kHz mono) and the words that start inside it."""

    audio: Pcm16
    words: tuple[WordTiming, ...] = ()


class Synthesizer(Protocol):
    """Streaming TTS. ``synthesize`` is a blocking generator run off the event loop."""

    name: str

    def synthesize(self, text: str) -> Generator[TtsChunk, None, None]:
        """Yield audio chunks as soon as the engine produces them.

        Word timings across all chunks of one call are in one coordinate system (samples
        since the call's first sample) and together cover every spoken word in order.
        """
        ...
