"""Prosodic cues at a pause: final pitch movement and energy decay of the last voiced audio.

Pitch is tracked with Praat's autocorrelation method (Boersma 1993) through
`praat-parselmouth` (Jadoul, Thompson & de Boer 2018), a numpy-only wheel; it is imported only
when cues are computed, and a missing install raises an ImportError naming the extra. Energy
is plain numpy.

Declarative turn ends usually carry a final pitch fall with energy decaying into the pause; a
level or rising end often means the speaker holds the turn (a continuation rise). The smart
end-pointer (`earshot.turns.smart`) turns these cues into a shorter or longer silence bound.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import numpy.typing as npt

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, ms_to_samples

PITCH_FLOOR_HZ = 75.0
"""Lowest f0 tracked: Praat's default pitch floor for speech."""

PITCH_CEILING_HZ = 500.0
"""Highest f0 tracked: covers adult and child speaking voices."""

PITCH_STEP_MS = 10.0
"""Hop of the pitch track."""

OCTAVE_ERROR_SEMITONES = 9.0
"""Voiced frames further than this from the median f0 of the tail are taken for octave errors
(halving/doubling is 12 semitones) and dropped."""

FINAL_PITCH_MS = 300.0
"""Final stretch of voicing whose pitch is compared with the voicing before it."""

ENERGY_WINDOW_MS = 200.0
"""Stretch at the very end of the tail over which the energy slope is fitted."""

ENERGY_FRAME_MS = 20.0
"""Frame of the RMS energy track."""

SILENCE_FLOOR_DB = -100.0
"""RMS level (dBFS) given to digital silence, so the log stays finite."""

MIN_PITCH_FRAMES = 3
"""Voiced frames each side of the comparison needs before a pitch change is reported."""


@dataclass(frozen=True, slots=True)
class AcousticCues:
    """Prosody of the end of a voiced stretch.

    Attributes:
        pitch_change_semitones: median f0 of the final `FINAL_PITCH_MS` of voicing minus the
            median f0 of the voicing before it, in semitones (negative = a fall); None when
            either side has fewer than `MIN_PITCH_FRAMES` voiced frames.
        final_f0_hz: median f0 of the final stretch (Hz); None when unvoiced.
        energy_slope_db_per_s: least-squares slope of the RMS level (dBFS) over the last
            `ENERGY_WINDOW_MS` (dB/s; negative = decaying); None when the tail is shorter than
            three energy frames.
        voiced_ms: voiced time found in the tail (ms).
    """

    pitch_change_semitones: float | None
    final_f0_hz: float | None
    energy_slope_db_per_s: float | None
    voiced_ms: float


def _parselmouth() -> ModuleType:
    try:
        return importlib.import_module("parselmouth")
    except ImportError as exc:
        raise ImportError(
            "acoustic end-pointing cues need praat-parselmouth: "
            "pip install praat-parselmouth (a dependency of earshot: reinstall earshot)"
        ) from exc


def require_acoustic_backend() -> None:
    """Import the pitch tracker now, so a missing install fails at start-up, not mid-call.

    Raises:
        ImportError: praat-parselmouth is not installed; the message names the extra.
    """
    _parselmouth()


