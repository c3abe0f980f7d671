"""`earshot eval endpointing`: false cut-offs and endpointing delay, fixed thresholds vs smart.

Each *turn* is one real recording from a folder's ``manifest.jsonl`` (default: the bundled
recordings) with its natural pauses, plus 1–2 pauses of 300–900 ms inserted at word boundaries
(`earshot.evals.endpointing_data.build_turn`); the word boundaries and the ground truth come
from pocketsphinx's word segmentation of the clean recording (`load_speech`). Each turn is
replayed in quiet and mixed with each recorded noise (keyboard, music, hum...) at an SNR from
``--snrs`` (`plan_trials`). Every *configuration* — a VAD (``--vad``) with an end-of-turn
policy: fixed thresholds (``--fixed-ms``, default 200/300/500/800/1000 ms) and the smart
end-pointer — runs the runtime's own chain on every frame, as ``Session._input_worker`` does:
VAD probability → `VadSegmenter` → `TurnDetector` with the policy, the streaming STT's partial
transcript and the frame audio.

The configurations of a (turn, condition) run side by side, frame by frame (`replay`), and
share what does not depend on the policy, which changes no number:

* VAD probabilities and segmentation, once per (turn, condition, VAD): every configuration
  with that VAD hears the same audio, and the segmenter is a pure function of them.
* Streaming STT: only policies that read the transcript get one (`LaneStt`), fed exactly as
  the session feeds it (a new utterance at each ``TurnStarted`` with the 300 ms pre-roll, then
  every frame of the turn; the partial on frame *i* covers the audio up to frame *i − 1*, an
  STT that keeps up), from a fresh recognizer per track, so the decisions equal those of a
  `Session` run on the track (tests/evals/test_eval_endpointing.py checks it). Fixed
  thresholds read no text and decode nothing.

Scoring (`score_lane`; ground truth in `earshot.evals.endpointing_data`):

* true end of the turn = end of the last word of pocketsphinx's segmentation of the clean
  recording (energy-based `active_mask` when it finds no word), shifted by the inserted pauses;
  speech onset likewise from the first word;
* false cut-off = an end-of-turn decided after the speech onset and before the true end (in
  a natural or inserted pause); the rate is the share of turns with at least one;
* endpointing delay = first end-of-turn decided at or after the true end − the true end (ms);
* missed = no such decision within `MISSED_AFTER_MS`; late = a delay over `LATE_MS`;
* spurious = an end-of-turn decided before the speech onset (noise taken for a turn).

The done-when (issue 4): on the noise-mixed set the smart end-pointer has a lower median delay
than the fixed 500 ms threshold and no higher false cut-off rate (`done_when`).

Outputs in ``--out``: ``endpointing.json`` (settings, summaries, every turn and decision),
``endpointing.txt`` (the printed tables) and ``endpointing.png`` (delay p50 vs false cut-off
rate, one point per configuration, quiet and noise apart). Ctrl-C writes them with the turns
done so far. The same seed and options give the same JSON.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import math
import os
import sys
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from earshot.audio.frames import Pcm16, ms_to_samples, samples_to_ms
from earshot.evals.manifest import MANIFEST_NAME, bundled_data_dir, read_manifest

if TYPE_CHECKING:
    from rich.table import Table

    from earshot.evals.endpointing_data import SyntheticTurn
    from earshot.stt.base import StreamingRecognizer, WordSegment
    from earshot.stt.pocketsphinx import PocketsphinxRecognizer
    from earshot.turns.detector import EndOfTurn, TurnDetector
    from earshot.turns.endpointer import Endpointer
    from earshot.vad.base import VoiceActivityDetector

HELP = "end-pointing on real recordings: false cut-offs and delay, fixed thresholds vs smart"
"""One-line help shown by ``earshot eval --help``."""

DEFAULT_FIXED_MS: tuple[float, ...] = (200.0, 300.0, 500.0, 800.0, 1000.0)
"""Fixed silence thresholds compared (ms)."""

DEFAULT_SNRS_DB: tuple[float, ...] = (20.0, 10.0, 5.0)
"""Speech-to-noise ratios of the noise-mixed turns (dB)."""

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
        end_source: "stt" (pocketsphinx word segmentation) or "energy" (`active_mask`).
        words: the recognised words (for reports).
    """

    name: str
    pcm: Pcm16
    onset_sample: int
    end_sample: int
    boundaries: tuple[int, ...]
    end_source: str
    words: str


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
            if entry.get("language") == language:
                speech.append(SpeechEntry(where, entry["path"], _read(where, path)))
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
    """``clip`` with `PAUSES_PER_TURN` pauses of `PAUSE_MS_RANGE` at seeded word boundaries."""
    from earshot.evals.endpointing_data import build_turn

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
) -> list[Trial]:
    """Every turn in quiet, then with noise.

    Normally each turn is mixed with every noise at one SNR, rotated so that each noise type
    meets every SNR about equally often (``every_snr``: at every SNR). Quick mode mixes each
    turn with one noise, rotated over the types.
    """
    trials: list[Trial] = []
    k = 0
    for clip in clips:
        for variant in range(turns_per_clip):
            trials.append(Trial(clip, variant, Condition()))
            chosen = [noises[k % len(noises)]] if quick and noises else list(noises)
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


# --------------------------------------------------------------------------- configurations


