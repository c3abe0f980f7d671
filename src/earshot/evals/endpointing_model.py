"""The model of `earshot eval endpointing`: its options, its run, the policies it compares,
and the per-turn document a trial produces; the plan, the report and the verb import this
(imports go one way: model → plan / report → verb)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earshot.audio.frames import samples_to_ms
from earshot.evals.endpointing_replay import (
    Configuration,
    EndpointerSpec,
    Lane,
    ReplaySettings,
    configurations,
    lane_pauses,
    score_lane,
)
from earshot.evals.endpointing_trials import (
    DEFAULT_FIXED_MS,
    DEFAULT_SNRS_DB,
    DEFAULT_VADS,
    LEAD_MS,
    Trial,
)

if TYPE_CHECKING:
    from earshot.evals.endpointing_data import SyntheticTurn
    from earshot.evals.endpointing_lanes import ModelResources


POLICIES: dict[str, EndpointerSpec] = {
    "smart": EndpointerSpec("smart"),
    "model": EndpointerSpec("model"),
    "model-no-text": EndpointerSpec("model", text="none"),
    "model-pocketsphinx": EndpointerSpec("model", stt="pocketsphinx"),
    "model-no-prosody": EndpointerSpec("model", acoustic=False),
    "model-stt-uncharged": EndpointerSpec("model", charge_stt=False),
}
"""``--policies`` names → policies compared with the fixed curve. ``model-stt-uncharged`` is an
upper bound, not a deployable setting: Whisper's transcript is offered as soon as the pause
starts (an STT that keeps up), while the LM and prosody compute are still charged."""

DEFAULT_POLICIES: tuple[str, ...] = ("smart", "model", "model-no-text")

SPLITS = ("held-out", "calibration", "all", "cv")
"""``cv``: every recording, plus the cross-validated model figures
(`earshot.evals.endpointing_cv`) from the observer lane."""


@dataclass(slots=True)
class EndpointingOptions:
    """Everything `earshot eval endpointing` takes (the CLI's flags).

    Attributes:
        out_dir: where the outputs go.
        data_dir: folder with ``manifest.jsonl``; None: the bundled recordings.
        seed: pause placement (inserted mode) and noise offsets (>= 0).
        quick: the `QUICK_CLIPS` shortest recordings, each in quiet and one noise.
        pauses: "natural" (the recordings' own pauses, VAD ground truth) or "inserted".
        split: "held-out", "calibration" or "all" (see the module docstring).
        vads: VAD backends, each run with every policy.
        fixed_ms: fixed thresholds (ms).
        policies: `POLICIES` names run beside the fixed curve.
        threshold: the model policies' P(end) threshold; None: the model file's.
        observe: also run the observer lane (per-signal AUCs, refitting data).
        dynamic, text_only: also run the smart end-pointer's dynamic / text-only variant.
        rules_path: smart-policy rules file; None: the packaged rules.
        snrs_db: SNRs of the noise-mixed turns (dB).
        every_snr: mix each turn with each noise at every SNR (default: one, rotated).
        noises_per_turn: mix each turn with this many noises, rotated (0: every noise).
        turns_per_clip: turns built from each recording (inserted mode: each its own pauses).
        language: manifest language of the speech recordings.
        quiet: no progress lines.
    """

    out_dir: Path = Path("out/eval-endpointing")
    data_dir: Path | None = None
    seed: int = 0
    quick: bool = False
    pauses: str = "natural"
    split: str = "held-out"
    vads: tuple[str, ...] = DEFAULT_VADS
    fixed_ms: tuple[float, ...] = DEFAULT_FIXED_MS
    policies: tuple[str, ...] = DEFAULT_POLICIES
    threshold: float | None = None
    observe: bool = True
    dynamic: bool = False
    text_only: bool = False
    rules_path: Path | None = None
    snrs_db: tuple[float, ...] = DEFAULT_SNRS_DB
    every_snr: bool = False
    noises_per_turn: int = 0
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
        for p in self.policies:
            if p not in POLICIES:
                raise ValueError(f"unknown --policies {p!r}; choose from {', '.join(POLICIES)}")
        if self.pauses not in ("natural", "inserted"):
            raise ValueError(f"--pauses must be natural or inserted, got {self.pauses!r}")
        if self.split not in SPLITS:
            raise ValueError(f"--split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.split == "cv" and not self.observe:
            raise ValueError("--split cv needs the observer lane; drop --no-observe")
        if self.threshold is not None and not 0 < self.threshold < 1:
            raise ValueError(f"--threshold must be in (0, 1), got {self.threshold}")
        if any(ms <= 0 for ms in self.fixed_ms):
            raise ValueError(f"--fixed-ms thresholds must be > 0 ms, got {self.fixed_ms}")
        if not self.snrs_db:
            raise ValueError("give at least one SNR with --snrs, e.g. 20,10,5")
        if self.turns_per_clip < 1:
            raise ValueError(f"--turns-per-clip must be >= 1, got {self.turns_per_clip}")
        if self.noises_per_turn < 0:
            raise ValueError(f"--noises-per-turn must be >= 0, got {self.noises_per_turn}")

    def model_specs(self) -> list[EndpointerSpec]:
        """The model and smart policies asked for, then the observer lane."""
        from dataclasses import replace

        specs = [
            replace(POLICIES[p], threshold=self.threshold)
            if POLICIES[p].kind == "model"
            else POLICIES[p]
            for p in self.policies
            if p != "smart"
        ]
        if self.observe:
            specs.append(EndpointerSpec("model", observe=True))
        return specs


@dataclass(slots=True)
class EndpointingRun:
    """A finished (or interrupted) end-pointing eval.

    Attributes:
        options: what was asked for.
        configs: the configurations compared, in report order.
        planned: trials the plan yielded.
        turns: one document per trial run so far (see `_turn_doc`).
        components: stage → backend.
        settings: the session settings replayed.
        summary: `summarize_run` of ``turns``.
        aucs: per condition group (all, quiet, noise) → `signal_aucs`.
        compute: per compute stage → ``{"n", "p50_ms", "p95_ms"}``.
        verdicts: `goal_verdicts` of ``summary``.
        cv: ``--split cv``: `earshot.evals.endpointing_cv.to_doc` of the observer pauses.
        interrupted: stopped by Ctrl-C before every trial ran.
    """

    options: EndpointingOptions
    configs: list[Configuration] = field(default_factory=list)
    planned: int = 0
    turns: list[dict[str, Any]] = field(default_factory=list)
    components: dict[str, str] = field(default_factory=dict)
    settings: ReplaySettings = field(default_factory=ReplaySettings)
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    aucs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    compute: dict[str, dict[str, Any]] = field(default_factory=dict)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    cv: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False


def turn_doc(trial: Trial, turn: SyntheticTurn, lanes: Sequence[Lane]) -> dict[str, Any]:
    from earshot.evals.endpointing_lanes import WhisperLaneStt
    from earshot.turns.eot_model import load_model

    onset_ms = LEAD_MS + samples_to_ms(trial.clip.onset_sample)
    c = trial.condition
    doc: dict[str, Any] = {
        "turn": trial.turn_id,
        "source": trial.clip.name,
        "condition": c.label,
        "noise": None if c.noise is None else c.noise.label,
        "noise_file": None if c.noise is None else c.noise.name,
        "snr_db": c.snr_db,
        "true_end_source": trial.clip.end_source,
        "words": trial.clip.words,
        "onset_ms": round(onset_ms, 3),
        "true_end_ms": round(turn.turn_end_ms, 3),
        "natural_pauses": [
            {"start_ms": round(LEAD_MS + samples_to_ms(a), 3), "ms": round(samples_to_ms(b - a))}
            for a, b in trial.clip.pauses
        ],
        "inserted_pauses": [
            {"start_ms": round(samples_to_ms(p.start_sample), 3), "ms": round(p.duration_ms, 3)}
            for p in turn.pauses
        ],
        "results": {},
    }
    model = load_model()
    for lane in lanes:
        result = score_lane(lane, turn, onset_ms)
        records = lane_pauses(lane, turn.turn_end_ms, onset_ms)
        for r in records:
            from earshot.turns.eot_model import PauseFeatures

            r["p_end_at_start"] = round(model.logit_at_start(PauseFeatures(**r["features"])), 4)
        if records:
            result["pauses"] = records
        stt = lane.stt
        if isinstance(stt, WhisperLaneStt):
            result["stt_decode_ms"] = [round(v, 2) for v in stt.decode_ms]
            result["stt_charged"] = stt.charged
        doc["results"][lane.config.label] = result
    return doc


def build_configurations(opts: EndpointingOptions) -> list[Configuration]:
    """The configurations of a run, in report order."""
    return configurations(
        opts.vads,
        opts.fixed_ms,
        opts.dynamic,
        opts.text_only,
        smart="smart" in opts.policies,
        models=opts.model_specs(),
    )


def build_resources(specs: Sequence[EndpointerSpec]) -> ModelResources:
    """The language model and Whisper the model policies among ``specs`` need (loaded here)."""
    from earshot.clock import SystemClock
    from earshot.evals.endpointing_lanes import ModelResources, WhisperTranscriber

    models = [s for s in specs if s.kind == "model"]
    r = ModelResources(now_ms=SystemClock().now_ms)
    if any(s.text == "lm" for s in models):
        from earshot.turns.eot_features import LmTurnScorer

        r.scorer = LmTurnScorer()
        if any(s.text == "lm" and s.observe for s in models) and any(
            s.text == "lm" and not s.observe for s in models
        ):
            r.observer_scorer = LmTurnScorer()
    if any(s.text == "lm" and s.stt == "whisper" for s in models):
        r.whisper = WhisperTranscriber()
    return r
