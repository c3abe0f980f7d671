"""`earshot eval endpointing` on the harness: its plan (one trial per recording and condition)
and its trial (every turn of that recording replayed through every configuration).

Each trial names a speech recording and a condition (quiet, or a noise at an SNR) by manifest
path; the trial loads them, finds the turns (natural-pause mode: the VAD on the clean
recording; inserted mode: pocketsphinx's words), replays every configuration
(`earshot.evals.endpointing_replay.replay`) and returns one document per turn. Models are
loaded once per process (`_context`). Noise offsets and inserted pauses are seeded by the run's
``--seed`` and the names, so a trial gives the same audio in any process and order; the model
policies' decisions also depend on their measured compute (that is the point: delays include
it), so their numbers vary a little between runs.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earshot.evals.endpointing_trials import (
    QUICK_CLIPS,
    Condition,
    NoiseClip,
    SpeechEntry,
    Trial,
    load_data,
    load_speech,
    load_speech_vad,
    trial_audio,
)
from earshot.evals.harness import Trial as HarnessTrial
from earshot.evals.harness import trial_seed
from earshot.evals.manifest import bundled_data_dir

if TYPE_CHECKING:
    from earshot.evals.endpointing_lanes import ModelResources
    from earshot.evals.endpointing_model import EndpointingOptions
    from earshot.evals.endpointing_replay import Configuration, ReplaySettings
    from earshot.vad.base import VoiceActivityDetector


@dataclass(frozen=True, slots=True)
class EndpointingTrial:
    """One recording in one condition, by manifest path (no audio: picklable and small)."""

    speech: str
    noise: str | None = None
    snr_db: float | None = None
    variant: int = 0

    @property
    def condition_id(self) -> str:
        return "quiet" if self.noise is None else f"{self.noise} @ {self.snr_db:g} dB"


def calibration_split() -> tuple[frozenset[str], frozenset[str]]:
    """Manifest paths of the speech and noise recordings the packaged model was fitted on."""
    import json
    from importlib import resources

    doc = json.loads(
        resources.files("earshot").joinpath("data/endpointing/split.json").read_text("utf-8")
    )
    return frozenset(doc["calibration_speech"]), frozenset(doc["calibration_noise"])


@functools.cache
def _data(data_dir: Path, language: str) -> tuple[dict[str, SpeechEntry], dict[str, NoiseClip]]:
    entries, noises = load_data(data_dir, language)
    return {e.name: e for e in entries}, {n.name: n for n in noises}


def _selected(opts: EndpointingOptions) -> tuple[list[SpeechEntry], list[NoiseClip]]:
    data_dir = opts.data_dir if opts.data_dir is not None else bundled_data_dir()
    by_name, noise_by_name = _data(data_dir, opts.language)
    entries, noises = list(by_name.values()), list(noise_by_name.values())
    if opts.split not in ("all", "cv"):
        cal_speech, cal_noise = calibration_split()
        keep = opts.split == "calibration"
        entries = [e for e in entries if (e.name in cal_speech) == keep]
        noises = [n for n in noises if (n.name in cal_noise) == keep]
        if not entries:
            raise ValueError(
                f"no {opts.split} speech recordings in {data_dir}; "
                "use --split all or another --data"
            )
    if opts.quick:
        entries = sorted(entries, key=lambda e: (len(e.pcm), e.name))[:QUICK_CLIPS]
        entries.sort(key=lambda e: e.name)
    return entries, noises


def plan(opts: EndpointingOptions) -> Iterator[HarnessTrial[EndpointingTrial]]:
    """Every recording in quiet, then with noise (rotated as `plan_trials` describes).

    Raises:
        ValueError: bad options or data (the message names the fix).
    """
    opts.check()
    entries, noises = _selected(opts)
    per_turn = 1 if opts.quick else opts.noises_per_turn
    index = 0
    k = 0
    for entry in entries:
        for variant in range(opts.turns_per_clip):
            trials = [EndpointingTrial(entry.name, variant=variant)]
            if per_turn > 0 and noises:
                picks = dict.fromkeys((k * per_turn + j) % len(noises) for j in range(per_turn))
                chosen = [noises[i] for i in picks]
            else:
                chosen = list(noises)
            for j, noise in enumerate(chosen):
                snrs = (
                    opts.snrs_db if opts.every_snr else (opts.snrs_db[(k + j) % len(opts.snrs_db)],)
                )
                trials += [EndpointingTrial(entry.name, noise.name, snr, variant) for snr in snrs]
            k += 1
            for t in trials:
                trial_id = f"{t.speech}#{t.variant} · {t.condition_id}"
                yield HarnessTrial(index, trial_id, trial_seed(opts.seed, trial_id), t)
                index += 1


@dataclass(slots=True)
class _Context:
    configs: list[Configuration]
    resources: ModelResources
    vads: dict[str, VoiceActivityDetector]
    settings: ReplaySettings


_CONTEXTS: dict[tuple[Any, ...], _Context] = {}


def _context(opts: EndpointingOptions) -> _Context:
    """The configurations and models of these options, built once per process."""
    from earshot.evals.endpointing_model import build_configurations, build_resources
    from earshot.evals.endpointing_replay import ReplaySettings
    from earshot.vad import make_vad

    key = (
        opts.vads,
        opts.fixed_ms,
        opts.policies,
        opts.threshold,
        opts.observe,
        opts.dynamic,
        opts.text_only,
        opts.rules_path,
    )
    if key not in _CONTEXTS:
        configs = build_configurations(opts)
        resources = build_resources([c.endpointer for c in configs])
        for c in configs:  # fail fast on a bad rules/model file or a missing backend
            c.endpointer.build(opts.rules_path, resources)
        _CONTEXTS[key] = _Context(
            configs,
            resources,
            {name: make_vad(name) for name in opts.vads},
            ReplaySettings.from_session(opts.rules_path),
        )
    return _CONTEXTS[key]


def run_trial(opts: EndpointingOptions, trial: HarnessTrial[EndpointingTrial]) -> dict[str, Any]:
    """Replay every turn of the trial's recording in its condition; ``{"turns": [...]}``.

    Raises:
        ValueError: the recording or noise is not in the data folder any more.
        ImportError: a backend a policy needs is not installed (names the extra).
    """
    from earshot.evals.endpointing_model import turn_doc
    from earshot.evals.endpointing_replay import replay
    from earshot.stt import make_stt
    from earshot.stt.pocketsphinx import PocketsphinxRecognizer
    from earshot.vad import make_vad

    ctx = _context(opts)
    data_dir = opts.data_dir if opts.data_dir is not None else bundled_data_dir()
    by_name, noise_by_name = _data(data_dir, opts.language)
    p = trial.params
    entry = by_name[p.speech]
    noise = None if p.noise is None else noise_by_name[p.noise]
    if opts.pauses == "natural":
        clips = load_speech_vad(entry.name, entry.pcm, make_vad("silero"))
    else:
        clips = [load_speech(entry.where, entry.name, entry.pcm, PocketsphinxRecognizer())]
    docs = []
    for clip in clips:
        t = Trial(clip, p.variant, Condition(noise, p.snr_db))
        turn = trial_audio(t, opts.seed)
        lanes = replay(
            turn,
            ctx.configs,
            ctx.vads,
            lambda: make_stt("pocketsphinx"),
            ctx.settings,
            ctx.resources,
        )
        doc = turn_doc(t, turn, lanes)
        doc["language"] = entry.language
        docs.append(doc)
    return {"turns": docs}
