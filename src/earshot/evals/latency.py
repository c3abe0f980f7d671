"""`earshot eval latency`: time every stage of the streaming loop over N real utterances.

The measurement exercise of the streaming-architecture literature: N utterances (default 20)
through the full loop — VAD, end-of-turn, streaming STT, LLM, sentence chunker, streaming TTS,
jitter buffer — with a timestamp at end-of-turn, STT final, LLM first token, TTS first audio
and the first played sample, reporting p50/p95 of each stage delta and of end-to-end TTFAT
(time from the end of the user's speech to the first agent sample played).

The utterances are recordings listed in a folder's ``manifest.jsonl`` (default: the bundled
``earshot/data``): one JSON object per line with at least ``path`` (relative to the folder),
``kind`` (only ``"speech"`` entries are used), ``duration_s`` and ``language``
(``transcript`` is optional here). N of them are drawn in a seeded order (cycling through the
pool when it is smaller than N). Each is one trial of the harness (`earshot.evals.harness`):
its own caller track (the recording between silences) through its own `Session`, so a reply
never queues behind the previous one and the trials can run in any order, locally or as Ray
tasks (``--ray``). By default the session runs on a `SimulatedClock`, which skips idle waits
but charges the measured compute of every model call (realistic latencies, faster than real
time); ``--exact-timing`` charges no compute (every mark a function of the audio: the same JSON
on every run and on Ray); ``--real-time`` paces it on the system clock.

The stage deltas (`STAGES`) are consecutive differences of the turn's marks, from
``speech_end`` to ``playout_start``, so for a file transport (no network terms) they sum to
TTFAT exactly. Percentiles are over complete turns only (every mark present).

Modules, in import order: `latency_model` (options, stages, the pure scorer), `latency_plan`
(the utterances), `latency_trial` (one session), `latency_report` (JSON, table, chart), and this
module (the `Evaluation` and the CLI).

Outputs in ``--out``: ``latency.json`` (settings, components, per-stage and per-term
percentiles, every turn), ``latency.png`` (p50/p95 per stage), ``latency.txt`` (the table
printed on the terminal), ``latency.trials.jsonl`` (one line per utterance as it finishes) and
``turns.jsonl`` (every turn, numbered across the run, for ``earshot budget --from``). An
interrupted run (Ctrl-C, SIGTERM) writes all of them with the utterances done so far.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from earshot.evals.harness import (
    CommonSettings,
    Evaluation,
    HarnessError,
    RaySettings,
    add_common_arguments,
    common_settings,
    execute,
    run_cli,
)
from earshot.evals.latency_model import (
    DEFAULT_GAP_MS,
    DEFAULT_N,
    QUICK_MAX_DURATION_S,
    QUICK_N,
    STAGES,
    LatencyOptions,
    LatencyRun,
    reply_waits_ms,
    stage_deltas,
    summarize_stages,
)
from earshot.evals.latency_plan import LatencyTrial, load_manifest, plan, select_utterances
from earshot.evals.latency_report import latency_run, report
from earshot.evals.latency_trial import run_trial
from earshot.evals.manifest import bundled_data_dir
from earshot.stacks import add_stack_arguments, resolve_stack

__all__ = [
    "EVALUATION",
    "STAGES",
    "LatencyOptions",
    "LatencyRun",
    "add_arguments",
    "bundled_data_dir",
    "load_manifest",
    "reply_waits_ms",
    "run",
    "run_latency",
    "select_utterances",
    "stage_deltas",
    "summarize_stages",
]

HELP = "time each stage of the loop over N real utterances; p50/p95 per stage and of TTFAT"
"""One-line help shown by ``earshot eval --help``."""


def _describe(result: Mapping[str, Any]) -> str:
    ttfats = [t["ttfat_ms"] for t in result["turns"] if t["ttfat_ms"] is not None]
    if not ttfats:
        return f"{len(result['turns'])} turn(s), none complete"
    return f"{len(result['turns'])} turn(s), TTFAT " + ", ".join(f"{v:,.0f}" for v in ttfats)


EVALUATION: Evaluation[LatencyOptions, LatencyTrial] = Evaluation(
    name="latency", plan=plan, run_trial=run_trial, report=report, describe=_describe
)
"""`earshot eval latency` as the harness runs it: one trial per utterance."""


def run_latency(opts: LatencyOptions, ray: RaySettings | None = None) -> LatencyRun:
    """Run the eval and write its outputs into ``opts.out_dir``.

    An interrupted run (Ctrl-C, SIGTERM) still writes them, holding the utterances done so
    far, and returns with ``interrupted=True``.

    Raises:
        ValueError: bad options or data (the message names the fix); an unusable ``out_dir``
            (`earshot.evals.outputs.OutputPathError`).
        AudioFileError: a recording cannot be read.
        HarnessError: a trial failed, or Ray cannot be used.
    """
    done = execute(EVALUATION, opts, CommonSettings(opts.out_dir, opts.quiet, ray))
    if done.run.failure:
        raise HarnessError(done.run.failure)
    return latency_run(opts, done.run)


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `earshot eval latency`'s flags on ``parser``."""
    from earshot.llm.scripted import DEFAULT_PROFILE, PROFILES

    parser.add_argument(
        "--n", type=int, default=DEFAULT_N, help=f"utterances to run (default {DEFAULT_N})"
    )
    add_common_arguments(
        parser, default_out="out/eval-latency", seed_help="selection order and scripted-LLM seed"
    )
    parser.add_argument(
        "--language", default="en", help="manifest language of the utterances (default en)"
    )
    parser.add_argument("--vad", default="silero", choices=("silero", "webrtc"), help="VAD backend")
    add_stack_arguments(parser)
    parser.add_argument("--llm", choices=("scripted", "local"), help="LLM (overrides --stack)")
    parser.add_argument(
        "--endpointer", default="fixed", choices=("fixed", "smart"), help="end-of-turn policy"
    )
    parser.add_argument(
        "--eot-silence-ms",
        type=float,
        default=500.0,
        help="silence after speech that ends a turn (fixed endpointer; default 500)",
    )
    parser.add_argument(
        "--llm-profile",
        default=DEFAULT_PROFILE,
        choices=sorted(PROFILES),
        help=f"latency profile of the scripted (simulated) LLM (default {DEFAULT_PROFILE})",
    )
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=DEFAULT_GAP_MS,
        help="silence after the utterance on its trial's track; the session then runs until the "
        f"reply has played (default {DEFAULT_GAP_MS:g})",
    )
    parser.add_argument(
        "--real-time",
        action="store_true",
        help="pace on the system clock (default: simulated clock, compute charged, faster)",
    )
    parser.add_argument(
        "--exact-timing",
        action="store_true",
        help="model compute takes no virtual time: reproducible marks, the same on Ray "
        "(default: charged at its measured duration)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_N} short utterances (at most {QUICK_MAX_DURATION_S:g} s each), for tests",
    )


def run(args: argparse.Namespace) -> int:
    """`earshot eval latency`: 0 done, 1 nothing measured or a trial failed, 2 bad input,
    130/143 interrupted (outputs are written in every case but 2)."""
    import sys

    try:
        stack = resolve_stack(args.stack, args.stt, args.llm, args.tts)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    opts = LatencyOptions(
        stack=stack,
        n=args.n,
        seed=args.seed,
        data_dir=args.data,
        out_dir=args.out,
        vad=args.vad,
        endpointer=args.endpointer,
        eot_silence_ms=args.eot_silence_ms,
        llm_profile=args.llm_profile,
        real_time=args.real_time,
        exact_timing=args.exact_timing,
        quick=args.quick,
        gap_ms=args.gap_ms,
        language=args.language,
        quiet=args.quiet,
    )
    return run_cli(EVALUATION, opts, common_settings(args))
