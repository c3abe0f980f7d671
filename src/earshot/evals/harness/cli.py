"""The command-line side every ``earshot eval`` verb shares.

A verb module declares its `Evaluation`, registers its own flags next to
`add_common_arguments`, builds its options from the parsed flags, and returns
``run_cli(evaluation, options, common_settings(args))``. The harness then, in this order:
checks ``--out`` (and Ray, with ``--ray``) before any work, streams the trials (locally or on
Ray), appends each finished trial to ``<out>/<name>.trials.jsonl`` and prints a progress line,
and, when the plan is done or the run is stopped (Ctrl-C, SIGTERM) or a trial fails, writes
``<name>.json``, ``<name>.txt`` and ``<name>.png`` from the trials finished so far.

Exit codes: 0 done; 1 a trial failed or the report says nothing usable was measured; 2 bad
input (flags, data, output path, missing extra), nothing run; 130 Ctrl-C and 143 SIGTERM
(outputs written with the trials done).
"""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from earshot.audio.io import write_text_atomic
from earshot.clock import Stopwatch
from earshot.evals.harness.api import DoneTrial, Evaluation, Report, RunResult
from earshot.evals.harness.errors import HarnessError
from earshot.evals.harness.runner import (
    DEFAULT_RAY_CPUS,
    RaySettings,
    import_ray,
    run_trials,
    shutdown_ray,
)
from earshot.evals.outputs import OutputPathError, TrialLog, check_out_dir, write_eval_outputs
from earshot.outputs import OutputError

O = TypeVar("O")  # noqa: E741
P = TypeVar("P")

LOCAL_RAY = "local"
"""``--ray`` given without an address: start a local Ray."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143


@dataclass(frozen=True, slots=True)
class CommonSettings:
    """The harness's own flags, as parsed.

    Attributes:
        out_dir: ``--out``.
        quiet: ``--quiet``: no progress lines.
        ray: ``--ray [ADDRESS]`` and ``--ray-cpus``; ``None`` runs in this process.
    """

    out_dir: Path
    quiet: bool = False
    ray: RaySettings | None = None


def add_common_arguments(
    parser: argparse.ArgumentParser, *, default_out: str, seed_help: str = "the run's seed"
) -> None:
    """Register ``--out``, ``--data``, ``--seed``, ``--quiet``, ``--ray`` and ``--ray-cpus``."""
    parser.add_argument("--out", type=Path, default=Path(default_out), help="output folder")
    parser.add_argument(
        "--data",
        type=Path,
        help="folder with manifest.jsonl and its recordings (default: the bundled recordings)",
    )
    parser.add_argument("--seed", type=int, default=0, help=f"{seed_help} (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument(
        "--ray",
        nargs="?",
        const=LOCAL_RAY,
        default=None,
        metavar="ADDRESS",
        help="run the trials as Ray tasks: on a local Ray started here (no ADDRESS), or on a "
        "cluster ('auto', HOST:PORT or ray://HOST:10001); same results as without it. "
        "Needs the ray extra: pip install 'earshot[ray]'",
    )
    parser.add_argument(
        "--ray-cpus",
        type=_positive_int,
        default=DEFAULT_RAY_CPUS,
        metavar="N",
        help=f"workers of the local Ray started by --ray (default {DEFAULT_RAY_CPUS})",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}")
    return value


def common_settings(args: argparse.Namespace) -> CommonSettings:
    """`CommonSettings` from the flags `add_common_arguments` registered."""
    ray: RaySettings | None = None
    if args.ray is not None:
        address = None if args.ray == LOCAL_RAY else str(args.ray)
        ray = RaySettings(address=address, num_cpus=args.ray_cpus)
    return CommonSettings(out_dir=args.out, quiet=args.quiet, ray=ray)


def render_text(report: Report) -> str:
    """The report's tables and lines as plain text (what ``<name>.txt`` holds)."""
    from rich.console import Console

    console = Console(file=io.StringIO(), record=True, width=report.text_width, color_system=None)
    for table in report.tables:
        console.print(table)
    for line in report.lines:
        console.print(line, highlight=False, markup=False)
    return console.export_text()


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


