"""Reading and writing WAV files (soundfile) and resampling (soxr)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, to_int16
from earshot.outputs import atomic_write, write_text


class AudioFileError(ValueError):
    """An input audio file cannot be used; the message says why and what to do."""


def resample(audio: npt.NDArray[np.float32], from_hz: int, to_hz: int) -> npt.NDArray[np.float32]:
    """Resample mono float32 audio with soxr (high quality). Returns float32, 1-D."""
    if from_hz == to_hz:
        return audio.astype(np.float32, copy=False)
    return np.asarray(soxr.resample(audio, from_hz, to_hz), dtype=np.float32)


def check_finite(
    samples: npt.NDArray[np.floating[Any]], sample_rate_hz: int, source: str | os.PathLike[str]
) -> None:
    """Refuse audio holding NaN or infinite samples (a corrupt float file).

    Converting such samples to PCM16 would give full-scale clicks and a VAD that sees nothing,
    so the file is rejected instead of being "fixed" silently. Streamed readers call this on
    every block they read.

    Args:
        samples: float audio, shape ``(num_samples,)`` or ``(num_samples, channels)``.
        sample_rate_hz: its rate, to give the position of the first bad sample in seconds.
        source: the file (named in the message).

    Raises:
        AudioFileError: naming the file, how many samples are bad and where the first one is.
    """
    bad = ~np.isfinite(samples)
    if not bad.any():
        return
    rows = np.flatnonzero(bad.any(axis=1) if bad.ndim == 2 else bad)
    first_s = float(rows[0]) / float(sample_rate_hz)
    raise AudioFileError(
        f"{source}: {int(bad.sum())} samples are NaN or infinite (the first at {first_s:.3f} s); "
        "the file is corrupt: re-export the recording as 16-bit PCM WAV"
    )


_FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
_SCAN_BLOCK = 1 << 16


def check_file_finite(path: str | os.PathLike[str]) -> None:
    """Refuse a float audio file holding NaN or infinite samples, before it is streamed.

    Only float files (WAV ``FLOAT``/``DOUBLE`` subtypes) can hold such samples; others return
    at once. A float file is scanned block by block (memory stays bounded), so the error comes
    at start-up and names every bad sample, not mid-call.

    Raises:
        AudioFileError: see `check_finite`; a file soundfile cannot open is left to the reader.
    """
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return
    if info.subtype not in _FLOAT_SUBTYPES:
        return
    bad = 0
    first_row: int | None = None
    row = 0
    for block in sf.blocks(str(path), blocksize=_SCAN_BLOCK, dtype="float32", always_2d=True):
        rows = np.flatnonzero(~np.isfinite(block).all(axis=1))
        if rows.size:
            bad += int((~np.isfinite(block)).sum())
            first_row = row + int(rows[0]) if first_row is None else first_row
        row += len(block)
    if first_row is not None:
        first_s = first_row / float(info.samplerate)
        raise AudioFileError(
            f"{path}: {bad} samples are NaN or infinite (the first at {first_s:.3f} s); "
            "the file is corrupt: re-export the recording as 16-bit PCM WAV"
        )


def read_audio(path: str | os.PathLike[str], sample_rate_hz: int = SAMPLE_RATE_HZ) -> Pcm16:
    """Read any audio file soundfile can decode as mono PCM16 at ``sample_rate_hz``.

    Multi-channel audio is downmixed by averaging channels; other rates are resampled.

    Returns:
        1-D int16 array at ``sample_rate_hz``.

    Raises:
        AudioFileError: the file is missing, is a folder, is unreadable, holds no samples, or
            holds NaN/infinite samples (`check_finite`).
    """
    p = Path(path)
    if not p.exists():
        raise AudioFileError(f"{p}: no such file; give the path of a WAV/FLAC/OGG recording")
    if p.is_dir():
        raise AudioFileError(f"{p}: is a folder; give the path of one recording file inside it")
    try:
        data, file_rate = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioFileError(
            f"{p}: cannot read it as audio ({exc}); convert it to a WAV file, e.g. "
            f"`ffmpeg -i {p.name} -ar 16000 -ac 1 out.wav`"
        ) from exc
    if data.shape[0] == 0:
        raise AudioFileError(f"{p}: the file holds no audio samples; record or pick another file")
    check_finite(data, int(file_rate), p)
    if (
        data.shape[1] == 1
        and int(file_rate) == sample_rate_hz
        and sf.info(str(p)).subtype == "PCM_16"
    ):
        # Already what the pipeline wants: keep the samples bit-exact.
        exact: Pcm16 = sf.read(str(p), dtype="int16")[0]
        return exact
    mono = data.mean(axis=1).astype(np.float32)
    return to_int16(resample(mono, int(file_rate), sample_rate_hz))


def write_wav_atomic(
    path: str | os.PathLike[str], audio: npt.NDArray[np.int16], sample_rate_hz: int
) -> None:
    """Write PCM16 WAV atomically (temp file + rename; see `earshot.outputs.atomic_write`).

    Args:
        audio: int16, shape ``(num_samples,)`` or ``(num_samples, channels)``.

    Raises:
        OutputError: the file cannot be written (e.g. the disk is full); nothing is left behind.
    """
    atomic_write(
        path, lambda tmp: sf.write(tmp, audio, sample_rate_hz, subtype="PCM_16", format="WAV")
    )


def save_figure_atomic(fig: Any, path: str | os.PathLike[str], dpi: float | None = None) -> None:
    """Save a matplotlib figure as PNG atomically (temp file in the same folder + rename).

    Raises:
        OutputError: the file cannot be written.
    """

    def save(tmp: Path) -> None:
        if dpi is None:
            fig.savefig(tmp, format="png")
        else:
            fig.savefig(tmp, format="png", dpi=dpi)

    atomic_write(path, save)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write a text file atomically (temp file + rename), UTF-8.

    Raises:
        OutputError: the file cannot be written.
    """
    write_text(path, text)