@dataclass(frozen=True, slots=True)
class EndpointerSpec:
    """An end-of-turn policy as `earshot.turns.factory.make_endpointer` builds it."""

    kind: str
    silence_ms: float = REFERENCE_FIXED_MS
    dynamic: bool = False
    acoustic: bool = True
    """Smart only: transcript and acoustic cues (the default), or the transcript alone."""

    @property
    def label(self) -> str:
        if self.kind == "fixed":
            return f"fixed {self.silence_ms:g} ms"
        label = "+".join(["smart", *(["dynamic"] if self.dynamic else [])])
        return label if self.acoustic else f"{label} (text only)"

    def build(self, rules_path: Path | None) -> Endpointer:
        from earshot.turns.factory import make_endpointer

        if self.kind == "fixed":
            return make_endpointer("fixed", silence_ms=self.silence_ms)
        return make_endpointer(
            "smart", rules_path=rules_path, dynamic=self.dynamic, acoustic=self.acoustic
        )


@dataclass(frozen=True, slots=True)
class Configuration:
    """A VAD with an end-of-turn policy."""

    vad: str
    endpointer: EndpointerSpec

    @property
    def label(self) -> str:
        return f"{self.endpointer.label} · {self.vad}"


def configurations(
    vads: Sequence[str], fixed_ms: Sequence[float], dynamic: bool, text_only: bool
) -> list[Configuration]:
    """Per VAD: each fixed threshold, then smart (and its dynamic / text-only variants)."""
    specs = [EndpointerSpec("fixed", ms) for ms in fixed_ms] + [EndpointerSpec("smart")]
    if dynamic:
        specs.append(EndpointerSpec("smart", dynamic=True))
    if text_only:
        specs.append(EndpointerSpec("smart", acoustic=False))
    return [Configuration(vad, spec) for vad in vads for spec in specs]


# --------------------------------------------------------------------------- replay


@dataclass(frozen=True, slots=True)
class ReplaySettings:
    """The session settings the replay uses (`earshot.session.config.SessionConfig` defaults).

    Attributes:
        frame_ms: frame duration (ms).
        vad_threshold: the segmenter's start threshold.
        min_speech_ms: voiced time a turn needs before it may end (ms).
        pre_roll_ms: audio before the turn start also given to the STT (ms).
        rules_path: smart-policy rules file; None: the packaged rules.
    """

    frame_ms: int = 20
    vad_threshold: float = 0.5
    min_speech_ms: float = 200.0
    pre_roll_ms: float = 300.0
    rules_path: Path | None = None

    @classmethod
    def from_session(cls, rules_path: Path | None = None) -> ReplaySettings:
        """The defaults of `SessionConfig`, i.e. what ``earshot converse`` runs."""
        from earshot.session.config import SessionConfig

        c = SessionConfig()
        return cls(c.frame_ms, c.vad_threshold, c.min_speech_ms, c.pre_roll_ms, rules_path)


class LaneStt:
    """The streaming STT of one configuration on one track, fed as the session feeds it.

    The session starts an STT utterance at each ``TurnStarted`` on frame *s*, gives it the
    pre-roll (frames ``s − pre_roll_frames + 1 .. s``, its pre-roll deque) and then every frame
    while the turn stays open, not the frame that ends it; the partial it holds when frame *i*
    arrives covers the audio up to frame *i − 1* (an STT that keeps up with the audio). Here
    the audio is decoded only when a partial is asked for or the utterance ends, which hands
    the recognizer the same audio in the same utterances, in fewer calls.

    Args:
        make_recognizer: builds the recognizer at the first turn start (one per track and
            configuration: a session starting on this track; pocketsphinx adapts to what it
            hears, so sharing one would carry one track's adaptation into the next).
        frames: the track's int16 frames, in order.
        pre_roll_frames: frames up to the turn start (included) that the STT also gets.
    """

    def __init__(
        self,
        make_recognizer: Callable[[], StreamingRecognizer],
        frames: Sequence[Pcm16],
        pre_roll_frames: int,
    ) -> None:
        self._make = make_recognizer
        self._recognizer: StreamingRecognizer | None = None
        self._frames = frames
        self._pre_roll = max(1, pre_roll_frames)
        self._next_frame = 0
        self._open = False
        self._text = ""
        self.decoded_frames = 0
        """Frames decoded so far (for the report)."""

    def turn_started(self, frame_index: int) -> None:
        """A turn started on ``frame_index``: a new utterance, from the pre-roll."""
        if self._recognizer is None:
            self._recognizer = self._make()
        self._recognizer.start()  # closes the previous utterance, as finish() did
        self._next_frame = max(0, frame_index - self._pre_roll + 1)
        self._open = True
        self._text = ""

    def turn_ended(self, frame_index: int) -> None:
        """The turn ended (or was discarded) on ``frame_index``: its utterance got the audio up
        to the frame before."""
        self._feed(frame_index)
        self._open = False

    def partial(self, frame_index: int) -> str:
        """The partial transcript as frame ``frame_index`` arrives."""
        self._feed(frame_index)
        return self._text

    def _feed(self, until_frame: int) -> None:
        if not self._open or until_frame <= self._next_frame or self._recognizer is None:
            return
        audio = np.concatenate(list(self._frames[self._next_frame : until_frame]))
        self._text = self._recognizer.push_audio(audio)
        self.decoded_frames += until_frame - self._next_frame
        self._next_frame = until_frame


