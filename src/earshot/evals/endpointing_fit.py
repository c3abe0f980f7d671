"""Refit the end-of-turn model (``earshot/data/endpointing/model.json``) on calibration data.

    python -m earshot.evals.endpointing_fit --data ../shared/data --out model.json
    python -m earshot.evals.endpointing_fit --runs out/cal/endpointing.json --out model.json

With ``--data`` it first runs ``earshot eval endpointing --split calibration --language any``
with only the fixed thresholds and the observer lane (every cue at every natural pause, no
policy deciding); ``--runs`` reuses such runs' ``endpointing.json``. Then, on those labelled
pauses only:

1. **one head, few parameters** (`fit_head`): a logistic regression on the standardised cues
   whose directions are fixed *a priori* (`PRIOR_ORIENTATION`, from the literature, never from
   the data) and whose oriented weights are non-negative and ridge-penalised (`L2`); a
   missing cue is imputed at its neutral value ``z = 0``. Six numbers are fitted, so the
   little calibration data there is cannot teach a cue backwards;
2. **pause law**: a log-normal fitted to the lengths of the mid-turn pauses;
3. **decision defaults** (`choose_setting`): the policy is replayed offline on the same
   pauses (cues become usable when their measured compute has passed; the speaker's pause law
   adapts as it goes) for a grid of thresholds, minimum silences and pause-prior weights; the
   rule: among the settings with no more false cut-offs per turn than fixed 500 ms on these
   pauses (in quiet and in noise), the lowest median delay; if none qualifies, the fewest
   cut-offs.

Recordings not in English join the acoustic calibration (pitch, energy and segment length do
not depend on the language) with their text cue dropped: Whisper tiny.en cannot transcribe
them, and its output on them says nothing about completeness.

`earshot.evals.endpointing_cv` runs the same fit inside leave-one-recording-out folds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from earshot.evals.endpointing_pauses import (
    Pause,
    PauseSet,
    by_group,
    load_pauses,
    replay_fixed,
    replay_model,
    summarize,
)
from earshot.turns.eot_model import (
    FEATURE_NAMES,
    EndOfTurnModel,
    Head,
    PauseLaw,
    model_to_dict,
)

PRIOR_ORIENTATION: dict[str, float] = {
    "lm_logit": 1.0,
    "pitch_final_z": -1.0,
    "pitch_slope_st_per_s": -1.0,
    "energy_final_rel": -1.0,
    "log_segment_ms": 1.0,
}
"""+1: a higher value means "end"; −1: a lower one does. Fixed before seeing any data:

* ``lm_logit``: the LM's end-of-turn probability, higher = end by construction (the
  mechanism of LiveKit's turn detector);
* ``pitch_final_z`` (a low final pitch level), ``pitch_slope_st_per_s`` (falling final
  intonation), ``energy_final_rel`` (a lower final intensity) and ``log_segment_ms`` (a longer
  inter-pausal unit): turn-yielding cues of Gravano & Hirschberg (2011), "Turn-taking cues in
  task-oriented dialogue", Computer Speech & Language 25(3):601-634."""

L2 = 10.0
"""Ridge penalty on the standardised weights (not on the bias): strong, fixed, not tuned."""

MIN_PER_CLASS = 8
"""A head is fitted only with at least this many ends and mid-turn pauses."""

THRESHOLDS: tuple[float, ...] = tuple(round(0.01 * k, 2) for k in range(5, 96))
MIN_SILENCES_MS: tuple[float, ...] = (160.0, 240.0)
PRIOR_COUNTS: tuple[float, ...] = (0.0, 3.0)
SURVIVAL_POWERS: tuple[float, ...] = (0.0, 0.5, 1.0)
MAX_SILENCES_MS: tuple[float, ...] = (1000.0, 1500.0)
"""The decision grid the threshold rule searches (`choose_setting`)."""
MAX_SILENCE_MS = 1500.0
FIXED_CURVE_MS: tuple[float, ...] = tuple(float(ms) for ms in range(200, 1001, 100))
"""The fixed thresholds replayed beside the model (ms)."""


def _sigmoid(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-np.clip(v, -40, 40)))
    return out


