"""Configurations, replay through the session's listener, and scoring for the endpointing eval."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from earshot.audio.frames import Pcm16, samples_to_ms
from earshot.evals.endpointing_lanes import ModelResources, WhisperLaneStt, pause_records

if TYPE_CHECKING:
    from earshot.evals.endpointing_data import SyntheticTurn
    from earshot.session.listener import Listener
    from earshot.stt.base import StreamingRecognizer
    from earshot.turns.detector import EndOfTurn
    from earshot.turns.endpointer import Endpointer
    from earshot.vad.base import VoiceActivityDetector

from earshot.evals.endpointing_trials import (
    LATE_MS,
    MISSED_AFTER_MS,
    QS,
    REFERENCE_FIXED_MS,
)

# --------------------------------------------------------------------------- configurations


@dataclass(frozen=True, slots=True)
class EndpointerSpec:
    """An end-of-turn policy as `earshot.turns.factory.make_endpointer` builds it.

    Attributes:
        kind: "fixed", "smart" or "model".
        silence_ms: fixed only: the threshold (ms).
        dynamic: smart only: dynamic mode.
        acoustic: smart: transcript and acoustic cues (the default), or the transcript alone;
            model: prosody cues on (default) or off.
        text: model only: "lm" (the language-model text score) or "none" (text-free).
        stt: model only: the transcript it reads, "whisper" or "pocketsphinx".
        threshold: model only: P(end) threshold; None: the model file's.
        observe: model only: never end a pause shorter than `MISSED_AFTER_MS` (collects the
            cues of every pause for AUCs and refitting; not a policy). Its Whisper text is
            offered at once (it measures what the text says, not when it arrives).
        charge_stt: model with Whisper: offer the text only after its measured decode time
            (False: at once, an upper bound for an STT that keeps up).
    """

    kind: str
    silence_ms: float = REFERENCE_FIXED_MS
    dynamic: bool = False
    acoustic: bool = True
    text: str = "lm"
    stt: str = "whisper"
    threshold: float | None = None
    observe: bool = False
    charge_stt: bool = True

    @property
    def label(self) -> str:
        if self.kind == "fixed":
            return f"fixed {self.silence_ms:g} ms"
        if self.kind == "model":
            parts = [self.stt + "+LM" if self.text == "lm" else "no text"]
            if not self.acoustic:
                parts.append("no prosody")
            if not self.charge_stt and not self.observe:
                parts.append("STT time not charged")
            if self.threshold is not None:
                parts.append(f"θ={self.threshold:g}")
            return ("observe" if self.observe else "model") + f" ({', '.join(parts)})"
        label = "+".join(["smart", *(["dynamic"] if self.dynamic else [])])
        return label if self.acoustic else f"{label} (text only)"

    @property
    def reads_text(self) -> bool:
        return self.kind == "smart" or (self.kind == "model" and self.text == "lm")

    def build(self, rules_path: Path | None, resources: ModelResources | None = None) -> Endpointer:
        from earshot.turns.factory import make_endpointer

        if self.kind == "fixed":
            return make_endpointer("fixed", silence_ms=self.silence_ms)
        if self.kind == "model":
            from dataclasses import replace

            from earshot.turns.eot_model import load_model
            from earshot.turns.model_endpointer import ModelEndpointer

            r = resources if resources is not None else ModelResources()
            model = load_model()
            threshold = self.threshold
            if self.observe:
                model = replace(model, max_silence_ms=MISSED_AFTER_MS - 100.0)
                threshold = 1.0 - 1e-12
            return ModelEndpointer(
                model,
                threshold=threshold,
                scorer=(
                    None
                    if self.text != "lm"
                    else (r.observer_scorer or r.scorer)
                    if self.observe
                    else r.scorer
                ),
                prosody=self.acoustic,
                now_ms=r.now_ms,
            )
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
    vads: Sequence[str],
    fixed_ms: Sequence[float],
    dynamic: bool,
    text_only: bool,
    smart: bool = True,
    models: Sequence[EndpointerSpec] = (),
) -> list[Configuration]:
    """Per VAD: each fixed threshold, then smart (and its dynamic / text-only variants), then
    the model policies."""
    specs = [EndpointerSpec("fixed", ms) for ms in fixed_ms]
    specs += [EndpointerSpec("smart")] if smart else []
    specs += list(models)
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


@dataclass(slots=True)
class Lane:
    """One configuration's run through one track: the session's listener and what it did.

    Attributes:
        listener: the session's `Listener`, with the configuration's policy as its end-of-turn
            policy (and, for a policy that reads text, the lane's STT as its partial source).
        decisions: every end of turn as ``{"decided_at_ms", "speech_end_ms", "partial",
            "reason"}`` (partial and reason for policies that read text).
        discarded: voiced stretches too short to be a turn.
    """

    config: Configuration
    endpointer: Endpointer
    listener: Listener
    stt: LaneStt | WhisperLaneStt | None
    decisions: list[dict[str, Any]] = field(default_factory=list)
    observed_at_ms: list[float] = field(default_factory=list)
    """Model policies: end of the frame on which each pause observation was first asked."""
    discarded: int = 0
    finished: bool = False
    frame_index: int = 0
    """The frame being decided (what the partial source transcribes up to)."""

    def partial(self) -> str:
        """The lane's STT partial as frame `frame_index` arrives (the listener's source)."""
        return self.stt.partial(self.frame_index) if self.stt is not None else ""


def replay(
    turn: SyntheticTurn,
    configs: Sequence[Configuration],
    vads: dict[str, VoiceActivityDetector],
    make_recognizer: Callable[[], StreamingRecognizer],
    settings: ReplaySettings,
    resources: ModelResources | None = None,
) -> list[Lane]:
    """Run every configuration over ``turn`` frame by frame through the session's `Listener`.

    Each configuration gets its own listener (the session's, built with its settings), fed
    as ``Session._input_worker`` feeds it: the front end (VAD) once per VAD and frame (the
    detectors are stateful and shared by the configurations that name them), then
    `Listener.decide` per configuration, with no agent playing.

    Args:
        turn: the track and its ground truth.
        configs: the configurations, each run with a fresh policy and listener.
        vads: a detector per VAD name in ``configs`` (reset before use).
        make_recognizer: builds a streaming recognizer for each configuration that reads the
            transcript.
        settings: frame size, thresholds, pre-roll, rules.
        resources: what model policies share (language model, Whisper, compute clock).

    Returns:
        One `Lane` per configuration, in order. The replay stops once every configuration has
        ended the turn at or after its true end, or `MISSED_AFTER_MS` after the true end.
    """
    from earshot.audio.frames import samples_per_frame
    from earshot.session.listener import (
        Listener,
        UserTurnDiscarded,
        UserTurnEnded,
        UserTurnStarted,
    )
    from earshot.turns.model_endpointer import ModelEndpointer

    frame_ms = settings.frame_ms
    n = samples_per_frame(frame_ms)
    true_end_ms = turn.turn_end_ms
    num_frames = min(math.ceil((true_end_ms + MISSED_AFTER_MS) / frame_ms), len(turn.pcm) // n)
    frames = [turn.pcm[i * n : (i + 1) * n] for i in range(num_frames)]
    pre_roll_frames = int(settings.pre_roll_ms // frame_ms)
    lanes: list[Lane] = []
    r = resources if resources is not None else ModelResources()
    for config in configs:
        spec = config.endpointer
        endpointer = spec.build(settings.rules_path, r)
        stt: LaneStt | WhisperLaneStt | None = None
        if spec.reads_text and spec.kind == "model" and spec.stt == "whisper":
            if r.whisper is None:
                raise ValueError(f"{spec.label} reads Whisper text, but no Whisper was loaded")
            stt = WhisperLaneStt(
                r.whisper,
                frames,
                pre_roll_frames,
                frame_ms,
                r.now_ms,
                charge=spec.charge_stt and not spec.observe,
            )
        elif spec.reads_text:
            stt = LaneStt(make_recognizer, frames, pre_roll_frames)
        listener = Listener(
            vads[config.vad],
            endpointer,
            frame_ms=frame_ms,
            vad_threshold=settings.vad_threshold,
            min_speech_ms=settings.min_speech_ms,
            pre_roll_ms=settings.pre_roll_ms,
        )
        lane = Lane(config, endpointer, listener, stt)
        if stt is not None:
            listener.partial_source = lane.partial
        lanes.append(lane)
    front_ends: dict[str, list[tuple[Pcm16, float]]] = {}
    for lane in lanes:
        if lane.config.vad not in front_ends:
            lane.listener.vad.reset()
            front_ends[lane.config.vad] = [lane.listener.front_end(f) for f in frames]
    for i in range(num_frames):
        start_ms, end_ms = i * frame_ms, (i + 1) * frame_ms
        for lane in lanes:
            if lane.finished:
                continue
            lane.frame_index = i
            clean, prob = front_ends[lane.config.vad][i]
            events = lane.listener.decide(clean, prob, float(start_ms), False, float(end_ms))
            if isinstance(lane.endpointer, ModelEndpointer):
                while len(lane.observed_at_ms) < lane.endpointer.pauses_started:
                    lane.observed_at_ms.append(end_ms)
            for event in events:
                match event:
                    case UserTurnStarted():
                        if lane.stt is not None:
                            lane.stt.turn_started(i)
                    case UserTurnDiscarded():
                        lane.discarded += 1
                        if lane.stt is not None:
                            lane.stt.turn_ended(i)
                    case UserTurnEnded(eot=eot):
                        lane.decisions.append(_decision(eot, lane, lane.listener.partial))
                        if lane.stt is not None:
                            lane.stt.turn_ended(i)
                        lane.finished = eot.decided_at_ms >= true_end_ms
                    case _:
                        pass
        if all(lane.finished for lane in lanes):
            break
    return lanes


def lane_pauses(lane: Lane, true_end_ms: float, onset_ms: float) -> list[dict[str, Any]]:
    """A model lane's labelled pause observations (`pause_records`); [] for other policies."""
    from earshot.turns.model_endpointer import ModelEndpointer

    if not isinstance(lane.endpointer, ModelEndpointer):
        return []
    lane.endpointer.on_turn_end()  # close a pause still open when the replay stopped
    n = len(lane.endpointer.observations)
    return pause_records(lane.endpointer, lane.observed_at_ms[:n], true_end_ms, onset_ms)


def _ms(value: float) -> float:
    """A time to the µs; a whole number of ms as an int (the records are on the frame grid)."""
    rounded = round(float(value), 3)
    return int(rounded) if rounded.is_integer() else rounded


def _decision(event: EndOfTurn, lane: Lane, partial: str) -> dict[str, Any]:
    decision: dict[str, Any] = {
        "decided_at_ms": _ms(event.decided_at_ms),
        "speech_end_ms": _ms(event.speech_end_ms),
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
        "false_cutoffs_per_turn": (
            round(sum(len(r["false_cutoffs"]) for r in rows) / turns, 4) if turns else 0.0
        ),
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
