"""Acoustic echo cancellation: remove the agent's own voice from the microphone signal.

`EchoCanceller` wraps WebRTC's AEC3 through the ``aec-audio-processing`` wheel (a SWIG binding of
the WebRTC audio processing module). The agent's playout is the far-end (reverse) reference; the
microphone is the near-end (capture) stream. Both are fed in 10 ms blocks, the only size the
library accepts; frames of any multiple of 10 ms are split here.

Noise suppression and automatic gain control are OFF (the wheel turns both on by default) so that
downstream VAD sees the user's speech unaltered apart from AEC3's fixed high-pass filter.

`NullEchoCanceller` passes the microphone through unchanged, for the "AEC off" configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16

if TYPE_CHECKING:
    from aec_audio_processing import AudioProcessor

AEC_SAMPLE_RATES_HZ = (8_000, 16_000, 32_000, 48_000)
"""Rates the WebRTC audio processing module runs AEC3 at natively."""

AEC_BLOCK_MS = 10
"""The library processes exactly 10 ms per call."""

AEC3_OUTPUT_DELAY_SAMPLES = {8_000: 88, 16_000: 128, 32_000: 260, 48_000: 430}
"""How far the AEC3 output lags its input, in samples, by sample rate (16 kHz: 8 ms).

Measured here by passing a click through aec-audio-processing 1.0.1 with a silent far end; the
delay is constant, independent of where the click falls in a 10 ms block. The session adds it to
the capture-path latency.
"""


class AcousticEchoCanceller(Protocol):
    """Removes the echo of the far-end signal from the near-end microphone signal."""

    name: str
    output_delay_samples: int
    """How far the output lags the near-end input, in samples."""

    def process(self, near_end_frame: Pcm16, far_end_frame: Pcm16) -> Pcm16:
        """Echo-cancelled near-end frame (int16, same shape as the input)."""
        ...

    def reset(self) -> None:
        """Forget the learned echo path (start of a new stream)."""
        ...


def _check_frames(near_end_frame: Pcm16, far_end_frame: Pcm16, block_samples: int) -> None:
    for name, frame in (("near_end_frame", near_end_frame), ("far_end_frame", far_end_frame)):
        if frame.dtype != np.int16 or frame.ndim != 1:
            raise ValueError(
                f"{name} must be a 1-D int16 array, got dtype={frame.dtype} shape={frame.shape}; "
                "convert float audio with earshot.audio.frames.to_int16"
            )
    if len(near_end_frame) != len(far_end_frame):
        raise ValueError(
            f"near_end_frame has {len(near_end_frame)} samples but far_end_frame has "
            f"{len(far_end_frame)}; pass the far-end audio played during the same frame "
            "(zeros when the agent is silent)"
        )
    if len(near_end_frame) % block_samples != 0:
        raise ValueError(
            f"frame of {len(near_end_frame)} samples is not a multiple of {AEC_BLOCK_MS} ms "
            f"({block_samples} samples); use 10, 20 or 40 ms frames"
        )


class EchoCanceller:
    """WebRTC AEC3 (via aec-audio-processing), fed frame by frame.

    Stateful and synchronous: one instance per microphone stream. Each call first gives AEC3 the
    far-end block, then the near-end block heard while it played, 10 ms at a time.
    """

    name = "webrtc-aec3"

    def __init__(
        self,
        sample_rate_hz: int = SAMPLE_RATE_HZ,
        stream_delay_ms: int = 0,
        noise_suppression: bool = False,
    ) -> None:
        """Create the canceller.

        Args:
            sample_rate_hz: Sample rate of both streams, one of `AEC_SAMPLE_RATES_HZ`.
            stream_delay_ms: WebRTC's stream delay: ms between the far-end block being passed
                in and the near-end block holding its echo being passed in, *excluding* the
                acoustic path (AEC3 finds that itself). 0 when ``process`` receives the far-end
                frame that played while the near-end frame was captured; larger when the
                reference is taken before a playout buffer (WebRTC
                ``AudioProcessing::set_stream_delay_ms``, which must be called while AEC is
                on). Measured here on the bundled JFK recording through the default `EchoPath`:
                ERLE after a 1 s skip is 34 dB with 0 passed and 15 dB with no delay passed.
            noise_suppression: Turn on WebRTC's noise suppressor (level High). Off by default
                so the VAD sees the near-end speech without NS artefacts.

        Raises:
            ValueError: an unsupported sample rate or a negative delay.
            ImportError: aec-audio-processing is not installed.
        """
        if sample_rate_hz not in AEC_SAMPLE_RATES_HZ:
            raise ValueError(
                f"sample_rate_hz={sample_rate_hz} is not supported by WebRTC AEC3; resample to "
                f"one of {AEC_SAMPLE_RATES_HZ} Hz"
            )
        if stream_delay_ms < 0:
            raise ValueError(f"stream_delay_ms={stream_delay_ms} must be ≥ 0 ms")
        self.sample_rate_hz = sample_rate_hz
        self.stream_delay_ms = stream_delay_ms
        self.noise_suppression = noise_suppression
        self.output_delay_samples = AEC3_OUTPUT_DELAY_SAMPLES[sample_rate_hz]
        self._block_samples = sample_rate_hz * AEC_BLOCK_MS // 1000
        self._processor = self._new_processor()

    def _new_processor(self) -> AudioProcessor:
        try:
            from aec_audio_processing import AudioProcessor
        except (ImportError, OSError) as exc:  # OSError: its bundled libwebrtc failed to load
            raise ImportError(
                "EchoCanceller needs the WebRTC AEC3 binding: `pip install aec-audio-processing` "
                f"(or use NullEchoCanceller / create_echo_canceller(enabled=False)); {exc}"
            ) from exc
        processor = AudioProcessor(
            enable_aec=True,
            enable_ns=self.noise_suppression,
            enable_agc=False,
            enable_vad=False,
        )
        processor.set_stream_format(self.sample_rate_hz, 1)
        processor.set_reverse_stream_format(self.sample_rate_hz, 1)
        return processor

    def process(self, near_end_frame: Pcm16, far_end_frame: Pcm16) -> Pcm16:
        """Cancel the far end's echo from one near-end frame.

        Args:
            near_end_frame: int16, shape ``(num_samples,)``, microphone audio at
                ``sample_rate_hz``; ``num_samples`` a multiple of 10 ms.
            far_end_frame: int16, same shape: the agent audio played during this frame
                (zeros when silent — keep feeding it so AEC3's delay estimate holds).

        Returns:
            int16, same shape: the near end with the echo removed, delayed by
            ``output_delay_samples``.

        Raises:
            ValueError: wrong dtype, mismatched lengths, or not a multiple of 10 ms.
        """
        block = self._block_samples
        _check_frames(near_end_frame, far_end_frame, block)
        near = np.ascontiguousarray(near_end_frame)
        far = np.ascontiguousarray(far_end_frame)
        out = np.empty_like(near)
        for start in range(0, len(near), block):
            stop = start + block
            self._processor.process_reverse_stream(far[start:stop].tobytes())
            # WebRTC requires the delay with every capture block while AEC is enabled.
            self._processor.set_stream_delay(self.stream_delay_ms)
            processed = self._processor.process_stream(near[start:stop].tobytes())
            out[start:stop] = np.frombuffer(processed, dtype=np.int16)
        return out

    def reset(self) -> None:
        """Start over with a fresh AEC3 (the learned echo path is lost)."""
        self._processor = self._new_processor()


class NullEchoCanceller:
    """No echo cancellation: returns the near end unchanged (the "AEC off" configuration)."""

    name = "none"
    output_delay_samples = 0

    def __init__(self, sample_rate_hz: int = SAMPLE_RATE_HZ) -> None:
        """Create the pass-through.

        Args:
            sample_rate_hz: Sample rate of both streams (only used to check frame sizes).
        """
        self.sample_rate_hz = sample_rate_hz
        self._block_samples = sample_rate_hz * AEC_BLOCK_MS // 1000

    def process(self, near_end_frame: Pcm16, far_end_frame: Pcm16) -> Pcm16:
        """Return a copy of ``near_end_frame``; the same checks as `EchoCanceller.process`.

        Raises:
            ValueError: wrong dtype, mismatched lengths, or not a multiple of 10 ms.
        """
        _check_frames(near_end_frame, far_end_frame, self._block_samples)
        return near_end_frame.copy()

    def reset(self) -> None:
        """Nothing to forget."""


def create_echo_canceller(
    enabled: bool,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    stream_delay_ms: int = 0,
) -> AcousticEchoCanceller:
    """`EchoCanceller` when ``enabled``, else `NullEchoCanceller`.

    Raises:
        ValueError: see `EchoCanceller`.
        ImportError: ``enabled`` and aec-audio-processing is not installed.
    """
    if enabled:
        return EchoCanceller(sample_rate_hz=sample_rate_hz, stream_delay_ms=stream_delay_ms)
    return NullEchoCanceller(sample_rate_hz=sample_rate_hz)