def fit_nonnegative_logistic(
    z: npt.NDArray[np.float64], y: npt.NDArray[np.float64], l2: float = L2
) -> tuple[npt.NDArray[np.float64], float]:
    """Weights (all ≥ 0) and bias of a ridge-penalised logistic regression.

    Projected Newton's method with an active set (a weight at 0 whose gradient pushes it
    negative stays at 0); the bias is free and unpenalised.

    Args:
        z: oriented standardised features, shape ``(n, d)``.
        y: labels 0/1, shape ``(n,)``.
        l2: ridge penalty on the weights.
    """
    n, d = z.shape
    xb = np.hstack([np.ones((n, 1)), z])
    w = np.zeros(d + 1)
    w[0] = math.log((y.mean() + 1e-3) / (1 - y.mean() + 1e-3))
    penalty = np.eye(d + 1) * l2
    penalty[0, 0] = 0.0

    def loss(v: npt.NDArray[np.float64]) -> float:
        m = xb @ v
        return float(np.sum(np.logaddexp(0.0, m) - y * m) + 0.5 * v @ penalty @ v)

    for _ in range(100):
        p = _sigmoid(xb @ w)
        grad = xb.T @ (p - y) + penalty @ w
        free = np.ones(d + 1, dtype=bool)
        free[1:] = (w[1:] > 1e-12) | (grad[1:] < 0)
        hess = xb.T @ (xb * (p * (1 - p))[:, None]) + penalty + 1e-9 * np.eye(d + 1)
        step = np.zeros(d + 1)
        step[free] = np.linalg.solve(hess[np.ix_(free, free)], grad[free])
        before, scale = loss(w), 1.0
        while True:
            trial = w - scale * step
            trial[1:] = np.maximum(trial[1:], 0.0)
            if loss(trial) <= before + 1e-12 or scale < 1e-6:
                break
            scale *= 0.5
        moved = float(np.max(np.abs(trial - w)))
        w = trial
        if moved < 1e-9:
            break
    return w[1:], float(w[0])


def fit_head(
    pauses: Sequence[Pause],
    orientation: dict[str, float] | None = None,
    l2: float = L2,
) -> Head:
    """The single imputing head (see the module docstring) fitted on ``pauses``.

    Raises:
        ValueError: fewer than `MIN_PER_CLASS` ends or mid-turn pauses.
    """
    o = PRIOR_ORIENTATION if orientation is None else orientation
    y = np.array([1.0 if p.end else 0.0 for p in pauses])
    if y.sum() < MIN_PER_CLASS or (1 - y).sum() < MIN_PER_CLASS:
        raise ValueError(
            f"{int(y.sum())} ends and {int((1 - y).sum())} mid-turn pauses; the fit needs "
            f"{MIN_PER_CLASS} of each: calibrate on more speech"
        )
    x = np.array(
        [
            [np.nan if (v := p.features.value(f)) is None else v for f in FEATURE_NAMES]
            for p in pauses
        ],
        dtype=np.float64,
    ).reshape(len(pauses), len(FEATURE_NAMES))
    present = ~np.isnan(x)
    counts = present.sum(axis=0)
    mean = np.array([np.nanmean(x[:, j]) if counts[j] else 0.0 for j in range(x.shape[1])])
    scale = np.array(
        [max(float(np.nanstd(x[:, j])), 1e-6) if counts[j] > 1 else 1.0 for j in range(x.shape[1])]
    )
    z = np.where(present, np.clip((x - mean) / scale, -3.0, 3.0), 0.0)
    sign = np.array([o[f] for f in FEATURE_NAMES])
    oriented, b = fit_nonnegative_logistic(z * sign, y, l2)
    return Head(
        FEATURE_NAMES,
        tuple(round(float(m), 6) for m in mean),
        tuple(round(float(sd), 6) for sd in scale),
        tuple(round(float(w), 6) + 0.0 for w in oriented * sign),
        round(b, 6),
        impute_missing=True,
    )


