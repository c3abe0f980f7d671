"""Barge-in eval scenarios: event clips, their ground-truth bounds, and the user tracks.

A scenario is one user track: a first utterance (the question the agent answers at length),
then one event placed during the agent's reply, ``offset_ms`` after the reply's first played
sample:

* ``cut-in`` — another recorded utterance (at least `MIN_CUT_IN_MS` of sound): the user takes
  the turn; the agent should stop at once and answer it;
* ``noise`` — a `NOISE_MIN_MS`–`NOISE_MAX_MS` piece of a recorded noise (keyboard typing, a tap
  on a laptop, ...): the reply should go on, or resume if it was stopped;
* ``backchannel`` — a short acknowledgement ("yeah", "right"). The bundled recordings hold none,
  so these are synthesized with espeak-ng in a voice other than the agent's (`BACKCHANNEL_VOICE`)
  and labelled as TTS in every output.

Ground truth comes from the clips, never from the system under test: a clip's sound starts at
its manifest ``word_timings`` when it has them, else at its energy onset (`sound_bounds`).
Everything here is pure apart from reading files and the one TTS call; ``(input) → output``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, ms_to_samples, samples_to_ms
from earshot.audio.io import read_audio
from earshot.evals.manifest import MANIFEST_NAME
from earshot.evals.manifest import read_manifest as read_manifest_entries
from earshot.tts.base import Synthesizer

EventKind = Literal["cut-in", "noise", "backchannel"]
EVENT_KINDS: tuple[EventKind, ...] = ("cut-in", "noise", "backchannel")


MIN_CUT_IN_MS = 1000.0
"""Least sound a recording needs to be a cut-in (ms, ground-truth onset to end)."""

NOISE_MIN_MS = 300.0
NOISE_MAX_MS = 1000.0
"""Length range of the noise pieces (ms); each piece's length is drawn uniformly (seeded)."""

NOISE_FADE_MS = 5.0
"""Raised-cosine fade at both ends of a noise piece, so cutting it adds no click (ms)."""

BACKCHANNEL_PHRASES: tuple[str, ...] = ("Yeah.", "Right.", "Uh-huh.", "Okay.")
"""What the synthetic listener says. Checked here with pocketsphinx on the clips alone:
"Yeah." → "yes", "Right." → "right", "Uh-huh." → "aha" (all backchannels), "Okay." → "q"
(not one) — kept to show what a mis-heard backchannel does."""

BACKCHANNEL_VOICE = "en-gb-x-rp"
"""espeak-ng voice of the synthetic listener (the agent speaks ``en-us``)."""

EVENT_LEAD_MS = 200.0
"""How much of an event clip before its sound onset goes into the track (ms)."""

ENERGY_WINDOW_MS = 10.0
ENERGY_RISE_DB = 20.0
ENERGY_EXTEND_DB = 30.0
"""`sound_bounds`: a window within ``RISE`` dB of the loudest one is sound; the bounds then
extend over adjacent windows within ``EXTEND`` dB of it (the soft start of a word)."""


@dataclass(frozen=True, slots=True)
class Clip:
    """One user-side sound.

    Attributes:
        name: where it comes from (manifest path, with the cut for a noise piece).
        kind: ``"speech"``, ``"noise"`` or ``"backchannel"``.
        audio: int16, 16 kHz mono.
        onset_sample: first sample of sound (ground truth), from the clip's start.
        end_sample: one past the last sample of sound (ground truth).
        source: ``"recording"`` or ``"espeak-ng TTS (voice ...)"``.
        transcript: what is said, if known.
    """

    name: str
    kind: str
    audio: Pcm16
    onset_sample: int
    end_sample: int
    source: str
    transcript: str | None = None

    @property
    def sound_ms(self) -> float:
        """Duration of the sound, ground-truth onset to end (ms)."""
        return samples_to_ms(self.end_sample - self.onset_sample)


