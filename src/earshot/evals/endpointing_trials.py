"""Trials for `earshot eval endpointing`: real clips, inserted pauses, noise conditions."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from earshot.audio.frames import Pcm16, ms_to_samples
from earshot.evals.manifest import MANIFEST_NAME, read_manifest

if TYPE_CHECKING:
    from earshot.evals.endpointing_data import SyntheticTurn
    from earshot.stt.base import WordSegment
    from earshot.stt.pocketsphinx import PocketsphinxRecognizer
    from earshot.vad.base import VoiceActivityDetector

HELP = "end-pointing on real recordings: false cut-offs and delay, fixed thresholds vs smart"
"""One-line help shown by ``earshot eval --help``."""

DEFAULT_FIXED_MS: tuple[float, ...] = tuple(float(ms) for ms in range(200, 1001, 100))
"""Fixed silence thresholds compared (ms): the whole curve any policy is shown against."""

DEFAULT_SNRS_DB: tuple[float, ...] = (10.0,)
"""Speech-to-noise ratios of the noise-mixed turns (dB)."""

TURN_GAP_MS = 2000.0
"""Natural-pause mode: a recording is cut into separate turns at VAD silences this long (ms);
shorter silences are mid-turn pauses."""

FAST_REFERENCE_MS = 300.0
"""The fixed threshold whose median delay the goal must not exceed (ms)."""

DEFAULT_VADS: tuple[str, ...] = ("silero",)
"""VADs run by default; ``--vad silero webrtc`` compares both."""

REFERENCE_FIXED_MS = 500.0
"""The fixed threshold the done-when compares the smart end-pointer with (ms)."""

PAUSES_PER_TURN = (1, 2)
"""Inserted pauses per turn, drawn uniformly in this range (fewer if the turn has fewer word
boundaries)."""

PAUSE_MS_RANGE = (300.0, 900.0)
"""Inserted pause lengths (ms), drawn uniformly in 10 ms steps."""

SNAP_RADIUS_MS = 20.0
"""A pause goes at the quietest point within this distance of the word boundary (ms)."""

KEEP_BEFORE_MS = 200.0
"""Recording kept before the first word (ms); earlier content (crosstalk) is cut."""

KEEP_AFTER_MS = 250.0
"""Recording kept after the last word (its decay); later content (applause) is cut (ms)."""

FADE_MS = 10.0
"""Fade applied where a recording is cut (ms)."""

LEAD_MS = 500.0
"""Silence (or noise bed) before each turn (ms)."""

MISSED_AFTER_MS = 3000.0
"""No end of turn this long after the true end: missed (ms)."""

LATE_MS = 1500.0
"""An end of turn more than this after the true end is late (ms)."""

QUICK_CLIPS = 3
"""Quick mode uses the shortest recordings, this many."""

QS: tuple[float, ...] = (50, 95)
"""Delay percentiles reported."""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class SpeechClip:
    """One speech recording, cut to its words, with its word segmentation.

    Attributes:
        name: ``path`` as written in the manifest.
        pcm: int16 16 kHz mono: the recording from `KEEP_BEFORE_MS` before the first word to
            `KEEP_AFTER_MS` after the last (faded where cut).
        onset_sample: first word's start in ``pcm``.
        end_sample: last word's end in ``pcm`` (the turn's true end before pauses).
        boundaries: sample positions in ``pcm`` between consecutive words where a pause may go.
        end_source: "stt" (pocketsphinx word segmentation), "energy" (`active_mask`) or
            "vad" (Silero on the clean recording, natural-pause mode).
        words: the recognised words (for reports).
        pauses: natural-pause mode: the mid-turn silences the VAD found on the clean
            recording, as ``(start_sample, end_sample)`` in ``pcm``.
    """

    name: str
    pcm: Pcm16
    onset_sample: int
    end_sample: int
    boundaries: tuple[int, ...]
    end_source: str
    words: str
    pauses: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class NoiseClip:
    """One background-noise recording.

    Attributes:
        name: ``path`` as written in the manifest.
        label: the noise type shown in reports (the manifest ``description`` up to any
            parenthesis, else the file name).
        pcm: int16 16 kHz mono.
    """

    name: str
    label: str
    pcm: Pcm16


def _read(where: str, path: Path) -> Pcm16:
    from earshot.audio.io import AudioFileError, read_audio

    try:
        return read_audio(path)
    except AudioFileError as exc:
        raise ValueError(f"{where}: {exc}") from exc


def _fade(pcm: Pcm16, fade_in: bool, fade_out: bool) -> Pcm16:
    n = min(ms_to_samples(FADE_MS), len(pcm) // 2)
    if n == 0 or not (fade_in or fade_out):
        return pcm
    out = pcm.astype(np.float64)
    ramp = np.linspace(0.0, 1.0, n, endpoint=False)
    if fade_in:
        out[:n] *= ramp
    if fade_out:
        out[-n:] *= ramp[::-1]
    faded: Pcm16 = np.round(out).astype(np.int16)
    return faded


def quietest_point(pcm: Pcm16, around: int, radius: int, low: int, high: int) -> int:
    """The sample within ``radius`` of ``around`` (and in ``[low, high]``) with the least energy
    in a 5 ms window centred on it, so an inserted pause cuts no sound in half."""
    lo, hi = max(low, around - radius), min(high, around + radius)
    if hi <= lo:
        return min(max(around, low), high)
    half = ms_to_samples(2.5)
    a, b = max(0, lo - half), min(len(pcm), hi + half + 1)
    power = pcm[a:b].astype(np.float64) ** 2
    window = np.convolve(power, np.ones(2 * half + 1), mode="same")
    return lo + int(np.argmin(window[lo - a : hi - a + 1]))


def load_speech(
    where: str, name: str, raw: Pcm16, recognizer: PocketsphinxRecognizer
) -> SpeechClip:
    """Cut a recording to its words and find the word boundaries.

    The words are pocketsphinx's segmentation of the whole clean recording
    (``recognizer.transcribe``); when it finds none, the first and last `active_mask` samples
    bound the speech and the clip gets no inserted pause.

    Raises:
        ValueError: the recording holds no sound at all.
    """
    from earshot.evals.endpointing_data import active_mask

    words: tuple[WordSegment, ...] = recognizer.transcribe(raw).words
    if words:
        onset = ms_to_samples(words[0].start_ms)
        end = min(len(raw), ms_to_samples(words[-1].end_ms))
        source = "stt"
    else:
        active = np.flatnonzero(active_mask(raw))
        if active.size == 0:
            raise ValueError(f"{where}: {name} is digital silence; remove it from the manifest")
        onset, end, source = int(active[0]), int(active[-1]) + 1, "energy"
    start = max(0, onset - ms_to_samples(KEEP_BEFORE_MS))
    stop = min(len(raw), end + ms_to_samples(KEEP_AFTER_MS))
    pcm = _fade(raw[start:stop].copy(), start > 0, stop < len(raw))
    onset, end = onset - start, end - start
    radius = ms_to_samples(SNAP_RADIUS_MS)
    boundaries: list[int] = []
    for left, right in itertools.pairwise(words):
        a, b = ms_to_samples(left.end_ms) - start, ms_to_samples(right.start_ms) - start
        point = quietest_point(pcm, (a + b) // 2, radius, onset + 1, end - 1)
        if onset < point < end and point not in boundaries:
            boundaries.append(point)
    return SpeechClip(
        name, pcm, onset, end, tuple(boundaries), source, " ".join(w.text for w in words)
    )


def load_speech_vad(name: str, raw: Pcm16, vad: VoiceActivityDetector) -> list[SpeechClip]:
    """Turns of a recording with ground truth from the VAD on the clean audio (natural pauses).

    The session's own chain (Silero probabilities → `VadSegmenter`, 20 ms frames) runs over
    the clean recording; its voiced stretches are the speech. Silences of `TURN_GAP_MS` or
    more cut the recording into separate turns (named ``name@k`` after the first); shorter
    ones are the turn's natural mid-turn pauses. Each turn's true end is the end of its last
    voiced stretch; its onset the start of the first.

    Returns:
        The turns, in order; [] when the VAD hears no speech.
    """
    from earshot.vad.segmenter import SpeechEnded, VadSegmenter

    frame_ms = 20.0
    n = ms_to_samples(frame_ms)
    frames = [raw[i : i + n] for i in range(0, len(raw) - n + 1, n)]
    vad.reset()
    segmenter = VadSegmenter(threshold=0.5)
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for i, frame in enumerate(frames):
        end_ms: float | None = None
        for event in segmenter.push(vad.speech_probability(frame), i * frame_ms, frame_ms):
            if isinstance(event, SpeechEnded):
                end_ms = event.end_ms
        speech = segmenter.is_speech
        if speech and start is None:
            start = i * n
        if not speech and start is not None:
            spans.append((start, ms_to_samples(end_ms) if end_ms is not None else i * n))
            start = None
    if start is not None:
        spans.append((start, len(frames) * n))
    groups: list[list[tuple[int, int]]] = []
    for span in spans:
        if groups and span[0] - groups[-1][-1][1] < ms_to_samples(TURN_GAP_MS):
            groups[-1].append(span)
        else:
            groups.append([span])
    clips = []
    for k, group in enumerate(groups):
        onset, end = group[0][0], group[-1][1]
        lo = max(0, onset - ms_to_samples(KEEP_BEFORE_MS))
        hi = min(len(raw), end + ms_to_samples(KEEP_AFTER_MS))
        pcm = _fade(raw[lo:hi].copy(), lo > 0, hi < len(raw))
        pauses = tuple((a[1] - lo, b[0] - lo) for a, b in itertools.pairwise(group))
        label = name if k == 0 else f"{name}@{k}"
        clips.append(SpeechClip(label, pcm, onset - lo, end - lo, (), "vad", "", pauses))
    return clips


def noise_label(entry: dict[str, Any], path: Path) -> str:
    """The noise type: the manifest ``description`` up to any parenthesis, else the file stem."""
    description = entry.get("description")
    if isinstance(description, str) and description.split("(")[0].strip(" ;,.-"):
        return description.split("(")[0].strip(" ;,.-")
    return path.stem


@dataclass(frozen=True, slots=True)
class SpeechEntry:
    """A speech recording as read from a manifest, before its words are found."""

    where: str
    name: str
    pcm: Pcm16
    language: str = "en"
    """The manifest's ``language`` ("unknown" when it gives none)."""


