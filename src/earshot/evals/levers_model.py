"""Options, constants and the plan of `earshot eval levers` (no model, no server imported).

One trial per lever (``hedge``, ``cache``, ``preemptive``, ``context``, in ``--levers``
order): each starts its own rig of LLM servers and proxies (`earshot.evals.llm_rig`) and
runs that lever's arms against it, so a trial depends on ``(options, trial)`` alone and the
levers can run in any order or process. The arms of one lever stay in one trial: the hedge
arms are interleaved prompt by prompt (a change in machine load hits every arm alike) and the
delayed hedge learns its percentile from the TTFTs measured so far; a session arm runs one
track off then on; the context arm runs whole calls of one-token requests, on and off in turn.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from earshot.evals.harness import Trial, trial_seed

LEVER_NAMES: tuple[str, ...] = ("hedge", "cache", "preemptive", "context")
DEFAULT_TRIALS = 300
"""Interleaved requests per hedging arm: enough for a p99 (the 3 slowest of 300) whose
bootstrap spread is reported beside it."""
QUICK_TRIALS = 30
MAX_TOKENS = 24
"""Reply cap in the session runs (SmolLM2 replicas): a sentence or two, so runs stay short."""
TRIAL_MAX_TOKENS = 1
"""Reply cap in the TTFT trials: only the first token is measured, so a request costs its
server one token of generation and a cancelled loser leaves nothing queued behind it."""


@dataclass(frozen=True, slots=True)
class LeversOptions:
    """What `earshot eval levers` takes (picklable: Ray ships it to the workers once).

    Attributes:
        out_dir: ``--out``; the session levers write ``runs/<lever>-<off|on>/turns.jsonl`` and
            the servers their logs (``servers/``) there.
        levers: the levers to evaluate, one trial each, in this order.
        trials: LLM requests per hedging arm.
        quick: few trials and utterances (CI).
        seed: the run's seed (each lever's proxy draws and bootstrap use its trial's seed).
        base_urls: running OpenAI-compatible servers (empty: start llama.cpp servers).
        model: model name sent to the servers.
        hedge_percentile: the delayed hedge's percentile of measured TTFT.
        stable_ms: preemptive generation's stable-partial time (ms).
        data_dir: recordings folder (``None``: the bundled recordings).
        n_utterances: recorded callers per session run.
        quiet: no progress lines inside a trial.
    """

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


@dataclass(frozen=True, slots=True)
class LeverTrial:
    """One lever's arms, run against their own rig."""

    lever: str


def check_options(opts: LeversOptions) -> None:
    """Check the options before any trial runs.

    Raises:
        ValueError: an unknown lever or a bad count (the message names the flag).
    """
    unknown = [x for x in opts.levers if x not in LEVER_NAMES]
    if unknown or not opts.levers:
        raise ValueError(
            f"--levers {','.join(opts.levers)!r}: unknown {unknown}; choose from "
            f"{', '.join(LEVER_NAMES)}"
        )
    if opts.trials < 2:
        raise ValueError(f"--trials {opts.trials}: need at least 2 requests per arm")
    if opts.n_utterances < 1:
        raise ValueError(f"--n {opts.n_utterances}: need at least 1 utterance")


def plan(opts: LeversOptions) -> Iterator[Trial[LeverTrial]]:
    """One trial per lever, in ``opts.levers`` order.

    Raises:
        ValueError: bad options (checked before any trial runs).
    """
    check_options(opts)
    for i, lever in enumerate(opts.levers):
        yield Trial(i, lever, trial_seed(opts.seed, lever), LeverTrial(lever))