@dataclass(frozen=True, slots=True)
class VadTrack:
    """A VAD segmenter's output per frame: speech state, and the voiced end where speech stops."""

    is_speech: tuple[bool, ...]
    voiced_end_ms: tuple[float | None, ...]


def vad_track(
    vad: VoiceActivityDetector, frames: Sequence[Pcm16], frame_ms: float, threshold: float
) -> VadTrack:
    """Run ``vad`` (reset first) and a fresh `VadSegmenter` over ``frames``, as the session does."""
    from earshot.vad.segmenter import SpeechEnded, VadSegmenter

    vad.reset()
    segmenter = VadSegmenter(threshold=threshold)
    speech: list[bool] = []
    ends: list[float | None] = []
    for i, frame in enumerate(frames):
        end: float | None = None
        for event in segmenter.push(vad.speech_probability(frame), i * frame_ms, frame_ms):
            if isinstance(event, SpeechEnded):
                end = event.end_ms
        speech.append(segmenter.is_speech)
        ends.append(end)
    return VadTrack(tuple(speech), tuple(ends))


@dataclass(slots=True)
class Lane:
    """One configuration's run through one track: the runtime's detector and what it did.

    Attributes:
        decisions: every end of turn as ``{"decided_at_ms", "speech_end_ms", "partial",
            "reason"}`` (partial and reason for policies that read text).
        discarded: voiced stretches too short to be a turn.
    """

    config: Configuration
    endpointer: Endpointer
    detector: TurnDetector
    stt: LaneStt | None
    decisions: list[dict[str, Any]] = field(default_factory=list)
    discarded: int = 0
    finished: bool = False