@dataclass(frozen=True, slots=True)
class Condition:
    """The acoustic set-up: the agent's voice leaking into the microphone, and AEC.

    Attributes:
        name: label used in outputs.
        echo: the simulated room (`earshot.echo.path.EchoPath` defaults) feeds the agent's
            playout back into the microphone.
        aec: WebRTC AEC3 runs on the microphone signal.
    """

    name: str
    echo: bool
    aec: bool


CLEAN = Condition("clean", echo=False, aec=False)
ECHO = Condition("echo", echo=True, aec=False)
ECHO_AEC = Condition("echo+aec", echo=True, aec=True)
CONDITIONS: tuple[Condition, ...] = (CLEAN, ECHO, ECHO_AEC)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One run: a condition, a question, and one event ``offset_ms`` into the agent's reply."""

    scenario_id: str
    condition: Condition
    question: Clip
    kind: EventKind
    event: Clip
    offset_ms: float


@dataclass(frozen=True, slots=True)
class UserTrack:
    """A built user track and where its sounds are (ground truth, ms of track time).

    Attributes:
        audio: int16, 16 kHz mono, from session time 0.
        question_onset_ms, question_end_ms: the question's sound.
        event_onset_ms, event_end_ms: the event's sound (None on a question-only track).
    """

    audio: Pcm16
    question_onset_ms: float
    question_end_ms: float
    event_onset_ms: float | None = None
    event_end_ms: float | None = None

    def sounds_ms(self) -> list[tuple[str, float, float]]:
        """``(label, onset_ms, end_ms)`` of each placed sound, in order."""
        sounds = [("question", self.question_onset_ms, self.question_end_ms)]
        if self.event_onset_ms is not None and self.event_end_ms is not None:
            sounds.append(("event", self.event_onset_ms, self.event_end_ms))
        return sounds


# --------------------------------------------------------------------------- ground truth


def _window_db(audio: Pcm16, window: int) -> np.ndarray:
    usable = len(audio) // window * window
    frames = audio[:usable].astype(np.float64).reshape(-1, window)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    return np.asarray(20.0 * np.log10(np.maximum(rms, 1e-9) / 32768.0))


def sound_bounds(audio: Pcm16) -> tuple[int, int]:
    """Where the sound of a clip starts and ends, from its energy.

    10 ms windows (`ENERGY_WINDOW_MS`); the first and last window within `ENERGY_RISE_DB` of
    the loudest mark the sound, and each bound moves outwards over adjacent windows within
    `ENERGY_EXTEND_DB` of the loudest. Background far below the sound (a crowd under a speech,
    room noise before a word) is left out; the soft start of a word is kept.

    Args:
        audio: int16, 16 kHz mono, at least one window long.

    Returns:
        ``(onset_sample, end_sample)``, end exclusive, on window boundaries.

    Raises:
        ValueError: the clip is shorter than one window or silent.
    """
    window = ms_to_samples(ENERGY_WINDOW_MS)
    db = _window_db(audio, window)
    if db.size == 0 or float(db.max()) <= -150.0:
        raise ValueError(
            f"a clip of {len(audio)} samples has no sound to place; pick a recording with sound"
        )
    peak = float(db.max())
    loud = np.nonzero(db >= peak - ENERGY_RISE_DB)[0]
    first, last = int(loud[0]), int(loud[-1])
    while first > 0 and db[first - 1] >= peak - ENERGY_EXTEND_DB:
        first -= 1
    while last + 1 < db.size and db[last + 1] >= peak - ENERGY_EXTEND_DB:
        last += 1
    return first * window, (last + 1) * window


# --------------------------------------------------------------------------- clips


def read_manifest(folder: Path) -> list[dict[str, object]]:
    """The entries of ``folder/manifest.jsonl`` whose audio file exists, with ``path`` resolved.

    Raises:
        ValueError: no manifest, a line that is not a JSON object, or an entry without ``path``
            or ``kind`` or naming a missing file (the message names the line and the fix).
    """
    return [{**item.entry, "file": item.path} for item in read_manifest_entries(folder)]


