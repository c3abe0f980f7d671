"""A simulated acoustic echo path: the agent's own playout reaching the microphone.

`EchoPath` is a room response (loudspeaker → room → microphone) built as a deterministic impulse
response and applied as a streaming FIR filter, frame by frame. `MicMixer` builds what the
microphone hears: the user's speech + the echo of the agent's output + optional looped background
noise, clipped to int16.

The impulse response is a direct path (one tap at ``delay_ms`` with ``gain_db``) followed by a
seeded Gaussian-noise tail whose amplitude decays exponentially to −60 dB after ``decay_ms``
(an RT60-like reverberation time), with the tail's energy set by ``direct_to_reverberant_db``.
The defaults (40 ms, −6 dB, 150 ms RT60, DRR +6 dB) are assumed values for a laptop or
speakerphone in a small furnished room; they are not taken from a measurement.
"""

from __future__ import annotations

import math
import os

import numpy as np
import numpy.typing as npt

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, ms_to_samples
from earshot.audio.io import read_audio

_DECAY_60_DB = math.log(1000.0)
"""Natural-log amplitude drop for −60 dB (amplitude ratio 1/1000)."""

_INT16_MIN = -32768
_INT16_MAX = 32767


def _check_pcm16(frame: npt.NDArray[np.generic], name: str) -> None:
    if frame.dtype != np.int16 or frame.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D int16 array, got dtype={frame.dtype} shape={frame.shape}; "
            "convert float audio with earshot.audio.frames.to_int16"
        )


def _round_clip_int16(audio: npt.NDArray[np.float64]) -> Pcm16:
    return np.clip(np.round(audio), _INT16_MIN, _INT16_MAX).astype(np.int16)


def room_impulse_response(
    delay_ms: float,
    gain_db: float,
    decay_ms: float,
    direct_to_reverberant_db: float,
    sample_rate_hz: int,
    seed: int,
) -> npt.NDArray[np.float64]:
    """Build the echo path's impulse response (linear amplitude per sample).

    Tap ``round(delay_ms · sample_rate_hz / 1000)`` holds the direct path, ``10^(gain_db/20)``.
    The next ``round(decay_ms · sample_rate_hz / 1000)`` taps hold a Gaussian tail (seeded) under
    the envelope ``exp(−ln(1000) · n / N)``, i.e. −60 dB at ``n = N`` (the RT60 definition, ISO
    3382-1), scaled so that direct energy / tail energy = ``direct_to_reverberant_db``.

    Args:
        delay_ms: Direct-path delay in ms (≥ 0).
        gain_db: Direct-path gain in dB (amplitude, 20·log10).
        decay_ms: Time for the tail to decay by 60 dB, in ms (≥ 0; 0 gives no tail).
        direct_to_reverberant_db: Direct-path energy over tail energy, in dB.
        sample_rate_hz: Sample rate of the audio the response will filter.
        seed: Seed of the tail's noise; the same seed gives the same response.

    Returns:
        float64 array, shape ``(delay_samples + 1 + tail_samples,)``.

    Raises:
        ValueError: a negative delay or decay, or a non-positive sample rate.
    """
    if delay_ms < 0 or decay_ms < 0:
        raise ValueError(
            f"delay_ms={delay_ms} and decay_ms={decay_ms} must be ≥ 0; pass a physical room"
        )
    if sample_rate_hz <= 0:
        raise ValueError(f"sample_rate_hz={sample_rate_hz} must be positive, e.g. 16000")
    delay_samples = ms_to_samples(delay_ms, sample_rate_hz)
    tail_samples = ms_to_samples(decay_ms, sample_rate_hz)
    direct_gain = 10.0 ** (gain_db / 20.0)
    response = np.zeros(delay_samples + 1 + tail_samples, dtype=np.float64)
    response[delay_samples] = direct_gain
    if tail_samples > 0:
        rng = np.random.default_rng(seed)
        n = np.arange(1, tail_samples + 1, dtype=np.float64)
        tail = rng.standard_normal(tail_samples) * np.exp(-_DECAY_60_DB * n / tail_samples)
        tail_energy = direct_gain**2 / 10.0 ** (direct_to_reverberant_db / 10.0)
        tail *= math.sqrt(tail_energy / float(np.sum(tail**2)))
        response[delay_samples + 1 :] = tail
    return response


