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

Outputs in ``--out``: ``levers.json``, ``levers.txt`` (the tables), ``levers.png``, and each
session run's ``turns.jsonl`` under ``runs/<lever>-<off|on>/``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HELP = "each latency lever off vs on against real LLM servers, beside the budget model"

LEVER_NAMES: tuple[str, ...] = ("hedge", "cache", "preemptive")
DEFAULT_TRIALS = 200
QUICK_TRIALS = 30
MAX_TOKENS = 24
"""Reply cap in the session runs (SmolLM2 replicas): a sentence or two, so runs stay short."""
TRIAL_MAX_TOKENS = 8
"""Reply cap in the TTFT trials: only the first token is measured, and a short reply keeps a
cancelled loser's leftover generation from queueing the next request on a shared CPU."""


@dataclass(slots=True)
class LeversOptions:
    """What `earshot eval levers` takes."""

    out_dir: Path = Path("out/eval-levers")
    levers: tuple[str, ...] = LEVER_NAMES
    trials: int = DEFAULT_TRIALS
    quick: bool = False
    seed: int = 0
    base_urls: tuple[str, ...] = ()
    model: str = "smollm2"
    hedge_percentile: float = 90.0
    stable_ms: float = 100.0
    data_dir: Path | None = None
    n_utterances: int = 8
    quiet: bool = False
    results: dict[str, Any] = field(default_factory=dict)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("out/eval-levers"), help="output folder")
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
    parser.add_argument("--seed", type=int, default=0, help="proxy draws and bootstrap seed")
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
    parser.add_argument("--data", type=Path, default=None, help="recordings folder (manifest)")
    parser.add_argument("--n", type=int, default=8, help="utterances per session run")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def options_from_args(args: argparse.Namespace) -> LeversOptions:
    """Validate the flags.

    Raises:
        ValueError: an unknown lever or a bad count (the message names the flag).
    """
    levers = tuple(x.strip() for x in str(args.levers).split(",") if x.strip())
    unknown = [x for x in levers if x not in LEVER_NAMES]
    if unknown or not levers:
        raise ValueError(
            f"--levers {args.levers!r}: unknown {unknown}; choose from {', '.join(LEVER_NAMES)}"
        )
    trials = (
        args.trials if args.trials is not None else (QUICK_TRIALS if args.quick else DEFAULT_TRIALS)
    )
    if trials < 2:
        raise ValueError(f"--trials {trials}: need at least 2 requests per arm")
    if args.n < 1:
        raise ValueError(f"--n {args.n}: need at least 1 utterance")
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
    from earshot.evals.levers_eval import evaluate
    from earshot.evals.llm_rig import RigError

    try:
        opts = options_from_args(args)
        doc, text = evaluate(opts)
    except (ValueError, RigError, ImportError) as exc:
        print(f"earshot eval levers: {exc}", file=sys.stderr)
        return 2
    print(text)
    failed = [name for name, r in doc["levers"].items() if r.get("error")]
    return 1 if failed else 0
