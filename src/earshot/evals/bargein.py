"""`earshot eval bargein`: does the agent stop when talked over, and only then?

Each scenario is a user track built from real recordings (`earshot.evals.bargein_scenarios`): a
question the agent answers at length (a scripted reply of about 11 s, from
``earshot/data/evals/bargein_rules.yaml``), then one event placed ``offset`` after the reply's
first played sample — a *cut-in* (another recorded utterance), a *noise* (0.3–1 s of a recorded
keyboard, tap, hum...), or a *backchannel* ("yeah", synthesized with espeak-ng: the bundled
recordings hold no human one) — under three acoustic conditions: ``clean`` (no echo), ``echo``
(the agent's playout leaks into the microphone through a simulated room, AEC off) and
``echo+aec`` (the same room, WebRTC AEC3 on). To put the event at an exact offset into the
reply, a first pass runs the question alone and reads the reply's ``playout_start``.

The session runs with the real components (Silero VAD, pocketsphinx, espeak-ng, AEC3) on a
`SimulatedClock`; the LLM is the scripted one (simulated by design). What is measured, and
against which ground truth, is defined in `earshot.evals.bargein_score`: cut-in success,
reaction time (session-measured from the VAD onset, and ground truth from the agent track and
the placed recording), heard vs generated words and whether the heard text is exactly the words
played before the stop, false interruptions, resumes, self-interruptions, replies completed
after noise and backchannels, and the ERLE of AEC3 on each echo+aec run's agent track. The
done-when of barge-in: reaction p95 ≤ ``min_interruption_ms`` + 2 frames (240 ms at 200 ms and
20 ms frames), session-measured.

Each scenario is one harness trial (`earshot.evals.harness`): ``--ray`` runs them as Ray tasks,
with the same JSON as a local run under ``--exact-timing``. Modules, in import order: the model
(`bargein_model`: options, constants), the scenarios and the scorer (`bargein_scenarios`,
`bargein_score`), the plan (`bargein_plan`), one trial (`bargein_trial`), the report
(`bargein_report`), and this module (the `Evaluation` and the CLI).

Outputs in ``--out``: ``bargein.json`` (settings, components, summary, every scenario),
``bargein.txt`` (the tables printed on the terminal), ``bargein.png`` (reaction-time
distribution; self- and false interruptions per condition), ``bargein.trials.jsonl`` (one line
per scenario as it finishes). An interrupted run (Ctrl-C, SIGTERM) writes them with the
scenarios done so far.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from earshot.evals.bargein_model import (
    DEFAULT_OFFSETS_MS,
    BargeInOptions,
    BargeInRun,
)
from earshot.evals.bargein_plan import BargeInTrial, plan
from earshot.evals.bargein_report import bargein_run, report
from earshot.evals.bargein_trial import run_trial
from earshot.evals.harness import (
    CommonSettings,
    Evaluation,
    RaySettings,
    add_common_arguments,
    common_settings,
    execute,
    run_cli,
)
from earshot.evals.manifest import bundled_data_dir

__all__ = [
    "EVALUATION",
    "BargeInOptions",
    "BargeInRun",
    "add_arguments",
    "bundled_data_dir",
    "run",
    "run_bargein",
]

HELP = "barge-in on real recordings: reaction time, heard words, false and self-interruptions"
"""One-line help shown by ``earshot eval --help``."""


def _describe(result: Mapping[str, Any]) -> str:
    return str(result["outcome"])


EVALUATION: Evaluation[BargeInOptions, BargeInTrial] = Evaluation(
    name="bargein", plan=plan, run_trial=run_trial, report=report, describe=_describe
)
"""`earshot eval bargein` as the harness runs it: one trial per scenario."""


def run_bargein(opts: BargeInOptions, ray: RaySettings | None = None) -> BargeInRun:
    """Run the eval and write its outputs into ``opts.out_dir``.

    An interrupted run (Ctrl-C, SIGTERM) still writes them, holding the scenarios done so far,
    and returns with ``interrupted=True``.

    Raises:
        ValueError: bad options or data (the message names the fix); an unusable ``out_dir``
            (`earshot.evals.outputs.OutputPathError`).
        AudioFileError: a recording cannot be read.
        HarnessError: a scenario failed, or Ray cannot be used.
    """
    from earshot.evals.harness import HarnessError

    done = execute(EVALUATION, opts, CommonSettings(opts.out_dir, opts.quiet, ray))
    if done.run.failure:
        raise HarnessError(done.run.failure)
    return bargein_run(opts, done.run)


# --------------------------------------------------------------------------- CLI


def _offsets(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) * 1000.0 for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--offsets takes seconds separated by commas, e.g. 0.5,1.5,3,5; got {text!r}"
        ) from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"--offsets must be positive seconds, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `earshot eval bargein`'s flags on ``parser``."""
    from earshot.llm.scripted import DEFAULT_PROFILE, PROFILES

    add_common_arguments(
        parser, default_out="out/eval-bargein", seed_help="clip rotation and noise cuts"
    )
    parser.add_argument(
        "--quick", action="store_true", help="6 scenarios on short clips (for tests, ~30 s)"
    )
    parser.add_argument(
        "--offsets",
        type=_offsets,
        default=DEFAULT_OFFSETS_MS,
        metavar="S,S,...",
        help="event offsets after the reply's first played sample, in seconds "
        "(default 0.5,1.5,3,5)",
    )
    parser.add_argument(
        "--exact-timing",
        action="store_true",
        help="model compute takes no virtual time: reproducible marks (default: charged)",
    )
    parser.add_argument(
        "--min-interruption-ms",
        type=float,
        default=200.0,
        help="user speech during playout that interrupts it (default 200)",
    )
    parser.add_argument(
        "--false-interruption-timeout-ms",
        type=float,
        default=2000.0,
        help="no words this long after a barge-in: resume the reply (default 2000)",
    )
    parser.add_argument(
        "--llm-profile",
        default=DEFAULT_PROFILE,
        choices=sorted(PROFILES),
        help=f"latency profile of the scripted (simulated) LLM (default {DEFAULT_PROFILE})",
    )
    parser.add_argument(
        "--language", default="en", help="manifest language of the speech clips (default en)"
    )


def run(args: argparse.Namespace) -> int:
    """`earshot eval bargein`: 0 done, 1 a scenario failed, 2 bad input, 130/143 interrupted
    (outputs written with the scenarios done)."""
    opts = BargeInOptions(
        out_dir=args.out,
        data_dir=args.data,
        seed=args.seed,
        quick=args.quick,
        offsets_ms=tuple(args.offsets),
        exact_timing=args.exact_timing,
        min_interruption_ms=args.min_interruption_ms,
        false_interruption_timeout_ms=args.false_interruption_timeout_ms,
        llm_profile=args.llm_profile,
        language=args.language,
        quiet=args.quiet,
    )
    return run_cli(EVALUATION, opts, common_settings(args))