@dataclass(frozen=True, slots=True)
class Executed:
    """A run and its report, as `execute` wrote them."""

    run: RunResult
    report: Report
    elapsed_s: float


def execute(evaluation: Evaluation[O, P], options: O, settings: CommonSettings) -> Executed:
    """Check the outputs, run every trial, write every output; the programmatic entry point.

    Raises:
        OutputPathError: ``--out`` cannot be used (nothing has run).
        MissingExtraError: Ray is asked for and not installed (nothing has run).
        HarnessError: Ray cannot be started or reached.
        ValueError: the plan rejects the options or the data.
        OSError: an output cannot be written.
    """
    check_out_dir(settings.out_dir)
    if settings.ray is not None:
        import_ray()
    started = Stopwatch()
    count = 0
    log = TrialLog(settings.out_dir / f"{evaluation.name}.trials.jsonl")
    try:

        def on_done(item: DoneTrial) -> None:
            nonlocal count
            count += 1
            log.append({"index": item.index, "trial": item.trial_id, "result": item.result})
            if not settings.quiet:
                words = evaluation.describe(item.result) if evaluation.describe else ""
                tail = f": {words}" if words else ""
                print(f"[{count}] {item.trial_id}{tail}", file=sys.stderr)

        run = run_trials(evaluation, options, on_done=on_done, ray=settings.ray)
    finally:
        if settings.ray is not None:
            shutdown_ray()
    log.close()  # not on a plan error: an output folder is only made once a trial ran
    elapsed_s = started.elapsed_ms() / 1000.0
    report = evaluation.report(options, run)
    try:
        write_eval_outputs(
            settings.out_dir, evaluation.name, report.doc, render_text(report), report.plot
        )
        for file_name, text in report.files.items():
            write_text_atomic(settings.out_dir / file_name, text)
    except OutputError as exc:  # after the work: a failed write, not a bad --out
        raise OSError(str(exc)) from None
    return Executed(run, report, elapsed_s)


def run_cli(evaluation: Evaluation[O, P], options: O, settings: CommonSettings) -> int:
    """Run ``evaluation`` with ``options`` as the ``earshot eval`` verb does; the exit code.

    Never raises for what a user can cause (bad flags or data, an unusable ``--out``, Ray
    missing or unreachable, a failing trial, Ctrl-C): each ends in a one-line message on
    stderr and its exit code (see the module docstring).
    """
    from earshot.audio.io import AudioFileError

    name = evaluation.name
    try:
        done = execute(evaluation, options, settings)
    except (OutputPathError, HarnessError, AudioFileError, ValueError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    except OSError as exc:
        _error(f"cannot write the outputs into {settings.out_dir}: {exc.strerror or exc}")
        return EXIT_FAILED
    run, report = done.run, done.report
    _print_report(report)
    where = "on Ray" if settings.ray is not None else "locally"
    written = [f"{name}.json", f"{name}.txt", *([f"{name}.png"] if report.plot else [])]
    written += [f"{name}.trials.jsonl", *report.files]
    print(
        f"{len(run.done)} trial(s) in {done.elapsed_s:.1f} s {where}; wrote "
        f"{settings.out_dir}/{', '.join(written)}"
    )
    if run.failure:
        _error(f"{run.failure}; the outputs hold the {len(run.done)} trial(s) done before it")
        return EXIT_FAILED
    if run.interrupted:
        print(f"interrupted ({run.stop_reason}): the outputs hold the trials done so far")
        return EXIT_SIGTERM if run.stop_reason == "SIGTERM" else EXIT_SIGINT
    if report.exit_code != 0:
        _error(report.message or "the run measured nothing usable")
        return report.exit_code
    return EXIT_OK


def _print_report(report: Report) -> None:
    from rich.console import Console

    console = Console()
    for table in report.tables:
        console.print(table)
    for line in report.lines:
        console.print(line, highlight=False, markup=False)
