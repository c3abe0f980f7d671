"""earshot.vad: voice activity detection.

Backends turn 16 kHz int16 frames into a speech probability (`VoiceActivityDetector`); the pure
`earshot.vad.segmenter.VadSegmenter` turns probabilities into `SpeechStarted` / `SpeechEnded`
events. Backends import their wheel lazily, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from earshot.audio.frames import Pcm16
from earshot.vad.base import VoiceActivityDetector

VAD_NAMES = ("silero", "webrtc")
"""Names `make_vad` accepts."""


def make_vad(name: str, **kwargs: Any) -> VoiceActivityDetector:
    """Build a voice activity detector by name.

    Args:
        name: ``"silero"`` (`earshot.vad.silero.SileroVad`, the default backend) or ``"webrtc"``
            (`earshot.vad.webrtc.WebRtcVad`).
        **kwargs: the chosen backend's constructor arguments, e.g. ``aggressiveness=2`` for
            ``"webrtc"``.

    Raises:
        ValueError: ``name`` is not one of `VAD_NAMES`.
        ImportError: the backend's wheel is not installed (the message names it).
    """
    match name.strip().lower():
        case "silero":
            from earshot.vad.silero import SileroVad

            return SileroVad(**kwargs)
        case "webrtc":
            from earshot.vad.webrtc import WebRtcVad

            return WebRtcVad(**kwargs)
        case _:
            raise ValueError(f"unknown VAD {name!r}; choose one of {', '.join(VAD_NAMES)}")


def check_pcm16(pcm: object, *, what: str = "frame") -> Pcm16:
    """Return ``pcm`` if it is 1-D ``numpy.int16`` PCM, else raise a ValueError saying why.

    Args:
        pcm: the audio to check; expected int16, shape ``(num_samples,)``, 16 kHz mono.
        what: how to call it in the error message ("frame", "audio"...).

    Raises:
        ValueError: ``pcm`` is not a numpy array, not int16, or not 1-D.
    """
    if not isinstance(pcm, np.ndarray):
        raise ValueError(
            f"{what} must be a 1-D numpy.int16 array (16 kHz mono PCM), got {type(pcm).__name__}"
        )
    if pcm.dtype != np.int16:
        raise ValueError(
            f"{what} must be numpy.int16 PCM, got dtype {pcm.dtype}; convert float audio in "
            "[-1, 1] with earshot.audio.frames.to_int16"
        )
    if pcm.ndim != 1:
        raise ValueError(
            f"{what} must be 1-D (num_samples,) mono PCM, got shape {pcm.shape}; downmix or "
            "flatten it first"
        )
    return pcm


__all__ = ["VAD_NAMES", "VoiceActivityDetector", "check_pcm16", "make_vad"]