def _timed_bounds(entry: dict[str, object], audio: Pcm16) -> tuple[int, int] | None:
    """Bounds from the manifest's ``word_timings`` (seconds), if it has usable ones."""
    timings = entry.get("word_timings")
    if not isinstance(timings, list) or not timings:
        return None
    try:
        start_s = float(timings[0]["start"])
        end_s = float(timings[-1]["end"])
    except (KeyError, TypeError, ValueError):
        return None
    onset = ms_to_samples(start_s * 1000.0)
    end = min(len(audio), ms_to_samples(end_s * 1000.0))
    return (onset, end) if 0 <= onset < end else None


def load_speech_clips(folder: Path, language: str = "en") -> list[Clip]:
    """The ``speech`` recordings in ``language`` listed in the folder's manifest, by path.

    Raises:
        ValueError: see `read_manifest`; or no speech entry in that language.
        AudioFileError: a recording cannot be read.
    """
    clips: list[Clip] = []
    for entry in read_manifest(folder):
        if entry["kind"] != "speech" or entry.get("language") != language:
            continue
        audio = read_audio(Path(str(entry["file"])), SAMPLE_RATE_HZ)
        onset, end = _timed_bounds(entry, audio) or sound_bounds(audio)
        transcript = entry.get("transcript")
        clips.append(
            Clip(
                name=str(entry["path"]),
                kind="speech",
                audio=audio,
                onset_sample=onset,
                end_sample=end,
                source="recording",
                transcript=str(transcript) if transcript is not None else None,
            )
        )
    if not clips:
        raise ValueError(
            f'{folder / MANIFEST_NAME} lists no "speech" entries in language "{language}"; '
            "add some, or point --data at another folder"
        )
    return sorted(clips, key=lambda c: c.name)


def noise_piece(name: str, audio: Pcm16, rng: random.Random) -> Clip:
    """Cut a `NOISE_MIN_MS`–`NOISE_MAX_MS` piece with sound out of a noise recording.

    The length is drawn uniformly (10 ms steps); the start is drawn among the positions (50 ms
    steps) whose piece is within 10 dB of the loudest piece, so the piece holds an actual
    keystroke or tap rather than the silence between them.

    Raises:
        ValueError: the recording is shorter than `NOISE_MIN_MS` or silent.
    """
    length_ms = 10.0 * rng.randint(int(NOISE_MIN_MS // 10), int(NOISE_MAX_MS // 10))
    length = min(ms_to_samples(length_ms), len(audio))
    if length < ms_to_samples(NOISE_MIN_MS):
        raise ValueError(
            f"noise recording {name} is {samples_to_ms(len(audio)):.0f} ms long; a noise event "
            f"needs at least {NOISE_MIN_MS:g} ms"
        )
    step = ms_to_samples(50.0)
    starts = list(range(0, len(audio) - length + 1, step))
    x = audio.astype(np.float64)
    energy = np.array([np.mean(x[s : s + length] ** 2) for s in starts])
    if float(energy.max()) == 0.0:
        raise ValueError(f"noise recording {name} is silent; pick a recording with sound")
    good = [s for s, e in zip(starts, energy, strict=True) if e >= energy.max() / 10.0]
    start = rng.choice(good)
    piece = x[start : start + length]
    fade = ms_to_samples(NOISE_FADE_MS)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, fade))
    piece[:fade] *= ramp
    piece[-fade:] *= ramp[::-1]
    pcm = np.clip(np.round(piece), -32768, 32767).astype(np.int16)
    onset, end = sound_bounds(pcm)
    cut = f"{samples_to_ms(start) / 1000:.2f}-{samples_to_ms(start + length) / 1000:.2f}s"
    return Clip(f"{name}[{cut}]", "noise", pcm, onset, end, "recording")