ANY_LANGUAGE = "any"
"""``--language any``: speech in every language (the acoustic cues do not depend on it)."""


def load_data(folder: Path, language: str) -> tuple[list[SpeechEntry], list[NoiseClip]]:
    """Speech recordings in ``language`` and noise clips (every non-speech entry), by path.

    Raises:
        ValueError: see `read_manifest`; an unreadable or silent recording (naming the
            manifest line); no speech entry in ``language``.
    """
    speech: list[SpeechEntry] = []
    noises: list[NoiseClip] = []
    for item in read_manifest(folder):
        where, entry, path = item.where, item.entry, item.path
        if entry["kind"] == "speech":
            if language == ANY_LANGUAGE or entry.get("language") == language:
                language_of = str(entry.get("language") or "unknown")
                speech.append(SpeechEntry(where, entry["path"], _read(where, path), language_of))
            continue
        pcm = _read(where, path)
        if not np.any(pcm):
            raise ValueError(f"{where}: {path} is digital silence; it cannot be mixed in")
        noises.append(NoiseClip(entry["path"], noise_label(entry, path), pcm))
    if not speech:
        raise ValueError(
            f'{folder / MANIFEST_NAME} lists no "speech" entries with "language": "{language}"; '
            "add some, or pass --language"
        )
    labels = [n.label for n in noises]
    noises = [
        NoiseClip(n.name, f"{n.label} ({Path(n.name).stem})", n.pcm)
        if labels.count(n.label) > 1
        else n
        for n in noises
    ]
    return sorted(speech, key=lambda e: e.name), sorted(noises, key=lambda n: n.name)