class EchoPath:
    """Streaming room response: far-end (agent playout) frames in, echo frames out.

    A stateful FIR filter: each call convolves the frame with the impulse response and carries
    the part that spills past the frame into the next call (overlap-add), so feeding a signal in
    frames of any size gives the same samples as one convolution of the whole signal.
    """

    def __init__(
        self,
        delay_ms: float = 40.0,
        decay_ms: float = 150.0,
        gain_db: float = -6.0,
        direct_to_reverberant_db: float = 6.0,
        sample_rate_hz: int = SAMPLE_RATE_HZ,
        seed: int = 0,
    ) -> None:
        """Build the room response.

        Args:
            delay_ms: Loudspeaker-to-microphone delay of the direct path, in ms.
            decay_ms: RT60-like decay time of the reverberant tail, in ms (0 = no tail).
            gain_db: Direct-path gain in dB (−6 dB halves the amplitude).
            direct_to_reverberant_db: Direct-path energy over tail energy, in dB.
            sample_rate_hz: Sample rate of the frames, in Hz.
            seed: Seed of the tail's noise.

        Raises:
            ValueError: see `room_impulse_response`.
        """
        self.sample_rate_hz = sample_rate_hz
        self.delay_ms = delay_ms
        self.gain_db = gain_db
        self.decay_ms = decay_ms
        self._response = room_impulse_response(
            delay_ms, gain_db, decay_ms, direct_to_reverberant_db, sample_rate_hz, seed
        )
        self._overlap = np.zeros(len(self._response) - 1, dtype=np.float64)

    @property
    def impulse_response(self) -> npt.NDArray[np.float64]:
        """A copy of the impulse response, float64, one tap per sample."""
        return self._response.copy()

    def process(self, far_end_frame: Pcm16) -> Pcm16:
        """Echo of one far-end frame as it reaches the microphone.

        Args:
            far_end_frame: int16, shape ``(num_samples,)``, at ``sample_rate_hz`` — what the
                loudspeaker plays during this frame (zeros when the agent is silent).

        Returns:
            int16, same shape: the echo picked up during this frame, rounded and clipped.

        Raises:
            ValueError: the frame is not a 1-D int16 array.
        """
        _check_pcm16(far_end_frame, "far_end_frame")
        num_samples = len(far_end_frame)
        full = np.convolve(far_end_frame.astype(np.float64), self._response)
        full[: len(self._overlap)] += self._overlap
        self._overlap = full[num_samples:].copy()
        return _round_clip_int16(full[:num_samples])

    def reset(self) -> None:
        """Silence the room: drop the reverberation still in flight."""
        self._overlap[:] = 0.0


class NoiseLoop:
    """Background noise played in a loop at a fixed RMS level."""

    def __init__(self, noise: Pcm16, level_dbfs: float) -> None:
        """Scale ``noise`` to ``level_dbfs`` and loop it.

        Args:
            noise: int16, shape ``(num_samples,)``, at the mixer's sample rate; not all zeros.
            level_dbfs: RMS level in dB relative to int16 full scale (20·log10(rms / 32768)).

        Raises:
            ValueError: ``noise`` is not 1-D int16, is empty or is silent.
        """
        _check_pcm16(noise, "noise")
        rms = math.sqrt(float(np.mean(noise.astype(np.float64) ** 2))) if len(noise) else 0.0
        if rms == 0.0:
            raise ValueError("the noise recording is empty or silent; pick a recording with sound")
        target_rms = 32768.0 * 10.0 ** (level_dbfs / 20.0)
        self._noise = noise.astype(np.float64) * (target_rms / rms)
        self._position = 0

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        level_dbfs: float,
        sample_rate_hz: int = SAMPLE_RATE_HZ,
    ) -> NoiseLoop:
        """Load a noise recording (any format soundfile reads; resampled to ``sample_rate_hz``).

        Raises:
            earshot.audio.io.AudioFileError: the file cannot be read.
            ValueError: the recording is silent.
        """
        return cls(read_audio(path, sample_rate_hz), level_dbfs)

    def next(self, num_samples: int) -> npt.NDArray[np.float64]:
        """The next ``num_samples`` of looped noise, float64 in int16 units."""
        idx = (self._position + np.arange(num_samples)) % len(self._noise)
        self._position = (self._position + num_samples) % len(self._noise)
        return np.take(self._noise, idx)


class MicMixer:
    """What the microphone hears: user speech + echo of the agent + background noise."""

    def __init__(self, echo_path: EchoPath | None = None, noise: NoiseLoop | None = None) -> None:
        """Compose the microphone signal.

        Args:
            echo_path: The room the agent's output travels through; None = no echo.
            noise: Looped background noise; None = no noise.
        """
        self.echo_path = echo_path
        self.noise = noise

    def process(self, user_frame: Pcm16, far_end_frame: Pcm16) -> Pcm16:
        """One microphone frame.

        Args:
            user_frame: int16, shape ``(num_samples,)``: the user's speech at the microphone.
            far_end_frame: int16, same shape: what the agent's loudspeaker plays in this frame
                (zeros when silent).

        Returns:
            int16, same shape: user + echo + noise, summed in float and clipped to int16.

        Raises:
            ValueError: a frame is not 1-D int16, or the two lengths differ.
        """
        _check_pcm16(user_frame, "user_frame")
        _check_pcm16(far_end_frame, "far_end_frame")
        if len(user_frame) != len(far_end_frame):
            raise ValueError(
                f"user_frame has {len(user_frame)} samples but far_end_frame has "
                f"{len(far_end_frame)}; pass frames of the same duration"
            )
        mic = user_frame.astype(np.float64)
        if self.echo_path is not None:
            mic += self.echo_path.process(far_end_frame)
        if self.noise is not None:
            mic += self.noise.next(len(user_frame))
        return _round_clip_int16(mic)