def fit_pause_law(pauses: Sequence[Pause]) -> PauseLaw:
    """Log-normal of the mid-turn pause lengths (ms).

    Raises:
        ValueError: fewer than 5 mid-turn pauses.
    """
    lengths = [p.length_ms for p in pauses if not p.end and math.isfinite(p.length_ms)]
    if len(lengths) < 5:
        raise ValueError(f"only {len(lengths)} mid-turn pauses; calibrate on more speech")
    logs = np.log(np.maximum(lengths, 1.0))
    return PauseLaw(round(float(logs.mean()), 6), round(max(float(logs.std()), 0.1), 6))


def fixed_curve(ps: PauseSet) -> list[dict[str, float | None]]:
    """The offline fixed-threshold curve on ``ps`` (what a policy is held against)."""
    out: list[dict[str, float | None]] = []
    for threshold in FIXED_CURVE_MS:
        s = summarize(replay_fixed(ps, threshold))
        out.append(
            {
                "fixed_ms": float(threshold),
                "cutoffs_per_turn": s["cutoffs_per_turn"],
                "p50": s["p50"],
            }
        )
    return out


def univariate(pauses: Sequence[Pause]) -> dict[str, float]:
    """AUC of each feature on ``pauses`` in its a-priori direction (`PRIOR_ORIENTATION`)."""
    from earshot.metrics.stats import auc

    aucs: dict[str, float] = {}
    for name in FEATURE_NAMES:
        sign = PRIOR_ORIENTATION[name]
        ends = [sign * v for p in pauses if p.end and (v := p.features.value(name)) is not None]
        mids = [sign * v for p in pauses if not p.end and (v := p.features.value(name)) is not None]
        a = auc(ends, mids)
        if a is not None:
            aucs[name] = round(a, 3)
    return aucs


def choose_setting(base: EndOfTurnModel, ps: PauseSet) -> tuple[EndOfTurnModel, dict[str, Any]]:
    """The decision defaults chosen by the rule of the module docstring, on ``ps`` only.

    Returns:
        The model with its threshold, minimum silence and pause-prior weight set, and the
        grid row that won (its cut-offs per turn and delay p50 on ``ps``).
    """
    groups = [g for g, rows in by_group(replay_fixed(ps, 500.0)).items() if rows and g != "all"]
    targets = {
        g: summarize(r)["cutoffs_per_turn"] for g, r in by_group(replay_fixed(ps, 500.0)).items()
    }
    grid: list[dict[str, Any]] = []
    for lo, hi, gamma, k0 in itertools.product(
        MIN_SILENCES_MS, MAX_SILENCES_MS, SURVIVAL_POWERS, PRIOR_COUNTS
    ):
        if gamma == 0 and k0 > 0:
            continue  # the pause law plays no part: the same setting as k0 = 0
        m = replace(
            base, min_silence_ms=lo, max_silence_ms=hi, survival_power=gamma, pause_prior_count=k0
        )
        for th, outcomes in replay_model(m, ps, THRESHOLDS).items():
            parts = by_group(outcomes)
            row: dict[str, Any] = {
                "threshold": th,
                "min_silence_ms": lo,
                "max_silence_ms": hi,
                "survival_power": gamma,
                "pause_prior_count": k0,
            }
            ok = True
            for g in ("all", *groups):
                s = summarize(parts[g])
                row[f"{g}_cutoffs_per_turn"] = s["cutoffs_per_turn"]
                row[f"{g}_p50"] = math.inf if s["p50"] is None else s["p50"]
                if g != "all" and (s["cutoffs_per_turn"] or 0.0) > (targets[g] or 0.0) + 1e-9:
                    ok = False
            row["within_fixed_500"] = ok
            grid.append(row)
    ok_rows = [g for g in grid if g["within_fixed_500"] and math.isfinite(g["all_p50"])]
    best = (
        min(ok_rows, key=lambda g: (g["all_p50"], g["all_cutoffs_per_turn"]))
        if ok_rows
        else min(grid, key=lambda g: (g["all_cutoffs_per_turn"], g["all_p50"]))
    )
    chosen = replace(
        base,
        threshold=float(best["threshold"]),
        min_silence_ms=float(best["min_silence_ms"]),
        max_silence_ms=float(best["max_silence_ms"]),
        survival_power=float(best["survival_power"]),
        pause_prior_count=float(best["pause_prior_count"]),
    )
    shape = ("min_silence_ms", "max_silence_ms", "survival_power", "pause_prior_count")
    curve = [g for g in grid if all(g[k] == best[k] for k in shape)]
    return chosen, {"chosen": best, "targets_fixed_500": targets, "grid": curve}


