"""earshot.tts: streaming text-to-speech backends behind the `Synthesizer` protocol."""

from __future__ import annotations

from typing import Any

from earshot.tts.base import Synthesizer, TtsChunk, WordTiming

BACKENDS = ("espeak",)
"""Names `make_tts` accepts."""


def make_tts(name: str = "espeak", **options: Any) -> Synthesizer:
    """Build a synthesizer by backend name; the backend's library is imported only here.

    Args:
        name: one of `BACKENDS`.
        **options: the backend's constructor arguments (for ``"espeak"``: ``voice``,
            ``rate_wpm``, ``sentence_pause``, ``busy_timeout_s``; see `EspeakSynthesizer`).

    Raises:
        ValueError: unknown backend name, or bad options.
        TypeError: an option the backend does not take.
        ImportError: the backend's library is missing (the message names the package).
    """
    if name == "espeak":
        from earshot.tts.espeak import EspeakSynthesizer

        return EspeakSynthesizer(**options)
    raise ValueError(f"unknown TTS backend {name!r}; choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Synthesizer", "TtsChunk", "WordTiming", "make_tts"]
