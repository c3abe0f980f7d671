"""Reading and writing WAV files (soundfile) and resampling (soxr)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, to_int16


class AudioFileError(ValueError):
    """An input audio file cannot be used; the message says why and what to do."""


def resample(audio: npt.NDArray[np.float32], from_hz: int, to_hz: int) -> npt.NDArray[np.float32]:
    """Resample mono float32 audio with soxr (high quality). Returns float32, 1-D."""
    if from_hz == to_hz:
        return audio.astype(np.float32, copy=False)
    return np.asarray(soxr.resample(audio, from_hz, to_hz), dtype=np.float32)


def read_audio(path: str | os.PathLike[str], sample_rate_hz: int = SAMPLE_RATE_HZ) -> Pcm16:
    """Read any audio file soundfile can decode as mono PCM16 at ``sample_rate_hz``.

    Multi-channel audio is downmixed by averaging channels; other rates are resampled.

    Returns:
        1-D int16 array at ``sample_rate_hz``.

    Raises:
        AudioFileError: the file is missing, unreadable, or holds no samples.
    """
    p = Path(path)
    if not p.exists():
        raise AudioFileError(f"{p}: no such file; give the path of a WAV/FLAC/OGG recording")
    try:
        data, file_rate = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioFileError(
            f"{p}: cannot read it as audio ({exc}); convert it to a WAV file, e.g. "
            f"`ffmpeg -i {p.name} -ar 16000 -ac 1 out.wav`"
        ) from exc
    if data.shape[0] == 0:
        raise AudioFileError(f"{p}: the file holds no audio samples; record or pick another file")
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
    """Write PCM16 WAV atomically (temp file + rename).

    Args:
        audio: int16, shape ``(num_samples,)`` or ``(num_samples, channels)``.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    os.close(fd)
    try:
        sf.write(tmp, audio, sample_rate_hz, subtype="PCM_16", format="WAV")
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_figure_atomic(fig: Any, path: str | os.PathLike[str], dpi: float | None = None) -> None:
    """Save a matplotlib figure as PNG atomically (temp file in the same folder + rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp.png")
    os.close(fd)
    try:
        if dpi is None:
            fig.savefig(tmp, format="png")
        else:
            fig.savefig(tmp, format="png", dpi=dpi)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write a text file atomically (temp file + rename), UTF-8."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
