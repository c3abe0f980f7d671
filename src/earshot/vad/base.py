"""The voice activity detector interface."""

from __future__ import annotations

from typing import Protocol

from earshot.audio.frames import Pcm16


class VoiceActivityDetector(Protocol):
    """Frame-wise speech probability.

    Implementations keep their own internal windowing (Silero needs 512-sample windows, WebRTC
    VAD 10/20/30 ms) and may return the probability of the latest complete window.
    """

    name: str

    def speech_probability(self, frame: Pcm16) -> float:
        """Probability in [0, 1] that ``frame`` (int16, 16 kHz mono, any length) holds speech."""
        ...

    def reset(self) -> None:
        """Forget all state (start of a new stream)."""
        ...