def pitch_track_hz(
    pcm: Pcm16, sample_rate_hz: int = SAMPLE_RATE_HZ
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """f0 track of ``pcm`` with Praat's autocorrelation pitch tracker.

    Args:
        pcm: int16 mono audio at ``sample_rate_hz``, shape ``(num_samples,)``.
        sample_rate_hz: its sample rate.

    Returns:
        ``(times_s, f0_hz)``: frame centre times in seconds from the first sample, and f0 in Hz
        with 0.0 for unvoiced frames; both shape ``(num_frames,)``, every `PITCH_STEP_MS`.

    Raises:
        ImportError: praat-parselmouth is not installed.
    """
    pm = _parselmouth()
    sound = pm.Sound(pcm.astype(np.float64) / 32768.0, sampling_frequency=float(sample_rate_hz))
    pitch = sound.to_pitch(
        time_step=PITCH_STEP_MS / 1000.0,
        pitch_floor=PITCH_FLOOR_HZ,
        pitch_ceiling=PITCH_CEILING_HZ,
    )
    times_s = np.asarray(pitch.xs(), dtype=np.float64)
    f0_hz = np.asarray(pitch.selected_array["frequency"], dtype=np.float64)
    return times_s, f0_hz


def pitch_change_semitones(
    times_s: npt.NDArray[np.float64],
    f0_hz: npt.NDArray[np.float64],
    final_ms: float = FINAL_PITCH_MS,
) -> tuple[float | None, float | None, float]:
    """Final pitch movement of an f0 track.

    Frames are kept when voiced and within `OCTAVE_ERROR_SEMITONES` of the median voiced f0.
    The final stretch is the kept frames within ``final_ms`` of the last kept frame; it is
    compared with the kept frames before it.

    Args:
        times_s: frame times (s), shape ``(n,)``.
        f0_hz: f0 per frame (Hz, 0 = unvoiced), shape ``(n,)``.
        final_ms: length of the final stretch (ms).

    Returns:
        ``(change_semitones, final_f0_hz, voiced_ms)``; the first two are None when there is
        too little voicing (see `AcousticCues`).
    """
    voiced = f0_hz > 0
    voiced_ms = float(np.count_nonzero(voiced)) * PITCH_STEP_MS
    if np.count_nonzero(voiced) < 2 * MIN_PITCH_FRAMES:
        return None, None, voiced_ms
    t = times_s[voiced]
    semitones = 12.0 * np.log2(f0_hz[voiced] / np.median(f0_hz[voiced]))
    keep = np.abs(semitones) <= OCTAVE_ERROR_SEMITONES
    t, semitones, hz = t[keep], semitones[keep], f0_hz[voiced][keep]
    if len(t) == 0:
        return None, None, voiced_ms
    final = t > t[-1] - final_ms / 1000.0
    final_f0_hz = float(np.median(hz[final]))
    if np.count_nonzero(final) < MIN_PITCH_FRAMES or np.count_nonzero(~final) < MIN_PITCH_FRAMES:
        return None, final_f0_hz, voiced_ms
    change = float(np.median(semitones[final]) - np.median(semitones[~final]))
    return change, final_f0_hz, voiced_ms


def energy_slope_db_per_s(
    pcm: Pcm16,
    window_ms: float = ENERGY_WINDOW_MS,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
) -> float | None:
    """Slope of the RMS level over the last ``window_ms`` of ``pcm``.

    Args:
        pcm: int16 mono audio at ``sample_rate_hz``, shape ``(num_samples,)``.
        window_ms: length of the end stretch fitted (ms), cut into `ENERGY_FRAME_MS` frames.
        sample_rate_hz: its sample rate.

    Returns:
        Least-squares slope of the per-frame level in dBFS per second (negative = decaying),
        or None when fewer than three whole frames fit in ``pcm``.
    """
    frame = ms_to_samples(ENERGY_FRAME_MS, sample_rate_hz)
    num_frames = min(int(window_ms // ENERGY_FRAME_MS), len(pcm) // frame)
    if num_frames < 3:
        return None
    end = pcm[len(pcm) - num_frames * frame :].astype(np.float64) / 32768.0
    rms = np.sqrt(np.mean(end.reshape(num_frames, frame) ** 2, axis=1))
    level_db = np.maximum(20.0 * np.log10(np.maximum(rms, 1e-12)), SILENCE_FLOOR_DB)
    times_s = np.arange(num_frames) * (ENERGY_FRAME_MS / 1000.0)
    slope, _ = np.polyfit(times_s, level_db, 1)
    return float(slope)


def compute_cues(pcm: Pcm16, sample_rate_hz: int = SAMPLE_RATE_HZ) -> AcousticCues:
    """Pitch and energy cues at the end of the last voiced stretch before a pause.

    Args:
        pcm: int16 mono audio at ``sample_rate_hz`` ending where the pause starts, shape
            ``(num_samples,)``; about 1 s is enough (the turn detector's tail audio).
        sample_rate_hz: its sample rate.

    Raises:
        ImportError: praat-parselmouth is not installed; the message names the extra.
        ValueError: ``pcm`` is not a 1-D int16 array.
    """
    if pcm.ndim != 1 or pcm.dtype != np.int16:
        raise ValueError(
            f"tail audio must be 1-D int16 PCM, got dtype {pcm.dtype} with shape {pcm.shape}"
        )
    slope = energy_slope_db_per_s(pcm, sample_rate_hz=sample_rate_hz)
    # Praat's tracker needs three periods of the pitch floor in its analysis window.
    if len(pcm) < ms_to_samples(3000.0 / PITCH_FLOOR_HZ + PITCH_STEP_MS, sample_rate_hz):
        return AcousticCues(None, None, slope, 0.0)
    times_s, f0_hz = pitch_track_hz(pcm, sample_rate_hz)
    change, final_f0_hz, voiced_ms = pitch_change_semitones(times_s, f0_hz)
    return AcousticCues(change, final_f0_hz, slope, voiced_ms)
