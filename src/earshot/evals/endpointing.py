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
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earshot.audio.frames import samples_to_ms
from earshot.evals.manifest import bundled_data_dir

if TYPE_CHECKING:
    from rich.table import Table

    from earshot.evals.endpointing_data import SyntheticTurn
    from earshot.stt.base import StreamingRecognizer

from earshot.evals.endpointing_replay import (
    Configuration,
    Lane,
    ReplaySettings,
    configurations,
    done_when,
    replay,
    score_lane,
    summarize_run,
)
from earshot.evals.endpointing_trials import (
    DEFAULT_FIXED_MS,
    DEFAULT_SNRS_DB,
    DEFAULT_VADS,
    LATE_MS,
    LEAD_MS,
    MISSED_AFTER_MS,
    PAUSE_MS_RANGE,
    PAUSES_PER_TURN,
    QUICK_CLIPS,
    REFERENCE_FIXED_MS,
    Trial,
    load_data,
    load_speech,
    plan_trials,
    trial_audio,
)

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
    from earshot.evals.outputs import write_eval_outputs

    write_eval_outputs(
        run.options.out_dir,
        "endpointing",
        to_json(run),
        tables_text(run),
        lambda png: plot_results(png, run),
    )


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