def load_noise_pieces(folder: Path, rng: random.Random, pieces_per_file: int = 1) -> list[Clip]:
    """`noise_piece` cuts of every ``noise`` recording in the folder's manifest, by path.

    Raises:
        ValueError: see `read_manifest` and `noise_piece`; or no noise entry at all.
        AudioFileError: a recording cannot be read.
    """
    entries = sorted(
        (e for e in read_manifest(folder) if e["kind"] == "noise"), key=lambda e: str(e["path"])
    )
    if not entries:
        raise ValueError(
            f'{folder / MANIFEST_NAME} lists no "noise" entries; add some (keyboard typing, '
            "taps), or point --data at another folder"
        )
    pieces: list[Clip] = []
    for entry in entries:
        audio = read_audio(Path(str(entry["file"])), SAMPLE_RATE_HZ)
        for _ in range(pieces_per_file):
            pieces.append(noise_piece(str(entry["path"]), audio, rng))
    return pieces


def synthesize_backchannels(
    tts: Synthesizer, phrases: Sequence[str] = BACKCHANNEL_PHRASES, voice: str = BACKCHANNEL_VOICE
) -> list[Clip]:
    """Backchannel clips spoken by ``tts`` (TTS, not a human: labelled so in ``source``).

    Args:
        tts: a synthesizer already set to ``voice``.
        phrases: what to say, one clip each.
        voice: the voice name, for the label.

    Raises:
        ValueError: a phrase produced no sound.
    """
    clips: list[Clip] = []
    for phrase in phrases:
        audio = np.concatenate(
            [np.zeros(0, dtype=np.int16), *(chunk.audio for chunk in tts.synthesize(phrase))]
        )
        onset, end = sound_bounds(audio)
        clips.append(
            Clip(
                name=f"tts:{phrase}",
                kind="backchannel",
                audio=audio,
                onset_sample=onset,
                end_sample=end,
                source=f"espeak-ng TTS (voice {voice})",
                transcript=phrase,
            )
        )
    return clips


# --------------------------------------------------------------------------- plans


def _cycle(items: Sequence[Clip], rng: random.Random) -> Iterator[Clip]:
    """Endless seeded rotation: every item once per pass, reshuffled each pass."""
    if not items:
        raise ValueError("no clips to draw from")
    while True:
        order = list(items)
        rng.shuffle(order)
        yield from order


def plan_scenarios(
    questions: Sequence[Clip],
    cut_ins: Sequence[Clip],
    noises: Sequence[Clip],
    backchannels: Sequence[Clip],
    offsets_ms: Sequence[float],
    seed: int,
    quick: bool = False,
) -> list[Scenario]:
    """The scenarios of a run.

    Full: for ``clean`` and ``echo+aec``, every offset × every event kind; for ``echo`` (no
    AEC, where the agent's own voice stops it within the first 300 ms whatever happens later)
    one scenario per event kind at the second offset. Quick: ``clean`` cut-ins at the first two
    offsets, a noise and a backchannel at the first; one ``echo`` and one ``echo+aec`` cut-in.
    Clips of each kind rotate in a seeded order; a cut-in is never the question's own clip
    (when there is another).

    Raises:
        ValueError: no offsets, or an empty clip list.
    """
    if not offsets_ms:
        raise ValueError("give at least one offset (ms after the reply's playout start)")
    # One generator per pool: adding a recording of one kind leaves the others' order alone.
    pools = {
        "question": _cycle(questions, random.Random(f"{seed}:question")),
        "cut-in": _cycle(cut_ins, random.Random(f"{seed}:cut-in")),
        "noise": _cycle(noises, random.Random(f"{seed}:noise")),
        "backchannel": _cycle(backchannels, random.Random(f"{seed}:backchannel")),
    }
    second = offsets_ms[1] if len(offsets_ms) > 1 else offsets_ms[0]
    plan: list[tuple[Condition, EventKind, float]] = []
    if quick:
        plan += [(CLEAN, "cut-in", offsets_ms[0]), (CLEAN, "cut-in", second)]
        plan += [(CLEAN, "noise", offsets_ms[0]), (CLEAN, "backchannel", offsets_ms[0])]
        plan += [(ECHO, "cut-in", offsets_ms[0]), (ECHO_AEC, "cut-in", offsets_ms[0])]
    else:
        for condition in (CLEAN, ECHO_AEC):
            plan += [(condition, k, off) for off in offsets_ms for k in EVENT_KINDS]
        plan += [(ECHO, k, second) for k in EVENT_KINDS]
    scenarios: list[Scenario] = []
    for i, (condition, kind, offset) in enumerate(plan, 1):
        question = next(pools["question"])
        event = next(pools[kind])
        if event.name == question.name and len(cut_ins) > 1:
            event = next(pools[kind])  # the user does not repeat the question
        scenarios.append(
            Scenario(
                scenario_id=f"{i:02d}-{condition.name}-{kind}-{offset / 1000:g}s",
                condition=condition,
                question=question,
                kind=kind,
                event=event,
                offset_ms=float(offset),
            )
        )
    return scenarios


