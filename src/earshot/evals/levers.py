"""`earshot eval levers`: each latency lever off and on, measured, beside the budget model.

Against real LLM servers on 127.0.0.1 — by default two llama.cpp replicas of SmolLM2-135M
(`earshot.evals.llm_rig`), each behind a latency-injecting proxy that draws the first-token
delay from a heavy-tailed distribution shaped on published provider figures
(`earshot.evals.latency_proxy.TailProfile`). Per lever:

* **hedge** — N=2 requests to the two replicas, first token wins, the loser cancelled; and the
  delayed hedge (the second request only after the p-th percentile of the TTFT measured so
  far). Measured on ``--trials`` requests per arm (interleaved, the recorded callers'
  transcripts as prompts): ``llm_ttft`` p50/p95/p99 off vs on, extra requests and cancelled
  streams (waste); projected by the budget model's hedge rule on the measured single-request
  TTFTs (``earshot budget … --lever hedge=2 --simulate``: the first of N independent draws).
* **cache**, **preemptive** — run the recorded callers through the whole session
  (real VAD, end-pointer, STT and TTS) with the lever off and on; TTFAT and per-term change,
  and ``earshot budget --from OFF/turns.jsonl --lever … --simulate`` beside it.

A measured change and a projection disagree when the projection lies outside the measured
change ± its spread (`earshot.evals.levers_stats`); the table marks it with "!".

Each lever is one trial of the harness (`earshot.evals.harness`) with a rig of its own, so
the common flags (``--out --data --seed --quiet --ray``) work as in every ``earshot eval``.
Modules, in import order: `levers_model` (options, plan), `levers_stats` (the comparison),
`levers_report` (JSON, table, chart), `levers_runs` / `levers_session` / `levers_trial` (the
arms), and this module (the `Evaluation` and the CLI).

Outputs in ``--out``: ``levers.json``, ``levers.txt`` (the tables), ``levers.png``,
``levers.trials.jsonl`` (one line per lever as it finishes), each session run's
``turns.jsonl`` under ``runs/<lever>-<off|on>/`` and the servers' logs under ``servers/``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from earshot.evals.harness import Evaluation, add_common_arguments, common_settings, run_cli
from earshot.evals.levers_model import (
    DEFAULT_TRIALS,
    LEVER_NAMES,
    QUICK_TRIALS,
    LeversOptions,
    LeverTrial,
    plan,
)
from earshot.evals.levers_report import report
from earshot.evals.levers_trial import run_trial

__all__ = ["EVALUATION", "HELP", "LeversOptions", "add_arguments", "options_from_args", "run"]

HELP = "each latency lever off vs on against real LLM servers, beside the budget model"


def _describe(result: Mapping[str, Any]) -> str:
    lever = result["result"]
    if result["lever"] == "hedge":
        c = lever["arms"].get("hedge=2", {}).get("comparison")
        rel = None if c is None else c["relative_change"]["p99"]
        return "llm_ttft p99 change " + ("n/a" if rel is None else f"{rel:+.0%}")
    change = lever["comparison"]["change_ms"]["p50"]
    return f"{lever['comparison']['name']} p50 change " + (
        "n/a" if change is None else f"{change:+.0f} ms"
    )


EVALUATION: Evaluation[LeversOptions, LeverTrial] = Evaluation(
    name="levers", plan=plan, run_trial=run_trial, report=report, describe=_describe
)
"""`earshot eval levers` as the harness runs it: one trial per lever."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `earshot eval levers`' flags on ``parser``."""
    add_common_arguments(
        parser, default_out="out/eval-levers", seed_help="proxy draws and bootstrap seed"
    )
    parser.add_argument(
        "--levers",
        default=",".join(LEVER_NAMES),
        help=f"comma-separated levers to evaluate (default: all of {', '.join(LEVER_NAMES)})",
    )
    parser.add_argument(
        "--trials",
        type=int,
        default=None,
        help=f"LLM requests per hedging arm (default {DEFAULT_TRIALS}; --quick {QUICK_TRIALS})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="few trials and utterances, for CI (seconds)"
    )
    parser.add_argument(
        "--llm-base-url",
        action="append",
        default=[],
        metavar="URL",
        help="a running OpenAI-compatible server (repeat for replicas); default: start two "
        "llama.cpp servers on the bundled SmolLM2-135M",
    )
    parser.add_argument("--llm-model", default="smollm2", help="model name sent to the servers")
    parser.add_argument(
        "--hedge-percentile",
        type=float,
        default=90.0,
        help="delayed hedge: send the second request after this percentile of measured TTFT",
    )
    parser.add_argument("--n", type=int, default=8, help="utterances per session run")


def options_from_args(args: argparse.Namespace) -> LeversOptions:
    """The options from the flags (checked by the plan: `levers_model.check_options`)."""
    levers = tuple(x.strip() for x in str(args.levers).split(",") if x.strip())
    trials = (
        args.trials if args.trials is not None else (QUICK_TRIALS if args.quick else DEFAULT_TRIALS)
    )
    return LeversOptions(
        out_dir=args.out,
        levers=levers,
        trials=trials,
        quick=args.quick,
        seed=args.seed,
        base_urls=tuple(args.llm_base_url),
        model=args.llm_model,
        hedge_percentile=args.hedge_percentile,
        data_dir=args.data,
        n_utterances=min(args.n, 4) if args.quick else args.n,
        quiet=args.quiet,
    )


def run(args: argparse.Namespace) -> int:
    """`earshot eval levers`: 0 done, 1 a lever failed (e.g. no server), 2 bad input,
    130/143 interrupted (the levers done so far are written)."""
    return run_cli(EVALUATION, options_from_args(args), common_settings(args))
