"""Synthetic turns for the end-pointing evaluation: real speech, inserted pauses, mixed noise.

A synthetic turn is one recording with silent pauses inserted inside it (where an end-pointer
must *not* end the turn) and known ground truth: the sample where the turn's speech really ends.
Mixing noise at a chosen SNR keeps the ground truth. Everything here is pure: a seeded
`numpy.random.Generator` is the only source of randomness.

Definitions the harness uses:
    endpointing delay = end-of-turn decision − `SyntheticTurn.turn_end_sample` (as ms);
    false cut-off = an end-of-turn decision before `SyntheticTurn.turn_end_sample`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, ms_to_samples, samples_to_ms

ACTIVE_FRAME_MS = 20.0
"""Frame over which speech activity is judged for the SNR."""

ACTIVE_RANGE_DB = 40.0
"""A frame is active speech when its level is within this many dB of the loudest frame: a
simplified active speech level (ITU-T P.56 measures it with an adaptive threshold instead)."""


@dataclass(frozen=True, slots=True)
class InsertedPause:
    """A silence inserted into a turn, in samples of the built track (16 kHz)."""

    start_sample: int
    num_samples: int

    @property
    def end_sample(self) -> int:
        return self.start_sample + self.num_samples

    @property
    def duration_ms(self) -> float:
        return samples_to_ms(self.num_samples)


@dataclass(frozen=True, slots=True)
class SyntheticTurn:
    """One evaluation turn and its ground truth.

    Attributes:
        pcm: int16 16 kHz mono track: lead silence, the speech with its pauses, tail silence.
        turn_end_sample: ground truth: end of the turn's last speech sample in ``pcm``.
        pauses: the inserted pauses, in order; an end of turn inside one is a false cut-off.
        source: name of the source recording.
        snr_db: speech-to-noise ratio of mixed noise (dB), None when clean.
        noise: name of the mixed noise recording ('' when clean).
    """

    pcm: Pcm16
    turn_end_sample: int
    pauses: tuple[InsertedPause, ...]
    source: str = ""
    snr_db: float | None = None
    noise: str = ""

    @property
    def turn_end_ms(self) -> float:
        """Ground-truth end of the turn's speech (ms from the start of ``pcm``)."""
        return samples_to_ms(self.turn_end_sample)

    def pause_at(self, sample: int) -> InsertedPause | None:
        """The inserted pause holding ``sample``, if any."""
        for pause in self.pauses:
            if pause.start_sample <= sample < pause.end_sample:
                return pause
        return None


def insert_pause(pcm: Pcm16, at_sample: int, pause_ms: float) -> Pcm16:
    """``pcm`` with ``pause_ms`` of digital silence inserted before sample ``at_sample``.

    Args:
        pcm: int16 16 kHz mono, shape ``(num_samples,)``.
        at_sample: insertion point, ``0 <= at_sample <= len(pcm)``.
        pause_ms: silence length (ms), >= 0.

    Returns:
        A new int16 array, ``len(pcm) + ms_to_samples(pause_ms)`` long.

    Raises:
        ValueError: ``at_sample`` outside the audio or a negative pause.
    """
    if not 0 <= at_sample <= len(pcm):
        raise ValueError(f"pause position {at_sample} is outside the audio (0..{len(pcm)})")
    if pause_ms < 0:
        raise ValueError(f"pause length must be >= 0 ms, got {pause_ms}")
    silence = np.zeros(ms_to_samples(pause_ms), dtype=np.int16)
    return np.concatenate([pcm[:at_sample], silence, pcm[at_sample:]]).astype(np.int16)


def build_turn(
    speech: Pcm16,
    pauses: Sequence[tuple[int, float]],
    speech_end_sample: int | None = None,
    lead_ms: float = 500.0,
    tail_ms: float = 1500.0,
    source: str = "",
) -> SyntheticTurn:
    """A turn from one recording with pauses inserted at given points.

    Args:
        speech: int16 16 kHz mono recording of one turn.
        pauses: ``(at_sample, pause_ms)`` pairs, positions in ``speech`` samples, strictly
            inside the speech (``0 < at_sample < speech_end_sample``); best at word boundaries.
        speech_end_sample: where the speech ends in ``speech`` (trailing silence after it is
            kept); default ``len(speech)``.
        lead_ms: silence before the speech (ms).
        tail_ms: silence after the recording, so an end-pointer has time to decide (ms).
        source: name for reports.

    Raises:
        ValueError: a pause outside the speech, two pauses at one point, or a bad end.
    """
    end = len(speech) if speech_end_sample is None else speech_end_sample
    if not 0 < end <= len(speech):
        raise ValueError(f"speech_end_sample {end} must lie in 1..{len(speech)}")
    points = sorted(pauses)
    positions = [at for at, _ in points]
    if len(set(positions)) != len(positions):
        raise ValueError("two pauses at the same point; merge them into one")
    for at, _ in points:
        if not 0 < at < end:
            raise ValueError(f"pause at sample {at} is not inside the speech (1..{end - 1})")
    lead = ms_to_samples(lead_ms)
    out = speech
    placed: list[InsertedPause] = []
    shift = 0
    for at, pause_ms in points:
        out = insert_pause(out, at + shift, pause_ms)
        n = ms_to_samples(pause_ms)
        placed.append(InsertedPause(lead + at + shift, n))
        shift += n
    pcm = np.concatenate(
        [np.zeros(lead, np.int16), out, np.zeros(ms_to_samples(tail_ms), np.int16)]
    ).astype(np.int16)
    return SyntheticTurn(pcm, lead + end + shift, tuple(placed), source)