def replay(
    turn: SyntheticTurn,
    configs: Sequence[Configuration],
    vads: dict[str, VoiceActivityDetector],
    make_recognizer: Callable[[], StreamingRecognizer],
    settings: ReplaySettings,
) -> list[Lane]:
    """Run every configuration over ``turn`` frame by frame, as ``Session._input_worker`` does.

    Args:
        turn: the track and its ground truth.
        configs: the configurations, each run with a fresh policy and detector.
        vads: a detector per VAD name in ``configs`` (reset before use).
        make_recognizer: builds a streaming recognizer for each configuration that reads the
            transcript.
        settings: frame size, thresholds, pre-roll, rules.

    Returns:
        One `Lane` per configuration, in order. The replay stops once every configuration has
        ended the turn at or after its true end, or `MISSED_AFTER_MS` after the true end.
    """
    from earshot.audio.frames import samples_per_frame
    from earshot.turns.detector import EndOfTurn, TurnDetector, TurnDiscarded, TurnStarted
    from earshot.turns.endpointer import FixedEndpointer

    frame_ms = settings.frame_ms
    n = samples_per_frame(frame_ms)
    true_end_ms = turn.turn_end_ms
    num_frames = min(math.ceil((true_end_ms + MISSED_AFTER_MS) / frame_ms), len(turn.pcm) // n)
    frames = [turn.pcm[i * n : (i + 1) * n] for i in range(num_frames)]
    tracks = {
        name: vad_track(vads[name], frames, frame_ms, settings.vad_threshold)
        for name in sorted({c.vad for c in configs})
    }
    pre_roll_frames = int(settings.pre_roll_ms // frame_ms)
    lanes: list[Lane] = []
    for config in configs:
        endpointer = config.endpointer.build(settings.rules_path)
        reads_text = not isinstance(endpointer, FixedEndpointer)
        stt = LaneStt(make_recognizer, frames, pre_roll_frames) if reads_text else None
        detector = TurnDetector(endpointer, settings.min_speech_ms)
        lanes.append(Lane(config, endpointer, detector, stt))
    for i, frame in enumerate(frames):
        start_ms, end_ms = i * frame_ms, (i + 1) * frame_ms
        for lane in lanes:
            if lane.finished:
                continue
            track = tracks[lane.config.vad]
            is_speech = track.is_speech[i]
            partial = ""
            if lane.stt is not None and not is_speech and lane.detector.in_turn:
                partial = lane.stt.partial(i)
            events = lane.detector.push(
                start_ms, end_ms, is_speech, partial, frame, track.voiced_end_ms[i]
            )
            for event in events:
                match event:
                    case TurnStarted():
                        if lane.stt is not None:
                            lane.stt.turn_started(i)
                    case TurnDiscarded():
                        lane.discarded += 1
                        if lane.stt is not None:
                            lane.stt.turn_ended(i)
                    case EndOfTurn():
                        lane.decisions.append(_decision(event, lane, partial))
                        if lane.stt is not None:
                            lane.stt.turn_ended(i)
                        lane.finished = event.decided_at_ms >= true_end_ms
                    case _:
                        pass
        if all(lane.finished for lane in lanes):
            break
    return lanes


def _decision(event: EndOfTurn, lane: Lane, partial: str) -> dict[str, Any]:
    decision: dict[str, Any] = {
        "decided_at_ms": round(event.decided_at_ms, 3),
        "speech_end_ms": round(event.speech_end_ms, 3),
    }
    if lane.stt is not None:
        decision["partial"] = partial
        decision["reason"] = str(getattr(lane.endpointer, "last_decision_reason", ""))
    return decision


# --------------------------------------------------------------------------- scoring


def score_lane(lane: Lane, turn: SyntheticTurn, onset_ms: float) -> dict[str, Any]:
    """One configuration's outcome on one turn (definitions in the module docstring)."""
    true_end_ms = turn.turn_end_ms
    cut_offs: list[dict[str, Any]] = []
    spurious = 0
    delay: float | None = None
    vad_end_lag: float | None = None
    for d in lane.decisions:
        at = d["decided_at_ms"]
        if at >= true_end_ms:
            delay = at - true_end_ms
            vad_end_lag = d["speech_end_ms"] - true_end_ms
            break
        if at < onset_ms:
            spurious += 1
            continue
        inserted = any(
            samples_to_ms(p.start_sample) < at and d["speech_end_ms"] < samples_to_ms(p.end_sample)
            for p in turn.pauses
        )
        cut_offs.append({**d, "in": "inserted pause" if inserted else "natural pause"})
    missed = delay is None or delay > MISSED_AFTER_MS
    return {
        "false_cutoffs": cut_offs,
        "spurious_ends": spurious,
        "delay_ms": None if delay is None else round(delay, 3),
        "vad_end_lag_ms": None if vad_end_lag is None else round(vad_end_lag, 3),
        "missed": missed,
        "late": (not missed) and delay is not None and delay > LATE_MS,
        "discarded": lane.discarded,
        "decisions": lane.decisions,
    }


def _percentiles(values: Sequence[float]) -> dict[str, float | None]:
    from earshot.metrics.stats import percentiles

    result = percentiles(values, QS)
    keys = [f"p{q:g}_ms" for q in QS]
    if result is None:
        return dict.fromkeys(keys)
    return {k: round(v, 1) for k, v in zip(keys, result.values(), strict=True)}


def summarize(outcomes: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Counts, rates and delay percentiles over per-turn outcomes of one configuration."""
    rows = list(outcomes)
    turns = len(rows)
    cut = sum(1 for r in rows if r["false_cutoffs"])
    delays = [float(r["delay_ms"]) for r in rows if not r["missed"]]
    return {
        "turns": turns,
        "false_cutoff_turns": cut,
        "false_cutoffs": sum(len(r["false_cutoffs"]) for r in rows),
        "false_cutoff_rate": round(cut / turns, 4) if turns else None,
        "missed": sum(1 for r in rows if r["missed"]),
        "late": sum(1 for r in rows if r["late"]),
        "spurious_ends": sum(r["spurious_ends"] for r in rows),
        "delay": {"n": len(delays), **_percentiles(delays)},
    }


def groups_of(turn_doc: dict[str, Any]) -> list[str]:
    """The report groups a trial counts in: all, quiet or noise, its noise type, its SNR."""
    if turn_doc["noise"] is None:
        return ["all", "quiet"]
    return ["all", "noise", f"noise: {turn_doc['noise']}", f"SNR {turn_doc['snr_db']:g} dB"]


def summarize_run(
    turn_docs: Sequence[dict[str, Any]], labels: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """``{configuration: {group: summarize(...)}}``.

    Groups: all, quiet, noise, then each noise type (by name) and each SNR (highest first).
    """
    noises = {d["noise"] for d in turn_docs if d["noise"] is not None}
    snrs = {float(d["snr_db"]) for d in turn_docs if d["snr_db"] is not None}
    names = [
        "all",
        "quiet",
        "noise",
        *(f"noise: {n}" for n in sorted(noises)),
        *(f"SNR {snr:g} dB" for snr in sorted(snrs, reverse=True)),
    ]
    summary: dict[str, dict[str, Any]] = {}
    for label in labels:
        summary[label] = {
            g: summarize(d["results"][label] for d in turn_docs if g in groups_of(d)) for g in names
        }
    return summary


def done_when(
    summary: dict[str, dict[str, Any]], configs: Sequence[Configuration]
) -> list[dict[str, Any]]:
    """Per VAD: smart vs fixed 500 ms on the noise-mixed set (lower p50 delay, no higher false
    cut-off rate). ``met`` is None when either has no noise-mixed delay."""
    verdicts: list[dict[str, Any]] = []
    for vad in dict.fromkeys(c.vad for c in configs):
        smart = Configuration(vad, EndpointerSpec("smart")).label
        fixed = Configuration(vad, EndpointerSpec("fixed", REFERENCE_FIXED_MS)).label
        if smart not in summary or fixed not in summary:
            continue
        s, f = summary[smart]["noise"], summary[fixed]["noise"]
        s_p50, f_p50 = s["delay"]["p50_ms"], f["delay"]["p50_ms"]
        met = None
        if s_p50 is not None and f_p50 is not None:
            met = s_p50 < f_p50 and s["false_cutoff_rate"] <= f["false_cutoff_rate"]
        verdicts.append(
            {
                "vad": vad,
                "smart": smart,
                "fixed": fixed,
                "smart_delay_p50_ms": s_p50,
                "fixed_delay_p50_ms": f_p50,
                "smart_false_cutoff_rate": s["false_cutoff_rate"],
                "fixed_false_cutoff_rate": f["false_cutoff_rate"],
                "turns": s["turns"],
                "met": met,
            }
        )
    return verdicts


# --------------------------------------------------------------------------- the run


@dataclass(slots=True)
class EndpointingOptions:
    """Everything `earshot eval endpointing` takes (the CLI's flags).

    Attributes:
        out_dir: where the outputs go.
        data_dir: folder with ``manifest.jsonl``; None: the bundled recordings.
        seed: pause placement and noise offsets (>= 0).
        quick: the `QUICK_CLIPS` shortest recordings, each in quiet and one noise.
        vads: VAD backends (``earshot.vad.make_vad`` names), each run with every policy.
        fixed_ms: fixed thresholds (ms).
        dynamic, text_only: also run the smart end-pointer's dynamic / text-only variant.
        rules_path: smart-policy rules file; None: the packaged rules.
        snrs_db: SNRs of the noise-mixed turns (dB).
        every_snr: mix each turn with each noise at every SNR (default: one, rotated).
        turns_per_clip: turns built from each recording (each with its own pauses).
        language: manifest language of the speech recordings.
        quiet: no progress lines.
    """

    out_dir: Path = Path("out/eval-endpointing")
    data_dir: Path | None = None
    seed: int = 0
    quick: bool = False
    vads: tuple[str, ...] = DEFAULT_VADS
    fixed_ms: tuple[float, ...] = DEFAULT_FIXED_MS
    dynamic: bool = False
    text_only: bool = False
    rules_path: Path | None = None
    snrs_db: tuple[float, ...] = DEFAULT_SNRS_DB
    every_snr: bool = False
    turns_per_clip: int = 1
    language: str = "en"
    quiet: bool = False

    def check(self) -> None:
        """Raises: ValueError naming the bad option."""
        from earshot.vad import VAD_NAMES

        if self.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {self.seed}")
        if not self.vads:
            raise ValueError(f"give at least one --vad ({', '.join(VAD_NAMES)})")
        for vad in self.vads:
            if vad not in VAD_NAMES:
                raise ValueError(f"unknown --vad {vad!r}; choose from {', '.join(VAD_NAMES)}")
        if any(ms <= 0 for ms in self.fixed_ms):
            raise ValueError(f"--fixed-ms thresholds must be > 0 ms, got {self.fixed_ms}")
        if not self.snrs_db:
            raise ValueError("give at least one SNR with --snrs, e.g. 20,10,5")
        if self.turns_per_clip < 1:
            raise ValueError(f"--turns-per-clip must be >= 1, got {self.turns_per_clip}")


@dataclass(slots=True)
class EndpointingRun:
    """A finished (or interrupted) end-pointing eval.

    Attributes:
        options: what was asked for.
        configs: the configurations compared, in report order.
        trials: the planned trials, in run order.
        turns: one document per trial run so far (see `_turn_doc`).
        components: stage → backend.
        settings: the session settings replayed.
        stt_frames: frames decoded by the streaming STT, all configurations together.
        interrupted: stopped by Ctrl-C before every trial ran.
        summary: `summarize_run` of ``turns``.
        verdicts: `done_when` of ``summary``.
    """

    options: EndpointingOptions
    configs: list[Configuration] = field(default_factory=list)
    trials: list[Trial] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    components: dict[str, str] = field(default_factory=dict)
    settings: ReplaySettings = field(default_factory=ReplaySettings)
    stt_frames: int = 0
    interrupted: bool = False
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    verdicts: list[dict[str, Any]] = field(default_factory=list)


def _turn_doc(trial: Trial, turn: SyntheticTurn, lanes: Sequence[Lane]) -> dict[str, Any]:
    onset_ms = LEAD_MS + samples_to_ms(trial.clip.onset_sample)
    c = trial.condition
    return {
        "turn": trial.turn_id,
        "source": trial.clip.name,
        "condition": c.label,
        "noise": None if c.noise is None else c.noise.label,
        "noise_file": None if c.noise is None else c.noise.name,
        "snr_db": c.snr_db,
        "words": trial.clip.words,
        "true_end_source": trial.clip.end_source,
        "onset_ms": round(onset_ms, 3),
        "true_end_ms": round(turn.turn_end_ms, 3),
        "pauses": [
            {"start_ms": round(samples_to_ms(p.start_sample), 3), "ms": round(p.duration_ms, 3)}
            for p in turn.pauses
        ],
        "results": {lane.config.label: score_lane(lane, turn, onset_ms) for lane in lanes},
    }


def _components(opts: EndpointingOptions, run: EndpointingRun) -> dict[str, str]:
    r = run.settings
    rules = "packaged rules" if opts.rules_path is None else os.fspath(opts.rules_path)
    return {
        "vad": ", ".join(opts.vads) + " (real), with the session's VadSegmenter",
        "turns": "the session's TurnDetector with each policy (the runtime's logic)",
        "end-of-turn": f"fixed thresholds {', '.join(f'{m:g}' for m in opts.fixed_ms)} ms; "
        f"smart ({rules})",
        "stt": "pocketsphinx (real): streaming partials for policies that read text, fed as "
        "the session feeds them; word segmentation of the clean recording for the pause "
        "positions and the ground truth",
        "speech, noise": "real recordings (manifest)",
        "settings": f"frames {r.frame_ms} ms, VAD threshold {r.vad_threshold:g}, "
        f"min speech {r.min_speech_ms:g} ms, STT pre-roll {r.pre_roll_ms:g} ms "
        "(the session defaults)",
    }


def run_endpointing(opts: EndpointingOptions) -> EndpointingRun:
    """Run the eval and write its outputs into ``opts.out_dir``.

    The outputs are written in a ``finally``: an interrupted run (Ctrl-C) leaves them, holding
    the trials done so far, and returns with ``interrupted=True``.

    Raises:
        ValueError: bad options or data (the message names the file, line or flag to fix).
        RulesError: the ``rules_path`` file is invalid (a ValueError).
        ImportError: a VAD backend or praat-parselmouth (the smart end-pointer's acoustic
            cues) is not installed.
    """
    from earshot.stt import make_stt
    from earshot.stt.pocketsphinx import PocketsphinxRecognizer
    from earshot.vad import make_vad

    opts.check()
    run = EndpointingRun(opts, settings=ReplaySettings.from_session(opts.rules_path))
    run.configs = configurations(opts.vads, opts.fixed_ms, opts.dynamic, opts.text_only)
    for c in run.configs:  # fail fast on a bad rules file or a missing backend
        c.endpointer.build(opts.rules_path)
    run.components = _components(opts, run)
    data_dir = opts.data_dir if opts.data_dir is not None else bundled_data_dir()
    entries, noises = load_data(data_dir, opts.language)
    if opts.quick:
        entries = sorted(entries, key=lambda e: (len(e.pcm), e.name))[:QUICK_CLIPS]
        entries.sort(key=lambda e: e.name)
    # A fresh recognizer per recording: pocketsphinx adapts to what it heard, and the ground
    # truth of a recording must not depend on which recordings were segmented before it.
    clips = [load_speech(e.where, e.name, e.pcm, PocketsphinxRecognizer()) for e in entries]
    run.trials = plan_trials(
        clips, noises, opts.snrs_db, opts.turns_per_clip, opts.every_snr, opts.quick
    )
    vads = {name: make_vad(name) for name in opts.vads}

    def streaming_recognizer() -> StreamingRecognizer:
        # Exactly the runtime's (`earshot converse`): pocketsphinx's second pass at the end of
        # an utterance changes what the next utterance's partials read.
        return make_stt("pocketsphinx")

    try:
        for k, trial in enumerate(run.trials, 1):
            turn = trial_audio(trial, opts.seed)
            lanes = replay(turn, run.configs, vads, streaming_recognizer, run.settings)
            run.stt_frames += sum(lane.stt.decoded_frames for lane in lanes if lane.stt)
            run.turns.append(_turn_doc(trial, turn, lanes))
            if not opts.quiet:
                print(f"[{k}/{len(run.trials)}] {_progress(run.turns[-1])}", file=sys.stderr)
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        run.summary = summarize_run(run.turns, [c.label for c in run.configs])
        run.verdicts = done_when(run.summary, run.configs)
        write_outputs(run)
    return run


def _progress(doc: dict[str, Any]) -> str:
    parts = []
    for label, r in doc["results"].items():
        if not label.startswith(("smart", f"fixed {REFERENCE_FIXED_MS:g} ms")):
            continue
        delay = "missed" if r["missed"] else f"{r['delay_ms']:.0f} ms"
        parts.append(f"{label}: {len(r['false_cutoffs'])} cut-off(s), {delay}")
    return f"{doc['turn']} · {doc['condition']}: " + "; ".join(parts)


# --------------------------------------------------------------------------- outputs


DEFINITIONS: dict[str, str] = {
    "true_end": "end of the last word of pocketsphinx's segmentation of the clean recording "
    "(energy-based active mask when it finds no word), shifted by the inserted pauses",
    "false_cutoff": "an end-of-turn decided after the speech onset and before the true end; "
    "false_cutoff_rate = turns with at least one / turns",
    "delay": "first end-of-turn decided at or after the true end − the true end (ms); "
    "percentiles over turns not missed, numpy 'linear' (Hyndman & Fan type 7)",
    "missed": f"no end-of-turn within {MISSED_AFTER_MS:g} ms of the true end",
    "late": f"an end-of-turn more than {LATE_MS:g} ms after the true end (and not missed)",
    "spurious_end": "an end-of-turn decided before the speech onset (noise taken for a turn)",
    "vad_end_lag": "VAD voiced end of the ending turn − the true end (ms)",
}


def _settings(run: EndpointingRun) -> dict[str, Any]:
    o = run.options
    return {
        "seed": o.seed,
        "quick": o.quick,
        "data": os.fspath(o.data_dir) if o.data_dir is not None else "bundled earshot/data",
        "language": o.language,
        "vads": list(o.vads),
        "fixed_ms": list(o.fixed_ms),
        "rules": os.fspath(o.rules_path) if o.rules_path is not None else "packaged",
        "snrs_db": list(o.snrs_db),
        "every_snr": o.every_snr,
        "turns_per_clip": o.turns_per_clip,
        "pauses_per_turn": list(PAUSES_PER_TURN),
        "pause_ms_range": list(PAUSE_MS_RANGE),
        "lead_ms": LEAD_MS,
        "missed_after_ms": MISSED_AFTER_MS,
        "late_ms": LATE_MS,
        "frame_ms": run.settings.frame_ms,
        "vad_threshold": run.settings.vad_threshold,
        "min_speech_ms": run.settings.min_speech_ms,
        "stt_pre_roll_ms": run.settings.pre_roll_ms,
    }


def to_json(run: EndpointingRun) -> dict[str, Any]:
    """The ``endpointing.json`` document of a run."""
    return {
        "eval": "endpointing",
        "interrupted": run.interrupted,
        "settings": _settings(run),
        "components": run.components,
        "definitions": DEFINITIONS,
        "configurations": [c.label for c in run.configs],
        "counts": {
            "planned": len(run.trials),
            "run": len(run.turns),
            "stt_frames_decoded": run.stt_frames,
        },
        "done_when": run.verdicts,
        "summary": run.summary,
        "turns": run.turns,
    }


def _rate(s: dict[str, Any]) -> str:
    if not s["turns"]:
        return "n/a"
    return f"{100 * s['false_cutoff_rate']:.0f}% ({s['false_cutoff_turns']}/{s['turns']})"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def render_tables(run: EndpointingRun) -> tuple[Table, Table]:
    """The overall table (quiet vs noise) and the per-condition split."""
    from rich.table import Table

    status = " — INTERRUPTED, partial" if run.interrupted else ""
    overall = Table(
        title=f"eval endpointing: {len(run.turns)} of {len(run.trials)} turns{status}",
        caption="false cut-off: turns with an end of turn inside the turn; delay: end of turn − "
        f"true end of speech; missed: none within {MISSED_AFTER_MS / 1000:g} s; late: > "
        f"{LATE_MS / 1000:g} s",
    )
    overall.add_column("configuration", no_wrap=True)
    for group in ("quiet", "noise"):
        overall.add_column(f"{group}: false cut-off", justify="right")
        overall.add_column(f"{group}: delay p50 / p95 ms", justify="right")
        overall.add_column(f"{group}: missed / late", justify="right")
    previous_vad = None
    for config in run.configs:
        if previous_vad is not None and config.vad != previous_vad:
            overall.add_section()
        previous_vad = config.vad
        cells: list[str] = []
        for group in ("quiet", "noise"):
            s = run.summary[config.label][group]
            d = s["delay"]
            cells += [
                _rate(s),
                f"{_ms(d['p50_ms'])} / {_ms(d['p95_ms'])}",
                f"{s['missed']} / {s['late']}" if s["turns"] else "n/a",
            ]
        overall.add_row(config.label, *cells)
    groups = [
        g
        for g in next(iter(run.summary.values()), {})
        if g.startswith(("noise:", "SNR")) or g == "quiet"
    ]
    split = Table(title="per condition: false cut-off rate · delay p50 (ms)")
    split.add_column("configuration", no_wrap=True)
    for g in groups:
        split.add_column(g.removeprefix("noise: "), justify="right")
    for config in run.configs:
        row = []
        for g in groups:
            s = run.summary[config.label][g]
            row.append(
                "n/a"
                if not s["turns"]
                else f"{100 * s['false_cutoff_rate']:.0f}% · {_ms(s['delay']['p50_ms'])}"
            )
        split.add_row(config.label, *row)
    return overall, split


def done_when_lines(run: EndpointingRun) -> list[str]:
    """One line per VAD: smart vs fixed 500 ms on the noise-mixed set."""
    lines = []
    for v in run.verdicts:
        verdict = {True: "MET", False: "NOT MET", None: "n/a (no noise-mixed delays)"}[v["met"]]
        s_rate, f_rate = v["smart_false_cutoff_rate"], v["fixed_false_cutoff_rate"]
        lines.append(
            f"done-when ({v['vad']}, noise-mixed, {v['turns']} turns): smart delay p50 "
            f"{_ms(v['smart_delay_p50_ms'])} ms < fixed {REFERENCE_FIXED_MS:g} ms "
            f"{_ms(v['fixed_delay_p50_ms'])} ms, and false cut-off "
            f"{_pct(s_rate)} ≤ {_pct(f_rate)}: {verdict}"
        )
    if not run.verdicts:
        lines.append("done-when: not evaluated (needs the smart and the fixed 500 ms policies)")
    return lines


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{100 * rate:.0f}%"


def tables_text(run: EndpointingRun, width: int = 160) -> str:
    """`render_tables` as plain text (what ``endpointing.txt`` holds), with the done-when."""
    from rich.console import Console

    console = Console(file=io.StringIO(), record=True, width=width, color_system=None)
    for table in render_tables(run):
        console.print(table)
    for line in done_when_lines(run):
        console.print(line)
    return console.export_text()


def plot_results(path: str | os.PathLike[str], run: EndpointingRun) -> None:
    """Delay p50 against false cut-off rate, one labelled point per configuration, quiet (o)
    and noise-mixed (^) apart, fixed thresholds joined per VAD; written atomically as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from earshot.audio.io import save_figure_atomic

    fig = Figure(figsize=(9.0, 6.0), dpi=100)
    FigureCanvasAgg(fig)
    fig.set_layout_engine("constrained")
    ax = fig.subplots()
    colours = ["#3182bd", "#e6550d", "#31a354", "#756bb1"]
    vads = list(dict.fromkeys(c.vad for c in run.configs))
    for v, vad in enumerate(vads):
        colour = colours[v % len(colours)]
        for group, marker, style in (("quiet", "o", ":"), ("noise", "^", "-")):
            curve: list[tuple[float, float]] = []
            for config in (c for c in run.configs if c.vad == vad):
                s = run.summary.get(config.label, {}).get(group)
                if not s or s["delay"]["p50_ms"] is None:
                    continue
                x, y = 100 * s["false_cutoff_rate"], s["delay"]["p50_ms"]
                smart = config.endpointer.kind == "smart"
                ax.plot(
                    [x],
                    [y],
                    marker,
                    color=colour,
                    ms=10 if smart else 7,
                    mfc=colour if smart else "white",
                    mew=1.5,
                )
                short = (
                    f"{config.endpointer.silence_ms:g}"
                    if config.endpointer.kind == "fixed"
                    else config.endpointer.label
                )
                ax.annotate(short, (x, y), xytext=(5, 4), textcoords="offset points", fontsize=8)
                if config.endpointer.kind == "fixed":
                    curve.append((x, y))
            if curve:
                xs, ys = zip(*curve, strict=True)
                ax.plot(xs, ys, style, color=colour, lw=1, alpha=0.6, label=f"{vad} · {group}")
    ax.plot([], [], "o", color="#555555", mfc="white", label="quiet")
    ax.plot([], [], "^", color="#555555", mfc="white", label="noise-mixed")
    ax.plot([], [], "o", color="#555555", ms=10, label="smart end-pointer (filled)")
    ax.set_xlabel("false cut-off rate (% of turns)")
    ax.set_ylabel("endpointing delay p50 (ms)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, frameon=False, title="fixed thresholds (ms) joined per VAD")
    status = ", INTERRUPTED" if run.interrupted else ""
    ax.set_title(
        f"earshot eval endpointing: {len(run.turns)} turns{status} (o quiet, ^ noise-mixed)",
        fontsize=10,
    )
    save_figure_atomic(fig, path)


def write_outputs(run: EndpointingRun) -> None:
    """Write ``endpointing.json``, ``endpointing.txt`` and ``endpointing.png`` (atomically)."""
    from earshot.audio.io import write_text_atomic

    out = run.options.out_dir
    write_text_atomic(
        out / "endpointing.json",
        json.dumps(to_json(run), indent=2, ensure_ascii=False, allow_nan=False) + "\n",
    )
    write_text_atomic(out / "endpointing.txt", tables_text(run))
    plot_results(out / "endpointing.png", run)


# --------------------------------------------------------------------------- CLI


def _number_list(flag: str, example: str) -> Callable[[str], tuple[float, ...]]:
    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{flag} takes numbers separated by commas, e.g. {example}; got {text!r}"
            ) from None
        if not values or not all(math.isfinite(v) for v in values):
            raise argparse.ArgumentTypeError(f"{flag} needs finite numbers, e.g. {example}")
        return values

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `earshot eval endpointing`'s flags on ``parser``."""
    from earshot.vad import VAD_NAMES

    parser.add_argument(
        "--out", type=Path, default=Path("out/eval-endpointing"), help="output folder"
    )
    parser.add_argument(
        "--data",
        type=Path,
        help="folder with manifest.jsonl (speech and noise entries, paths relative to it) and "
        "its recordings (default: the bundled recordings)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="pause placement and noise offsets (default 0)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"the {QUICK_CLIPS} shortest recordings, each in quiet and one noise (for tests)",
    )
    parser.add_argument(
        "--vad",
        nargs="+",
        choices=VAD_NAMES,
        default=list(DEFAULT_VADS),
        metavar="VAD",
        help=f"VAD(s) to run every policy with: {', '.join(VAD_NAMES)} "
        f"(default {' '.join(DEFAULT_VADS)}; give several to compare)",
    )
    parser.add_argument(
        "--fixed-ms",
        type=_number_list("--fixed-ms", "200,500"),
        default=DEFAULT_FIXED_MS,
        metavar="MS,MS,...",
        help="fixed silence thresholds (default 200,300,500,800,1000)",
    )
    parser.add_argument(
        "--rules", type=Path, help="smart end-pointer rules file (default: the packaged rules)"
    )
    parser.add_argument(
        "--dynamic", action="store_true", help="also run the smart end-pointer's dynamic mode"
    )
    parser.add_argument(
        "--text-only",
        action="store_true",
        help="also run the smart end-pointer on the transcript alone (no acoustic cues)",
    )
    parser.add_argument(
        "--snrs",
        type=_number_list("--snrs", "20,10,5"),
        default=DEFAULT_SNRS_DB,
        metavar="DB,DB,...",
        help="SNRs of the noise-mixed turns in dB (default 20,10,5)",
    )
    parser.add_argument(
        "--every-snr",
        action="store_true",
        help="mix each turn with each noise at every SNR (default: one SNR per pair, rotated)",
    )
    parser.add_argument(
        "--turns-per-clip",
        type=int,
        default=1,
        help="turns built from each recording, each with its own pauses (default 1)",
    )
    parser.add_argument(
        "--language", default="en", help="manifest language of the speech recordings (default en)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    """`earshot eval endpointing`: 0 done, 2 bad input, 130 interrupted (outputs written)."""
    from rich.console import Console

    opts = EndpointingOptions(
        out_dir=args.out,
        data_dir=args.data,
        seed=args.seed,
        quick=args.quick,
        vads=tuple(dict.fromkeys(args.vad)),
        fixed_ms=tuple(args.fixed_ms),
        dynamic=args.dynamic,
        text_only=args.text_only,
        rules_path=args.rules,
        snrs_db=tuple(args.snrs),
        every_snr=args.every_snr,
        turns_per_clip=args.turns_per_clip,
        language=args.language,
        quiet=args.quiet,
    )
    try:
        result = run_endpointing(opts)
    except (ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted while loading the recordings; nothing written", file=sys.stderr)
        return 130
    console = Console() if sys.stdout.isatty() else Console(width=160)
    for table in render_tables(result):
        console.print(table)
    for line in done_when_lines(result):
        console.print(line)
    console.print(f"wrote {opts.out_dir}/endpointing.json, endpointing.txt, endpointing.png")
    if result.interrupted:
        console.print("interrupted: outputs hold the turns done so far")
        return 130
    return 0
