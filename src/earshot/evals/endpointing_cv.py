"""Cross-validated end-of-turn figures: every turn scored by a model that never saw its
recording or its noise.

    python -m earshot.evals.endpointing_cv --runs out/obs/endpointing.json
    earshot eval endpointing --data DIR --split cv --language any

The input is the observer lane of `earshot eval endpointing` (every cue at every natural
pause, their compute measured). For each recording ``r`` of the data (leave-one-recording-out):

1. the **calibration folds** are every turn of the other recordings, except those mixed with a
   noise that ``r``'s turns are mixed with (so neither the voice nor the noise of a held-out
   turn is ever calibrated on);
2. the whole model is fitted there (`earshot.evals.endpointing_fit.fit_model`: the a-priori
   oriented head, the pause law, and the threshold chosen by its rule on those folds only);
3. ``r``'s turns, in quiet and in noise, are replayed offline with that model
   (`earshot.evals.endpointing_fit.replay_model`: frame by frame, compute charged).

Every turn thus gets an out-of-fold outcome; the pooled outcomes are reported beside the
fixed-threshold curve replayed on the same pauses, with 95 % bootstrap intervals over turns
(`BOOTSTRAP_SAMPLES` resamples of the turns, model and fixed thresholds on the same resample)
and the share of resamples in which the goal holds (no more cut-offs per turn than fixed
500 ms at a median delay no greater than fixed 300 ms's).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from earshot.evals.endpointing_fit import FIXED_CURVE_MS, L2, fit_model, univariate
from earshot.evals.endpointing_pauses import (
    PauseSet,
    TurnOutcome,
    by_group,
    load_pauses,
    replay_fixed,
    replay_model,
    summarize,
)
from earshot.turns.eot_model import EndOfTurnModel

if TYPE_CHECKING:
    pass

BOOTSTRAP_SAMPLES = 2000
"""Resamples of the turns for the intervals."""

BOOTSTRAP_SEED = 11
"""Seed of the resampling (the intervals are reproducible)."""


@dataclass(slots=True)
class CrossValidation:
    """Out-of-fold outcomes of the model and the fixed curve on the same turns.

    Attributes:
        model: one outcome per turn, each from the fold that held its recording out.
        fixed: fixed threshold (ms) → one outcome per turn.
        folds: per held-out recording: its turns, the chosen setting, training sizes.
        scores: ``(label, out-of-fold logit at the start of the pause with every cue)`` per
            pause, for the combined score's AUC.
        signal_aucs: each cue's AUC in its a-priori direction over every pause (no fitting).
    """

    model: list[TurnOutcome] = field(default_factory=list)
    fixed: dict[float, list[TurnOutcome]] = field(default_factory=dict)
    folds: list[dict[str, Any]] = field(default_factory=list)
    scores: list[tuple[bool, float, bool]] = field(default_factory=list)
    signal_aucs: dict[str, float] = field(default_factory=dict)


def folds(ps: PauseSet) -> list[tuple[str, PauseSet, PauseSet]]:
    """``(recording, held-out turns, calibration turns)`` per recording (see the docstring)."""
    out = []
    for recording in dict.fromkeys(t.recording for t in ps.turns):
        test = {t.trial for t in ps.turns if t.recording == recording}
        noises = {t.noise for t in ps.turns if t.recording == recording and t.noise}
        train = {t.trial for t in ps.turns if t.recording != recording and t.noise not in noises}
        out.append((recording, ps.subset(test), ps.subset(train)))
    return out


def cross_validate(ps: PauseSet, l2: float = L2) -> CrossValidation:
    """Leave-one-recording-out (and its noises) cross-validation of the whole fit.

    Raises:
        ValueError: a fold has too little calibration data (fewer than two recordings).
    """
    if len({t.recording for t in ps.turns}) < 2:
        raise ValueError("cross-validation needs at least two recordings; add speech")
    cv = CrossValidation()
    for recording, test, train in folds(ps):
        model, selection = fit_model(train, l2)
        [outcomes] = replay_model(model, test, [model.threshold]).values()
        cv.model += outcomes
        cv.scores += [
            (p.end, model.logit_at_start(p.features), p.noise is not None) for p in test.pauses
        ]
        cv.folds.append(_fold_doc(recording, test, train, model, selection))
    order = {t.trial: i for i, t in enumerate(ps.turns)}
    cv.model.sort(key=lambda o: order[o.key.trial])
    cv.fixed = {ms: replay_fixed(ps, ms) for ms in FIXED_CURVE_MS}
    cv.signal_aucs = univariate(ps.pauses)
    return cv


def _fold_doc(
    recording: str, test: PauseSet, train: PauseSet, model: EndOfTurnModel, sel: dict[str, Any]
) -> dict[str, Any]:
    head = model.heads[0]
    return {
        "held_out": recording,
        "turns": len(test.turns),
        "calibration_turns": len(train.turns),
        "calibration_pauses": len(train.pauses),
        "threshold": model.threshold,
        "min_silence_ms": model.min_silence_ms,
        "max_silence_ms": model.max_silence_ms,
        "survival_power": model.survival_power,
        "pause_prior_count": model.pause_prior_count,
        "weights": dict(zip(head.features, head.weights, strict=True)),
        "calibration_cutoffs_per_turn": sel["chosen"]["all_cutoffs_per_turn"],
        "calibration_p50_ms": sel["chosen"]["all_p50"],
    }


def _stats(cuts: np.ndarray[Any, Any], delays: np.ndarray[Any, Any]) -> tuple[float, float]:
    ok = delays[~np.isnan(delays)]
    return float(cuts.mean()), float(np.median(ok)) if ok.size else float("nan")


def bootstrap(cv: CrossValidation, group: str) -> dict[str, Any]:
    """Point figures and 95 % bootstrap intervals over the turns of ``group``.

    Returns:
        ``model`` / ``fixed 300`` / ``fixed 500`` → ``{"cutoffs_per_turn": [point, lo, hi],
        "p50_ms": [...]}``, ``goal_share`` (share of resamples where the goal holds) and
        ``turns``; empty when the group has no turn.
    """
    model = by_group(cv.model)[group]
    if not model:
        return {}
    lanes = {"model": model, **{f"fixed {ms:g}": by_group(cv.fixed[ms])[group] for ms in cv.fixed}}
    cuts = {k: np.array([o.cuts for o in v], dtype=np.float64) for k, v in lanes.items()}
    delays = {
        k: np.array([np.nan if o.delay_ms is None else o.delay_ms for o in v])
        for k, v in lanes.items()
    }
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    n = len(model)
    draws = {k: [] for k in lanes}  # type: dict[str, list[tuple[float, float]]]
    for _ in range(BOOTSTRAP_SAMPLES):
        idx = rng.integers(0, n, n)
        for k in lanes:
            draws[k].append(_stats(cuts[k][idx], delays[k][idx]))
    out: dict[str, Any] = {"turns": n}
    for k in lanes:
        point = _stats(cuts[k], delays[k])
        arr = np.array(draws[k])
        lo, hi = np.nanpercentile(arr, [2.5, 97.5], axis=0)
        out[k] = {
            "cutoffs_per_turn": [
                round(point[0], 3),
                round(float(lo[0]), 3),
                round(float(hi[0]), 3),
            ],
            "p50_ms": [round(point[1], 1), round(float(lo[1]), 1), round(float(hi[1]), 1)],
        }
    if "fixed 500" in draws and "fixed 300" in draws:
        m, f5, f3 = (np.array(draws[k]) for k in ("model", "fixed 500", "fixed 300"))
        out["goal_share"] = round(float(np.mean((m[:, 0] <= f5[:, 0]) & (m[:, 1] <= f3[:, 1]))), 3)
    return out


def combined_auc(cv: CrossValidation, group: str) -> float | None:
    """AUC of the out-of-fold combined score (every cue, start of the pause) in ``group``."""
    from earshot.metrics.stats import auc

    rows = [(e, s) for e, s, noisy in cv.scores if group == "all" or noisy == (group == "noise")]
    return auc([s for e, s in rows if e], [s for e, s in rows if not e])


def to_doc(cv: CrossValidation) -> dict[str, Any]:
    """The ``cross_validation`` section of ``endpointing.json``."""
    return {
        "method": "leave one recording out (and the noises its turns are mixed with); the "
        "whole fit and its threshold rule on the calibration folds only; offline replay of the "
        "held-out turns with compute charged",
        "groups": {g: bootstrap(cv, g) for g in ("quiet", "noise", "all")},
        "combined_auc": {g: combined_auc(cv, g) for g in ("quiet", "noise", "all")},
        "signal_aucs_prior_direction": cv.signal_aucs,
        "fixed_curve": {
            g: {f"{ms:g}": summarize(by_group(o)[g]) for ms, o in cv.fixed.items()}
            for g in ("quiet", "noise")
        },
        "folds": cv.folds,
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 done, 2 bad input."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", type=Path, required=True, help="endpointing.json")
    parser.add_argument("--out", type=Path, help="write the section as JSON here")
    args = parser.parse_args(argv)
    try:
        cv = cross_validate(load_pauses(args.runs))
    except (ValueError, OSError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    doc = to_doc(cv)
    from rich.console import Console

    from earshot.evals.endpointing_report import render_cv_table

    Console(width=170).print(render_cv_table(doc))
    if args.out is not None:
        from earshot.audio.io import write_text_atomic

        write_text_atomic(args.out, json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