def active_mask(pcm: Pcm16, sample_rate_hz: int = SAMPLE_RATE_HZ) -> npt.NDArray[np.bool_]:
    """Samples of active speech: in a frame within `ACTIVE_RANGE_DB` of the loudest frame.

    Args:
        pcm: int16 mono, shape ``(num_samples,)``.

    Returns:
        bool, shape ``(num_samples,)``; all False for digital silence.
    """
    frame = ms_to_samples(ACTIVE_FRAME_MS, sample_rate_hz)
    num_frames = -(-len(pcm) // frame)
    padded = np.zeros(num_frames * frame, dtype=np.float64)
    padded[: len(pcm)] = pcm.astype(np.float64)
    power = np.mean(padded.reshape(num_frames, frame) ** 2, axis=1)
    if num_frames == 0 or power.max() == 0:
        return np.zeros(len(pcm), dtype=np.bool_)
    active = power >= power.max() * 10 ** (-ACTIVE_RANGE_DB / 10)
    return np.repeat(active, frame)[: len(pcm)]


def mix_at_snr(
    speech: Pcm16,
    noise: Pcm16,
    snr_db: float,
    rng: np.random.Generator,
    speech_active: npt.NDArray[np.bool_] | None = None,
) -> Pcm16:
    """Add noise to speech at a speech-to-noise ratio measured over active speech.

    The noise is looped (or cropped) to the speech's length from a random start drawn from
    ``rng``; its gain makes mean active-speech power / mean noise power = ``snr_db``. Pauses
    and silences therefore hold noise at the same level as the rest of the track.

    Args:
        speech: int16 16 kHz mono, shape ``(num_samples,)``.
        noise: int16 16 kHz mono, any length > 0, not all zero.
        snr_db: target SNR (dB).
        rng: the source of the random noise offset.
        speech_active: bool mask of the speech samples the speech power is measured over;
            default `active_mask`.

    Returns:
        int16 mix, same length as ``speech`` (clipped at full scale).

    Raises:
        ValueError: silent or empty noise, speech with no active samples, or a mask of the
            wrong shape.
    """
    if len(noise) == 0 or not np.any(noise):
        raise ValueError("the noise recording is empty or silent; pick another noise file")
    mask = active_mask(speech) if speech_active is None else speech_active
    if mask.shape != speech.shape:
        raise ValueError(f"speech_active has shape {mask.shape}, the speech {speech.shape}")
    if not np.any(mask):
        raise ValueError("the speech has no active samples; an SNR cannot be set")
    start = int(rng.integers(len(noise)))
    reps = -(-(start + len(speech)) // len(noise))
    bed = np.tile(noise.astype(np.float64), reps)[start : start + len(speech)]
    s = speech.astype(np.float64)
    speech_power = float(np.mean(s[mask] ** 2))
    noise_power = float(np.mean(bed**2))
    if noise_power == 0:
        raise ValueError("the noise excerpt drawn is silent; pick a noise file without gaps")
    gain = float(np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10))))
    mixed: Pcm16 = np.clip(np.round(s + gain * bed), -32768, 32767).astype(np.int16)
    return mixed


def with_noise(
    turn: SyntheticTurn,
    noise: Pcm16,
    snr_db: float,
    rng: np.random.Generator,
    noise_name: str = "",
) -> SyntheticTurn:
    """The same turn with noise mixed in at ``snr_db`` (ground truth unchanged).

    Raises:
        ValueError: as `mix_at_snr`.
    """
    mixed = mix_at_snr(turn.pcm, noise, snr_db, rng)
    return SyntheticTurn(mixed, turn.turn_end_sample, turn.pauses, turn.source, snr_db, noise_name)
