"""Refit the end-of-turn model (``earshot/data/endpointing/model.json``) on calibration data.

    python -m earshot.evals.endpointing_fit --data ../shared/data --out model.json
    python -m earshot.evals.endpointing_fit --runs out/cal/endpointing.json --out model.json

With ``--data`` it first runs ``earshot eval endpointing --split calibration`` with only the
fixed thresholds and the observer lane (every cue at every natural pause, no policy deciding);
``--runs`` reuses such runs' ``endpointing.json``. Then, on those labelled pauses only:

1. **orientation** of each feature (+1 if true ends score higher on average, else −1) and its
   AUC;
2. **heads**: an L2-regularised logistic regression (Newton's method, numpy) for every subset
   of the features, each fitted on the pauses where its features exist — so the policy has a
   head for every combination of missing cues (no LM, unvoiced tail...);
3. **pause law**: a log-normal fitted to the lengths of the mid-turn pauses;
4. **decision defaults**: the policy is replayed offline on the same pauses (cues become usable
   when their measured compute has passed; the speaker's pause law adapts as it goes) for a
   grid of thresholds, minimum silences and pause-prior weights; the default is the fastest
   setting (lowest median delay) whose false cut-offs per turn do not exceed fixed 500 ms's on
   the same pauses; if none does, the one with fewest cut-offs.

Everything fitted here comes from the calibration split only; `earshot eval endpointing`
measures on the held-out split.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from earshot.turns.eot_model import (
    FEATURE_NAMES,
    EndOfTurnModel,
    Head,
    PauseFeatures,
    PauseLaw,
    decide,
    model_to_dict,
)

L2 = 1.0
"""Ridge penalty on the standardised weights (not on the bias)."""

MIN_PER_CLASS = 8
"""A head is fitted only with at least this many ends and mid-turn pauses."""

THRESHOLDS: tuple[float, ...] = tuple(round(0.025 * k, 3) for k in range(4, 38))
MIN_SILENCES_MS: tuple[float, ...] = (100.0, 160.0, 220.0)
PRIOR_COUNTS: tuple[float, ...] = (0.0, 2.0, 5.0)
MAX_SILENCE_MS = 1500.0
FRAME_MS = 20.0


@dataclass(frozen=True, slots=True)
class Pause:
    """One labelled pause of a calibration run, with what the offline replay needs."""

    end: bool
    features: PauseFeatures
    first_silence_ms: float
    prosody_ready_ms: float
    text_ready_ms: float
    length_ms: float
    """Mid-turn pauses: how long the pause lasted; ends: infinity."""
    lag_ms: float
    """Speech end seen by the VAD − the true end (ms): added to the delay of an end."""
    trial: str


def load_pauses(paths: Sequence[Path]) -> tuple[list[Pause], int, dict[str, float]]:
    """Labelled pauses of the observer lanes in ``paths``, the number of trials, and the fixed
    references (``{"fixed 500 ms": cut-offs/turn, "fixed 300 ms": delay p50}``, all trials).

    Raises:
        ValueError: a run has no observer lane.
    """
    pauses: list[Pause] = []
    trials = 0
    cut500: list[float] = []
    delay300: list[float] = []
    for path in paths:
        doc = json.loads(path.read_text("utf-8"))
        # An observer that read Whisper's text at once: a policy waits for the decode.
        decode_ms = float(doc["compute"]["Whisper decode"]["p50_ms"] or 0.0)
        observer = next((c for c in doc["configurations"] if c.startswith("observe")), None)
        if observer is None:
            raise ValueError(f"{path}: no observer lane; rerun the eval without --no-observe")
        for t in doc["turns"]:
            trials += 1
            results = t["results"]
            vad = observer.split(" · ")[-1]
            cut500.append(len(results[f"fixed 500 ms · {vad}"]["false_cutoffs"]))
            d300 = results[f"fixed 300 ms · {vad}"]["delay_ms"]
            if d300 is not None:
                delay300.append(d300)
            for r in results[observer].get("pauses", []):
                end = r["label"] == "end"
                if not end and r["resumed_after_ms"] is None and r["ended_at_ms"] is None:
                    continue  # the replay stopped inside it
                length = math.inf if end else float(r["resumed_after_ms"] or 3000.0)
                first = float(r.get("first_silence_ms", FRAME_MS))
                text_ready = r["text_ready_ms"]
                if text_ready is not None and not results[observer].get("stt_charged", True):
                    text_ready = float(text_ready) + decode_ms
                pauses.append(
                    Pause(
                        end,
                        PauseFeatures(**r["features"]),
                        first,
                        first + float(r["prosody_ms"]),
                        math.inf if text_ready is None else float(text_ready),
                        length,
                        float(r["speech_end_ms"]) - float(t["true_end_ms"]),
                        f"{t['turn']} · {t['condition']}",
                    )
                )
    refs = {
        "fixed 500 ms cutoffs_per_turn": sum(cut500) / max(trials, 1),
        "fixed 300 ms delay_p50_ms": float(np.median(delay300)) if delay300 else math.nan,
    }
    return pauses, trials, refs


def _sigmoid(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-np.clip(v, -40, 40)))
    return out


def fit_logistic(
    z: npt.NDArray[np.float64], y: npt.NDArray[np.float64], l2: float = L2
) -> tuple[npt.NDArray[np.float64], float]:
    """Weights and bias of an L2-regularised logistic regression (Newton's method).

    Args:
        z: standardised features, shape ``(n, d)``.
        y: labels 0/1, shape ``(n,)``.
        l2: ridge penalty on the weights.
    """
    n, d = z.shape
    xb = np.hstack([np.ones((n, 1)), z])
    w = np.zeros(d + 1)
    w[0] = math.log((y.mean() + 1e-3) / (1 - y.mean() + 1e-3))
    penalty = np.eye(d + 1) * l2
    penalty[0, 0] = 0.0
    for _ in range(50):
        p = _sigmoid(xb @ w)
        grad = xb.T @ (p - y) + penalty @ w
        hess = xb.T @ (xb * (p * (1 - p))[:, None]) + penalty + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    return w[1:], float(w[0])


def fit_heads(pauses: Sequence[Pause]) -> list[Head]:
    """A head for every subset of `FEATURE_NAMES` with enough pauses of each class."""
    heads: list[Head] = []
    for k in range(len(FEATURE_NAMES) + 1):
        for subset in itertools.combinations(FEATURE_NAMES, k):
            rows = [p for p in pauses if set(subset) <= p.features.available()]
            y = np.array([1.0 if p.end else 0.0 for p in rows])
            if y.sum() < MIN_PER_CLASS or (1 - y).sum() < MIN_PER_CLASS:
                continue
            x = np.array([[p.features.value(f) for f in subset] for p in rows], dtype=np.float64)
            x = x.reshape(len(rows), len(subset))
            mean = x.mean(axis=0) if subset else np.zeros(0)
            scale = np.maximum(x.std(axis=0), 1e-6) if subset else np.zeros(0)
            z = np.clip((x - mean) / np.where(scale > 0, scale, 1.0), -3.0, 3.0)
            w, b = fit_logistic(z, y)
            heads.append(
                Head(
                    subset,
                    tuple(round(float(v), 6) for v in mean),
                    tuple(round(float(v), 6) for v in scale),
                    tuple(round(float(v), 6) for v in w),
                    round(b, 6),
                )
            )
    return heads


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


def simulate(
    model: EndOfTurnModel, pauses: Sequence[Pause], trials: int
) -> tuple[float, float | None]:
    """Offline replay of the policy: (false cut-offs per trial, median delay of the ends).

    Pauses are replayed in order within each trial; a mid-turn pause the policy did not cut
    teaches the speaker's pause law, as `ModelEndpointer.on_resume` does.
    """
    cuts = 0
    delays: list[float] = []
    logs: dict[str, list[float]] = {}
    for p in pauses:
        seen = logs.setdefault(p.trial, [])
        law = model.pause_law.adapted(seen, model.pause_prior_count)
        t = p.first_silence_ms
        horizon = min(p.length_ms, model.max_silence_ms + FRAME_MS)
        while t < horizon:
            x = PauseFeatures()
            if t >= p.prosody_ready_ms:
                x = replace(p.features, lm_logit=None, dictation=False)
            if t >= p.text_ready_ms:
                x = replace(x, lm_logit=p.features.lm_logit, dictation=p.features.dictation)
            if decide(model, x, t, law=law).end:
                break
            t += FRAME_MS
        if p.end:
            delays.append(t + p.lag_ms)
        elif t < p.length_ms:
            cuts += 1
        elif math.isfinite(p.length_ms):
            seen.append(math.log(p.length_ms))
    return cuts / max(trials, 1), (float(np.median(delays)) if delays else None)


def fixed_curve(pauses: Sequence[Pause], trials: int) -> list[dict[str, float | None]]:
    """The same offline replay for fixed thresholds (the curve a policy is held against)."""
    out: list[dict[str, float | None]] = []
    for threshold in range(200, 1001, 100):
        cut = sum(1 for p in pauses if not p.end and p.length_ms > threshold) / max(trials, 1)
        ends = [threshold + FRAME_MS + p.lag_ms for p in pauses if p.end]
        out.append(
            {
                "fixed_ms": float(threshold),
                "cutoffs_per_turn": round(cut, 4),
                "p50": float(np.median(ends)) if ends else None,
            }
        )
    return out


def univariate(pauses: Sequence[Pause]) -> tuple[dict[str, float], dict[str, float]]:
    """Orientation (+1/−1) and oriented AUC of each feature on the calibration pauses."""
    from earshot.evals.endpointing_report import auc

    orientation: dict[str, float] = {}
    aucs: dict[str, float] = {}
    for name in FEATURE_NAMES:
        ends = [v for p in pauses if p.end and (v := p.features.value(name)) is not None]
        mids = [v for p in pauses if not p.end and (v := p.features.value(name)) is not None]
        a = auc(ends, mids)
        if a is None:
            continue
        sign = 1.0 if a >= 0.5 else -1.0
        orientation[name] = sign
        aucs[name] = round(a if sign > 0 else 1.0 - a, 3)
    return orientation, aucs


def fit(paths: Sequence[Path]) -> EndOfTurnModel:
    """Fit the whole model on the observer pauses of the calibration runs at ``paths``.

    Raises:
        ValueError: too little data (the message says what is missing).
    """
    pauses, trials, refs = load_pauses(paths)
    orientation, aucs = univariate(pauses)
    heads = fit_heads(pauses)
    if not any(not h.features for h in heads):
        raise ValueError("too few ends or mid-turn pauses for even a prior; add calibration data")
    law = fit_pause_law(pauses)
    base = EndOfTurnModel(tuple(heads), law, 0.5, MIN_SILENCES_MS[0], MAX_SILENCE_MS)
    curve = fixed_curve(pauses, trials)
    target = next(float(c["cutoffs_per_turn"] or 0.0) for c in curve if c["fixed_ms"] == 500.0)
    grid: list[dict[str, float]] = []
    for th, lo, k0 in itertools.product(THRESHOLDS, MIN_SILENCES_MS, PRIOR_COUNTS):
        m = replace(base, threshold=th, min_silence_ms=lo, pause_prior_count=k0)
        cut, p50 = simulate(m, pauses, trials)
        grid.append(
            {
                "threshold": th,
                "min_silence_ms": lo,
                "pause_prior_count": k0,
                "cutoffs_per_turn": round(cut, 4),
                "p50": math.inf if p50 is None else p50,
            }
        )
    ok = [g for g in grid if g["cutoffs_per_turn"] <= target and math.isfinite(g["p50"])]
    best = (
        min(ok, key=lambda g: (g["p50"], g["cutoffs_per_turn"]))
        if ok
        else min(grid, key=lambda g: (g["cutoffs_per_turn"], g["p50"]))
    )
    provenance = {
        "fitted_by": "python -m earshot.evals.endpointing_fit",
        "runs": [str(p) for p in paths],
        "split": "calibration (earshot/data/endpointing/split.json)",
        "trials": trials,
        "pauses_end": sum(p.end for p in pauses),
        "pauses_mid": sum(not p.end for p in pauses),
        "orientation": orientation,
        "calibration_auc": aucs,
        "fixed_references": refs,
        "fixed_curve_offline": curve,
        "chosen": best,
        "grid": grid,
    }
    return replace(
        base,
        threshold=float(best["threshold"]),
        min_silence_ms=float(best["min_silence_ms"]),
        pause_prior_count=float(best["pause_prior_count"]),
        provenance=provenance,
    )


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
            from earshot.evals.endpointing import EndpointingOptions, run_endpointing

            out_dir = args.out.parent / "calibration-run"
            run_endpointing(
                EndpointingOptions(
                    out_dir=out_dir,
                    data_dir=args.data,
                    split="calibration",
                    policies=(),
                    noises_per_turn=args.noises_per_turn,
                )
            )
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
    print(
        f"wrote {args.out}: {len(model.heads)} heads, threshold {model.threshold:g}, min "
        f"{model.min_silence_ms:g} ms; calibration cut-offs/turn {chosen['cutoffs_per_turn']:.2f} "
        f"(fixed 500: {model.provenance['fixed_references']['fixed 500 ms cutoffs_per_turn']:.2f})"
        f", delay p50 {chosen['p50']} ms "
        f"(fixed 300: {model.provenance['fixed_references']['fixed 300 ms delay_p50_ms']:.0f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
