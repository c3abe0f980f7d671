"""PCM frame conventions used throughout earshot.

A *frame* is a fixed-duration block of 16 kHz mono PCM16 audio: a 1-D ``numpy.int16`` array of
``num_samples = sample_rate * frame_ms / 1000`` samples (320 for the 20 ms default).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

SAMPLE_RATE_HZ = 16_000
"""The pipeline's sample rate: every stage sees 16 kHz mono."""

DEFAULT_FRAME_MS = 20
ALLOWED_FRAME_MS = (10, 20, 40)

Pcm16 = npt.NDArray[np.int16]
"""1-D int16 PCM samples at `SAMPLE_RATE_HZ` unless a parameter says otherwise."""


def samples_per_frame(frame_ms: int, sample_rate_hz: int = SAMPLE_RATE_HZ) -> int:
    """Samples in one frame.

    Raises:
        ValueError: ``frame_ms`` is not one of `ALLOWED_FRAME_MS`.
    """
    if frame_ms not in ALLOWED_FRAME_MS:
        raise ValueError(
            f"frame size {frame_ms} ms is not supported; choose one of {ALLOWED_FRAME_MS} ms"
        )
    return sample_rate_hz * frame_ms // 1000


def samples_to_ms(num_samples: int | float, sample_rate_hz: int = SAMPLE_RATE_HZ) -> float:
    """Duration in ms of ``num_samples`` samples."""
    return float(num_samples) * 1000.0 / sample_rate_hz


def ms_to_samples(duration_ms: float, sample_rate_hz: int = SAMPLE_RATE_HZ) -> int:
    """Nearest whole number of samples in ``duration_ms`` milliseconds."""
    return round(duration_ms * sample_rate_hz / 1000.0)


def to_float32(pcm: Pcm16) -> npt.NDArray[np.float32]:
    """int16 PCM → float32 in [-1, 1)."""
    return (pcm.astype(np.float32) / 32768.0).astype(np.float32)


def to_int16(audio: npt.NDArray[np.floating]) -> Pcm16:
    """float audio in [-1, 1] → int16 PCM, clipped."""
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
