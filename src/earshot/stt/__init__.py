"""earshot.stt: streaming speech-to-text.

Backends implement `StreamingRecognizer` and import their engine lazily.
"""

from __future__ import annotations

from typing import Any

from earshot.stt.base import StreamingRecognizer, Transcript, WordSegment

STT_NAMES = ("pocketsphinx",)
"""Names `make_stt` accepts."""


def make_stt(name: str = "pocketsphinx", **kwargs: Any) -> StreamingRecognizer:
    """Build a streaming recognizer by name.

    Args:
        name: ``"pocketsphinx"`` (`earshot.stt.pocketsphinx.PocketsphinxRecognizer`, offline).
        **kwargs: the backend's constructor arguments, e.g. ``decoder_options={...}``.

    Raises:
        ValueError: ``name`` is not one of `STT_NAMES`.
        ImportError: the backend's package is not installed (the message names it).
    """
    match name.strip().lower():
        case "pocketsphinx":
            from earshot.stt.pocketsphinx import PocketsphinxRecognizer

            return PocketsphinxRecognizer(**kwargs)
        case _:
            raise ValueError(f"unknown STT backend {name!r}; choose one of {', '.join(STT_NAMES)}")


__all__ = ["STT_NAMES", "StreamingRecognizer", "Transcript", "WordSegment", "make_stt"]
