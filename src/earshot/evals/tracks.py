"""Building caller tracks from real recordings: utterances separated by silences."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, ms_to_samples
from earshot.audio.io import read_audio

LEAD_MS = 500.0
"""Silence before the first utterance of a built caller track (ms), in every evaluation."""


@dataclass(frozen=True, slots=True)
class PlacedUtterance:
    """Where one source utterance sits in a built track (samples at 16 kHz)."""

    source: str
    start_sample: int
    end_sample: int


def build_caller_track(
    clips: Sequence[Pcm16],
    gap_ms: float | Sequence[float],
    lead_ms: float = LEAD_MS,
    tail_ms: float = 1000.0,
    names: Sequence[str] | None = None,
) -> tuple[Pcm16, list[PlacedUtterance]]:
    """Concatenate utterances with digital silence between them.

    Args:
        clips: int16 16 kHz mono utterances, in order.
        gap_ms: silence after each utterance but the last (one value, or one per gap).
        lead_ms: silence before the first utterance.
        tail_ms: silence after the last.
        names: labels for the placement list (default: the clip index).

    Returns:
        The track (int16, 16 kHz mono) and where each utterance was placed.

    Raises:
        ValueError: no clips, or a gap list of the wrong length.
    """
    if not clips:
        raise ValueError("a caller track needs at least one utterance")
    gaps = [float(gap_ms)] * (len(clips) - 1) if isinstance(gap_ms, int | float) else list(gap_ms)
    if len(gaps) != len(clips) - 1:
        raise ValueError(f"{len(clips)} utterances need {len(clips) - 1} gaps, got {len(gaps)}")
    parts: list[Pcm16] = [np.zeros(ms_to_samples(lead_ms), dtype=np.int16)]
    placed: list[PlacedUtterance] = []
    pos = len(parts[0])
    for i, clip in enumerate(clips):
        label = names[i] if names is not None else str(i)
        parts.append(clip.astype(np.int16, copy=False))
        placed.append(PlacedUtterance(label, pos, pos + len(clip)))
        pos += len(clip)
        silence = ms_to_samples(gaps[i] if i < len(gaps) else tail_ms)
        parts.append(np.zeros(silence, dtype=np.int16))
        pos += silence
    return np.concatenate(parts), placed


def load_clips(paths: Sequence[str | os.PathLike[str]]) -> list[Pcm16]:
    """Read recordings as int16 16 kHz mono (see `earshot.audio.io.read_audio`)."""
    return [read_audio(p, SAMPLE_RATE_HZ) for p in paths]