def fit_model(ps: PauseSet, l2: float = L2) -> tuple[EndOfTurnModel, dict[str, Any]]:
    """Head, pause law and decision defaults fitted on ``ps`` (no provenance yet).

    Raises:
        ValueError: too little data (the message says what is missing).
    """
    head = fit_head(ps.pauses, l2=l2)
    law = fit_pause_law(ps.pauses)
    base = EndOfTurnModel((head,), law, 0.5, MIN_SILENCES_MS[0], MAX_SILENCE_MS)
    return choose_setting(base, ps)


def fit(paths: Sequence[Path]) -> EndOfTurnModel:
    """Fit the whole model on the observer pauses of the runs at ``paths`` (only their turns
    of the calibration split, ``split.json``: the held-out recordings and noises never leak in).

    Raises:
        ValueError: too little data (the message says what is missing).
    """
    from earshot.evals.endpointing_plan import calibration_split

    speech, noises = calibration_split()
    ps = load_pauses(paths)
    ps = ps.subset(
        {
            t.trial
            for t in ps.turns
            if t.recording in speech and (t.noise is None or t.noise in noises)
        }
    )
    if not ps.turns:
        raise ValueError("the runs hold no turn of the calibration split (split.json)")
    model, selection = fit_model(ps)
    provenance = {
        "fitted_by": "python -m earshot.evals.endpointing_fit",
        "runs": [str(p) for p in paths],
        "split": "calibration (earshot/data/endpointing/split.json)",
        "model": f"one head, a-priori cue directions, non-negative oriented weights, L2 {L2:g}, "
        "missing cues imputed at z = 0",
        "trials": len(ps.turns),
        "pauses_end": sum(p.end for p in ps.pauses),
        "pauses_mid": sum(not p.end for p in ps.pauses),
        "orientation": dict(PRIOR_ORIENTATION),
        "calibration_auc": univariate(ps.pauses),
        "fixed_curve_offline": fixed_curve(ps),
        **selection,
    }
    return replace(model, provenance=provenance)


def _run_calibration_eval(data_dir: Path, out_dir: Path, noises_per_turn: int) -> None:
    """``earshot eval endpointing`` on the calibration split, observer lane only, as its own
    process (the user-facing verb, exactly as documented; this module stays below it).

    Raises:
        ValueError: the evaluation failed (its exit status and last line).
    """
    import subprocess

    command = [
        sys.executable, "-m", "earshot", "eval", "endpointing",
        "--data", str(data_dir), "--out", str(out_dir), "--split", "calibration",
        "--language", "any", "--policies", "--noises-per-turn", str(noises_per_turn), "--quiet",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ValueError(f"the calibration eval failed (exit {done.returncode}): {last}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 written, 2 bad input."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", type=Path, default=[], help="endpointing.json runs")
    parser.add_argument("--data", type=Path, help="run the calibration eval on this folder first")
    parser.add_argument("--noises-per-turn", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True, help="model file to write")
    args = parser.parse_args(argv)
    runs = list(args.runs)
    try:
        if args.data is not None:
            out_dir = args.out.parent / "calibration-run"
            _run_calibration_eval(args.data, out_dir, args.noises_per_turn)
            runs.append(out_dir / "endpointing.json")
        if not runs:
            raise ValueError("give --runs FILE... or --data DIR")
        model = fit(runs)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from earshot.audio.io import write_text_atomic

    write_text_atomic(args.out, json.dumps(model_to_dict(model), indent=1) + "\n")
    chosen = model.provenance["chosen"]
    targets = model.provenance["targets_fixed_500"]
    print(
        f"wrote {args.out}: threshold {model.threshold:g}, min {model.min_silence_ms:g} ms, "
        f"pause prior {model.pause_prior_count:g}; calibration cut-offs/turn "
        f"{chosen['all_cutoffs_per_turn']:.2f} (fixed 500 ms: {targets['all']:.2f}), delay p50 "
        f"{chosen['all_p50']:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
