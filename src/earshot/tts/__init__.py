"""earshot.tts: streaming text-to-speech backends behind the `Synthesizer` protocol."""

from __future__ import annotations

from typing import Any

from earshot.tts.base import Synthesizer, TtsChunk, WordTiming

BACKENDS = ("espeak", "piper")
"""Names `make_tts` accepts."""


def make_tts(name: str = "espeak", **options: Any) -> Synthesizer:
    """Build a synthesizer by backend name; the backend's library is imported only here.

    Args:
        name: one of `BACKENDS`.
        **options: the backend's constructor arguments (for ``"espeak"``: ``voice``,
            ``rate_wpm``, ``sentence_pause``, ``busy_timeout_s``; see `EspeakSynthesizer`;
            for ``"piper"``: ``voice_path``, ``length_scale``...; see `PiperSynthesizer`).

    Raises:
        ValueError: unknown backend name, or bad options.
        TypeError: an option the backend does not take.
        ImportError: the backend's library is missing (the message names the package).
    """
    if name == "espeak":
        from earshot.tts.espeak import EspeakSynthesizer

        return EspeakSynthesizer(**options)
    if name == "piper":
        from earshot.tts.piper import PiperSynthesizer

        return PiperSynthesizer(**options)
    raise ValueError(f"unknown TTS backend {name!r}; choose one of {', '.join(BACKENDS)}")


def describe_tts(tts: Synthesizer) -> str:
    """The backend and voice, e.g. ``piper, en_US-joe-medium``."""
    voice = getattr(tts, "voice_name", None) or getattr(tts, "voice", None)
    return f"{tts.name}, {voice}" if isinstance(voice, str) and voice else tts.name


__all__ = ["BACKENDS", "Synthesizer", "TtsChunk", "WordTiming", "describe_tts", "make_tts"]
