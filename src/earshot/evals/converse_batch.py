"""`earshot eval converse`: `earshot converse` over a folder of recordings, one trial each.

Every recording of ``--data DIR`` — the ``speech`` entries of its ``manifest.jsonl`` when it has
one, else every audio file directly in it (``.wav``, ``.flac``, ``.ogg``, ``.mp3``), in name
order — is played as the caller into its own `earshot.converse.converse` run (scripted LLM,
simulated clock with compute charged; ``--real-time`` paces it on the system clock), which
writes its usual ``conversation.wav``, ``turns.jsonl``, ``report.md`` and ``latency.png`` into
``OUT/recordings/NNNN-<name>/``. The harness streams the folder (never loading every
recording), runs the recordings locally or as Ray tasks (``--ray``; on a cluster, ``--out``
must be a path every worker can write to), and writes ``converse.json`` (per recording: turns,
complete turns, TTFAT p50/p95; over all: the same), ``converse.txt``, ``converse.png`` and
``turns.jsonl`` (every recording's turns, numbered across the folder, for
``earshot budget --from OUT``).

With compute charged, timings are measured and vary from run to run (locally and on Ray
alike); the turns, transcripts and replies do not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earshot.evals.harness import (
    Evaluation,
    Report,
    RunResult,
    Trial,
    add_common_arguments,
    common_settings,
    run_cli,
    trial_seed,
)
from earshot.evals.manifest import MANIFEST_NAME, Recording, iter_manifest
from earshot.metrics.stats import stat_ms

if TYPE_CHECKING:
    from rich.table import Table

HELP = "earshot converse over a folder of recordings (one run each, locally or on Ray)"
"""One-line help shown by ``earshot eval --help``."""

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
"""Audio files taken from a folder without a manifest."""


@dataclass(frozen=True, slots=True)
class BatchOptions:
    """Everything `earshot eval converse` takes.

    Attributes:
        data_dir: the folder of recordings (required).
        out_dir: where the per-recording runs and the summary go.
        vad, endpointer, eot_silence_ms, llm_profile: as `earshot converse`.
        real_time: pace each run on the system clock instead of the simulated clock.
        seed: the scripted LLM's seed is drawn from it per recording.
        quiet: no progress lines.
    """

    data_dir: Path
    out_dir: Path = Path("out/eval-converse")
    vad: str = "silero"
    endpointer: str = "fixed"
    eot_silence_ms: float = 500.0
    llm_profile: str = "gpt-4o-mini"
    real_time: bool = False
    seed: int = 0
    quiet: bool = False


@dataclass(frozen=True, slots=True)
class BatchTrial:
    """One caller recording and the folder its run writes into (relative to ``--out``)."""

    recording: Recording
    run_dir: str


def _recordings(folder: Path) -> Iterator[Recording]:
    if (folder / MANIFEST_NAME).is_file():
        for item in iter_manifest(folder):  # streamed
            if item.entry["kind"] == "speech":
                yield Recording.of(item)
        return
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES):
        yield Recording(path=path, name=path.name)


def plan(opts: BatchOptions) -> Iterator[Trial[BatchTrial]]:
    """One trial per recording, streamed from the folder.

    Raises:
        ValueError: the folder is missing or holds no recording.
    """
    folder = opts.data_dir
    if not folder.is_dir():
        raise ValueError(f"--data {folder}: not a folder; give a folder of recordings")
    index = -1
    for index, recording in enumerate(_recordings(folder)):
        stem = Path(recording.name).with_suffix("").as_posix().replace("/", "_")
        trial_id = f"{index + 1:04d}-{stem}"
        params = BatchTrial(recording, f"recordings/{trial_id}")
        yield Trial(index, trial_id, trial_seed(opts.seed, trial_id), params)
    if index < 0:
        raise ValueError(
            f"--data {folder}: no recordings (no speech entries in {MANIFEST_NAME}, or no "
            f"{'/'.join(AUDIO_SUFFIXES)} files); point it at a folder of recordings"
        )


def run_trial(opts: BatchOptions, trial: Trial[BatchTrial]) -> dict[str, Any]:
    """One `earshot converse` run; its turns as ``turns.jsonl`` objects.

    Raises:
        KeyboardInterrupt: the run was interrupted (its files hold the turns done so far).
        AudioFileError: the recording cannot be read.
    """
    from earshot.converse import ConverseOptions, converse

    rec, run_dir = trial.params.recording, trial.params.run_dir
    result = converse(
        ConverseOptions(
            input_path=rec.path,
            out_dir=opts.out_dir / run_dir,
            vad=opts.vad,
            endpointer=opts.endpointer,
            eot_silence_ms=opts.eot_silence_ms,
            llm="scripted",
            llm_options={"profile": opts.llm_profile, "seed": trial.seed},
            simulated_clock=not opts.real_time,
            quiet=True,
        )
    )
    if result.interrupted:
        raise KeyboardInterrupt
    return {
        "recording": rec.name,
        "run_dir": run_dir,
        "components": result.components,
        "turns": [t.to_json() for t in result.state.turns],
    }


def _ttfats(turns: list[dict[str, Any]]) -> list[float]:
    return [float(t["ttfat_ms"]) for t in turns if t.get("ttfat_ms") is not None]


def to_json(opts: BatchOptions, run: RunResult) -> dict[str, Any]:
    """The ``converse.json`` document."""
    per = []
    all_ttfat: list[float] = []
    for r in run.results:
        ttfats = _ttfats(r["turns"])
        all_ttfat += ttfats
        per.append(
            {
                "recording": r["recording"],
                "run_dir": r["run_dir"],
                "turns": len(r["turns"]),
                "complete_turns": len(ttfats),
                "ttfat": stat_ms(ttfats),
            }
        )
    return {
        "eval": "converse",
        "interrupted": run.interrupted,
        "settings": {
            "data": os.fspath(opts.data_dir),
            "vad": opts.vad,
            "endpointer": opts.endpointer,
            "eot_silence_ms": opts.eot_silence_ms,
            "llm": "scripted",
            "llm_profile": opts.llm_profile,
            "clock": "system (real time)" if opts.real_time else "simulated (compute charged)",
        },
        "components": run.results[0]["components"] if run.results else {},
        "counts": {
            "planned": run.total if run.total is not None else run.planned,
            "recordings": len(per),
            "turns": sum(p["turns"] for p in per),
            "complete_turns": len(all_ttfat),
        },
        "ttfat": stat_ms(all_ttfat),
        "recordings": per,
    }


def _table(doc: dict[str, Any]) -> Table:
    from rich.table import Table

    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:,.0f}"

    status = " — INTERRUPTED, partial" if doc["interrupted"] else ""
    table = Table(title=f"eval converse: {doc['counts']['recordings']} recordings{status}")
    for col in ("recording", "turns", "complete", "TTFAT p50 ms", "TTFAT p95 ms", "run folder"):
        table.add_column(col, justify="left" if col in ("recording", "run folder") else "right")
    for p in doc["recordings"]:
        t = p["ttfat"]
        table.add_row(
            p["recording"], str(p["turns"]), str(p["complete_turns"]),
            fmt(t["p50_ms"]), fmt(t["p95_ms"]), p["run_dir"],
        )  # fmt: skip
    t = doc["ttfat"]
    table.add_section()
    table.add_row(
        "ALL", str(doc["counts"]["turns"]), str(doc["counts"]["complete_turns"]),
        fmt(t["p50_ms"]), fmt(t["p95_ms"]), "",
    )  # fmt: skip
    return table


def _plot(path: Path, doc: dict[str, Any]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from earshot.audio.io import save_figure_atomic

    rows = doc["recordings"]
    fig = Figure(figsize=(8.0, 1.2 + 0.35 * len(rows)), dpi=100)
    FigureCanvasAgg(fig)
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot()
    ys = list(range(len(rows)))[::-1]
    ax.barh(ys, [r["ttfat"]["p95_ms"] or 0.0 for r in rows], color="#9ecae1", label="p95")
    ax.barh(ys, [r["ttfat"]["p50_ms"] or 0.0 for r in rows], color="#3182bd", label="p50")
    ax.set_yticks(ys, [Path(r["recording"]).name[:32] for r in rows], fontsize=7)
    ax.set_xlabel("TTFAT ms")
    ax.set_title(f"TTFAT per recording ({doc['counts']['complete_turns']} turns)", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    save_figure_atomic(fig, path)


def report(opts: BatchOptions, run: RunResult) -> Report:
    """JSON, table, chart and the folder's ``turns.jsonl`` (turns numbered across the folder)."""
    doc = to_json(opts, run)
    lines: list[str] = []
    for r in run.results:
        for t in r["turns"]:
            obj = {**t, "turn": len(lines) + 1, "recording": r["recording"]}
            lines.append(json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n")
    return Report(
        doc=doc,
        tables=[_table(doc)],
        plot=(lambda png: _plot(png, doc)) if run.results else None,
        files={"turns.jsonl": "".join(lines)},
        exit_code=0 if doc["counts"]["complete_turns"] or run.interrupted else 1,
        message="no complete turn in any recording; check that they hold speech the VAD detects",
    )


def _describe(result: Mapping[str, Any]) -> str:
    ttfats = _ttfats(result["turns"])
    return f"{len(result['turns'])} turn(s), {len(ttfats)} complete"


EVALUATION: Evaluation[BatchOptions, BatchTrial] = Evaluation(
    name="converse", plan=plan, run_trial=run_trial, report=report, describe=_describe
)
"""`earshot eval converse` as the harness runs it: one trial per recording."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `earshot eval converse`'s flags on ``parser``."""
    from earshot.llm.scripted import DEFAULT_PROFILE, PROFILES

    add_common_arguments(parser, default_out="out/eval-converse", seed_help="scripted-LLM seeds")
    parser.add_argument("--vad", default="silero", choices=("silero", "webrtc"), help="VAD")
    parser.add_argument(
        "--endpointer", default="fixed", choices=("fixed", "smart"), help="end-of-turn policy"
    )
    parser.add_argument(
        "--eot-silence-ms", type=float, default=500.0, help="fixed end-pointer silence (ms)"
    )
    parser.add_argument(
        "--llm-profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES),
        help="latency profile of the scripted (simulated) LLM",
    )  # fmt: skip
    parser.add_argument(
        "--real-time", action="store_true", help="pace each run on the system clock"
    )


def run(args: argparse.Namespace) -> int:
    """`earshot eval converse`: 0 done, 1 nothing measured or a run failed, 2 bad input."""
    if args.data is None:
        print(
            "error: --data DIR is required: the folder of recordings to converse over",
            file=sys.stderr,
        )
        return 2
    opts = BatchOptions(
        data_dir=args.data,
        out_dir=args.out,
        vad=args.vad,
        endpointer=args.endpointer,
        eot_silence_ms=args.eot_silence_ms,
        llm_profile=args.llm_profile,
        real_time=args.real_time,
        seed=args.seed,
        quiet=args.quiet,
    )
    return run_cli(EVALUATION, opts, common_settings(args))
