"""The WebRTC VAD (GMM-based, from the WebRTC project) through the ``webrtcvad-wheels`` wheel.

Cheaper than Silero but much less selective: it calls most stationary noise speech (on the
bundled mains-hum recording it flags every window at every aggressiveness). Use it where CPU is
scarce and the input is clean, or as a fast gate in front of Silero.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16
from earshot.vad import check_pcm16

WINDOW_MS = 10
"""Decision window (ms). WebRTC VAD accepts 10, 20 or 30 ms; 10 ms divides every earshot frame."""

WINDOW_SAMPLES = SAMPLE_RATE_HZ * WINDOW_MS // 1000

DEFAULT_AGGRESSIVENESS = 3
"""Most aggressive non-speech filtering; RealtimeSTT's default ``webrtc_sensitivity`` too."""


class _WebRtcModel(Protocol):
    def is_speech(self, buf: bytes, sample_rate: int, length: int | None = None) -> bool: ...


class WebRtcVad:
    """WebRTC VAD as a speech "probability" for arbitrary-length int16 frames.

    The detector only answers yes/no per 10 ms window. Each call appends the frame to an internal
    buffer, classifies every complete 10 ms window, and returns the *fraction* of the windows
    completed by this call that were flagged speech (for a 20 ms frame: 0, 0.5 or 1). A call that
    completes no window returns the previous value (0.0 before the first window). The detector
    keeps its own hangover state between windows; `reset()` starts a fresh one.

    Args:
        aggressiveness: 0 (least aggressive about filtering out non-speech) to 3 (most).

    Raises:
        ValueError: ``aggressiveness`` is not 0, 1, 2 or 3.
        ImportError: ``webrtcvad-wheels`` is not installed.
    """

    name = "webrtc"

    def __init__(self, aggressiveness: int = DEFAULT_AGGRESSIVENESS) -> None:
        if aggressiveness not in (0, 1, 2, 3):
            raise ValueError(
                f"WebRTC VAD aggressiveness must be 0, 1, 2 or 3, got {aggressiveness!r}"
            )
        try:
            import webrtcvad
        except ImportError as exc:
            raise ImportError(
                "the WebRTC VAD backend needs the webrtcvad-wheels wheel: "
                "pip install webrtcvad-wheels"
            ) from exc
        self.aggressiveness = aggressiveness
        self._webrtcvad = webrtcvad
        self._model: _WebRtcModel = webrtcvad.Vad(aggressiveness)
        self._pending = np.zeros(0, dtype=np.int16)
        self._probability = 0.0

    def speech_probability(self, frame: Pcm16) -> float:
        """Fraction of the 10 ms windows completed by ``frame`` that WebRTC VAD flags as speech.

        Args:
            frame: int16, shape ``(num_samples,)``, 16 kHz mono; any length.

        Returns:
            A value in [0, 1]; the previous value if no window completed; 0.0 before the first.

        Raises:
            ValueError: ``frame`` is not a 1-D int16 numpy array.
        """
        check_pcm16(frame)
        pending = np.concatenate((self._pending, frame)) if self._pending.size else frame
        num_full = pending.size // WINDOW_SAMPLES
        if num_full:
            data = pending[: num_full * WINDOW_SAMPLES].tobytes()
            step = WINDOW_SAMPLES * 2
            num_speech = sum(
                self._model.is_speech(data[i : i + step], SAMPLE_RATE_HZ)
                for i in range(0, len(data), step)
            )
            self._probability = num_speech / num_full
        self._pending = pending[num_full * WINDOW_SAMPLES :].copy()
        return self._probability

    def reset(self) -> None:
        """Forget buffered samples, the last value and the detector's hangover state."""
        self._model = self._webrtcvad.Vad(self.aggressiveness)
        self._pending = np.zeros(0, dtype=np.int16)
        self._probability = 0.0