# --------------------------------------------------------------------------- tracks


def build_track(
    question: Clip,
    lead_ms: float,
    end_ms: float,
    event: Clip | None = None,
    event_onset_ms: float | None = None,
) -> UserTrack:
    """The user track: ``lead_ms`` of silence, the question, and optionally one event.

    Args:
        question: the first utterance; its clip starts at ``lead_ms``.
        lead_ms: silence before the question clip (ms).
        end_ms: the track's length (ms); extended to hold the whole event clip.
        event: the clip placed during the agent's reply, or None; the clip is placed from
            `EVENT_LEAD_MS` before its sound onset (earlier room noise is left out).
        event_onset_ms: where the event's ground-truth sound onset lands (ms of track time).

    Returns:
        The track (int16, 16 kHz) and the ground-truth bounds of its sounds.

    Raises:
        ValueError: the event would start before the question clip ends, or only one of
            ``event`` and ``event_onset_ms`` is given.
    """
    if (event is None) != (event_onset_ms is None):
        raise ValueError("give both event and event_onset_ms, or neither")
    q_start = ms_to_samples(lead_ms)
    q_stop = q_start + len(question.audio)
    length = max(ms_to_samples(end_ms), q_stop)
    e_start = 0
    e_audio = np.zeros(0, dtype=np.int16)
    e_onset = 0
    if event is not None and event_onset_ms is not None:
        # Leading room noise before the sound is cut to `EVENT_LEAD_MS`.
        cut = max(0, event.onset_sample - ms_to_samples(EVENT_LEAD_MS))
        e_audio, e_onset = event.audio[cut:], event.onset_sample - cut
        e_start = ms_to_samples(event_onset_ms) - e_onset
        if e_start < q_stop:
            raise ValueError(
                f"event {event.name} would start at {samples_to_ms(e_start):.0f} ms, before the "
                f"question ends at {samples_to_ms(q_stop):.0f} ms; place it later"
            )
        length = max(length, e_start + len(e_audio))
    audio = np.zeros(length, dtype=np.int16)
    audio[q_start:q_stop] = question.audio
    track = UserTrack(
        audio,
        question_onset_ms=samples_to_ms(q_start + question.onset_sample),
        question_end_ms=samples_to_ms(q_start + question.end_sample),
    )
    if event is None:
        return track
    audio[e_start : e_start + len(e_audio)] = e_audio
    return UserTrack(
        audio,
        question_onset_ms=track.question_onset_ms,
        question_end_ms=track.question_end_ms,
        event_onset_ms=samples_to_ms(e_start + e_onset),
        event_end_ms=samples_to_ms(e_start + e_onset + event.end_sample - event.onset_sample),
    )