# --------------------------------------------------------------------------- turns, trials


def seeded_rng(seed: int, *parts: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and the names in ``parts`` (not on order)."""
    return np.random.default_rng([seed, zlib.crc32("|".join(parts).encode("utf-8"))])


def make_turn(clip: SpeechClip, variant: int, seed: int, tail_ms: float) -> SyntheticTurn:
    """``clip`` with `PAUSES_PER_TURN` pauses of `PAUSE_MS_RANGE` at seeded word boundaries
    (inserted-pause mode), or as recorded (natural-pause mode: a clip without boundaries)."""
    from earshot.evals.endpointing_data import build_turn

    if not clip.boundaries:
        return build_turn(
            clip.pcm, [], clip.end_sample, lead_ms=LEAD_MS, tail_ms=tail_ms, source=clip.name
        )
    rng = seeded_rng(seed, "pauses", clip.name, str(variant))
    count = min(int(rng.integers(PAUSES_PER_TURN[0], PAUSES_PER_TURN[1] + 1)), len(clip.boundaries))
    points = [int(i) for i in rng.choice(len(clip.boundaries), size=count, replace=False)]
    low, high = (int(v // 10) for v in PAUSE_MS_RANGE)
    pauses = [(clip.boundaries[i], 10.0 * int(rng.integers(low, high + 1))) for i in points]
    return build_turn(
        clip.pcm, pauses, clip.end_sample, lead_ms=LEAD_MS, tail_ms=tail_ms, source=clip.name
    )


@dataclass(frozen=True, slots=True)
class Condition:
    """Quiet, or one noise at one SNR."""

    noise: NoiseClip | None = None
    snr_db: float | None = None

    @property
    def label(self) -> str:
        return "quiet" if self.noise is None else f"{self.noise.label} @ {self.snr_db:g} dB"


@dataclass(frozen=True, slots=True)
class Trial:
    """One turn under one condition."""

    clip: SpeechClip
    variant: int
    condition: Condition

    @property
    def turn_id(self) -> str:
        return f"{self.clip.name}#{self.variant}"


def plan_trials(
    clips: Sequence[SpeechClip],
    noises: Sequence[NoiseClip],
    snrs_db: Sequence[float],
    turns_per_clip: int,
    every_snr: bool,
    quick: bool,
    noises_per_turn: int = 0,
) -> list[Trial]:
    """Every turn in quiet, then with noise.

    Normally each turn is mixed with every noise at one SNR, rotated so that each noise type
    meets every SNR about equally often (``every_snr``: at every SNR). ``noises_per_turn`` > 0
    mixes each turn with that many noises only, rotated over the types; quick mode with one.
    """
    per_turn = 1 if quick else noises_per_turn
    trials: list[Trial] = []
    k = 0
    for clip in clips:
        for variant in range(turns_per_clip):
            trials.append(Trial(clip, variant, Condition()))
            if per_turn > 0 and noises:
                picks = dict.fromkeys((k * per_turn + j) % len(noises) for j in range(per_turn))
                chosen = [noises[i] for i in picks]
            else:
                chosen = list(noises)
            for j, noise in enumerate(chosen):
                snrs = list(snrs_db) if every_snr else [snrs_db[(k + j) % len(snrs_db)]]
                trials.extend(Trial(clip, variant, Condition(noise, snr)) for snr in snrs)
            k += 1
    return trials


def trial_audio(trial: Trial, seed: int) -> SyntheticTurn:
    """The trial's track: the turn, with its noise mixed in at a seeded offset."""
    from earshot.evals.endpointing_data import with_noise

    turn = make_turn(trial.clip, trial.variant, seed, tail_ms=MISSED_AFTER_MS + 100.0)
    c = trial.condition
    if c.noise is None or c.snr_db is None:
        return turn
    rng = seeded_rng(seed, "noise", trial.turn_id, c.noise.name, f"{c.snr_db:g}")
    return with_noise(turn, c.noise.pcm, c.snr_db, rng, c.noise.label)
