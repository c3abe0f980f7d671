"""Statistics of the lever evaluation: off vs on percentiles, their spread, and the projection.

* The **measured change** of a percentile is ``on − off`` over the trials of one run.
* Its **spread** is the half-width of a 95 % bootstrap interval of that change (turns of the
  off and on runs resampled independently, ``BOOTSTRAP_DRAWS`` times, seeded): how far a rerun of
  the same callers would be expected to move it. With few trials the p99 is close to the maximum
  and its spread is wide; the report says how many trials each figure rests on.
* The **projection** is what ``earshot budget --from OFF --lever L --simulate`` says for the
  same lever on the measured baseline (the budget model's Monte Carlo, whole measured turns
  resampled, `earshot.budget.montecarlo.simulate`).
* A **disagreement** is a projected change outside measured ± spread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earshot.budget.levers import parse_lever
from earshot.budget.measured import load_turns
from earshot.budget.model import FloatArray
from earshot.budget.montecarlo import PERCENTILES, SampleMode, simulate
from earshot.evals.levers_types import ComparisonDoc, ProjectionDoc

BOOTSTRAP_DRAWS = 2000
PROJECTION_SAMPLES = 20_000
QS: tuple[float, ...] = (50.0, 95.0, 99.0)


def pct(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (numpy linear) of ``values``, None when empty."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


@dataclass(frozen=True, slots=True)
class Comparison:
    """One quantity off vs on, percentile by percentile (ms).

    Attributes:
        name: what is compared (``"llm_ttft"``, ``"ttfat"``).
        off_ms, on_ms: percentile (``"p50"``...) → value; None when a side has no trials.
        change_ms: ``on − off`` per percentile.
        spread_ms: 95 % bootstrap half-width of the change per percentile.
        projected_ms: the budget model's projected ``on`` per percentile (None if not modelled).
        projected_change_ms: projected ``on`` − measured ``off``.
        disagrees: per percentile, the projected change lies outside measured ± spread.
        num_off, num_on: trials behind each side.
    """

    name: str
    off_ms: dict[str, float | None]
    on_ms: dict[str, float | None]
    change_ms: dict[str, float | None]
    spread_ms: dict[str, float | None]
    projected_ms: dict[str, float | None]
    projected_change_ms: dict[str, float | None]
    disagrees: dict[str, bool]
    num_off: int
    num_on: int

    def relative_change(self, key: str) -> float | None:
        """``(on − off) / off`` at percentile ``key`` (−0.3 = cut by 30 %)."""
        off, change = self.off_ms.get(key), self.change_ms.get(key)
        if off is None or change is None or off == 0:
            return None
        return change / off

    def to_json(self) -> ComparisonDoc:
        def rounded(d: Mapping[str, float | None]) -> dict[str, float | None]:
            return {k: None if v is None else round(v, 3) for k, v in d.items()}

        return {
            "name": self.name,
            "num_off": self.num_off,
            "num_on": self.num_on,
            "off_ms": rounded(self.off_ms),
            "on_ms": rounded(self.on_ms),
            "change_ms": rounded(self.change_ms),
            "relative_change": {
                k: None if (r := self.relative_change(k)) is None else round(r, 4)
                for k in self.off_ms
            },
            "spread_ms": rounded(self.spread_ms),
            "projected_on_ms": rounded(self.projected_ms),
            "projected_change_ms": rounded(self.projected_change_ms),
            "model_disagrees": dict(self.disagrees),
        }


def compare(
    name: str,
    off: Sequence[float],
    on: Sequence[float],
    projected_on: Mapping[str, float] | None,
    seed: int = 0,
    projected_off: Mapping[str, float] | None = None,
) -> Comparison:
    """Off vs on percentiles, the bootstrap spread of the change, and the projection beside it.

    With ``projected_off`` (the model's own baseline: the same resampled draws without the
    lever) the model's change is ``projected_on − projected_off``, and its projected ``on`` is
    that change applied to the measured ``off``. On a few turns a resampled percentile is not
    the interpolated percentile of the turns themselves (the p95 of 6 turns resamples to their
    maximum), so without it a lever that only removes time can appear to add some.
    """
    keys = [f"p{q:g}" for q in QS]
    off_ms = {k: pct(off, q) for k, q in zip(keys, QS, strict=True)}
    on_ms = {k: pct(on, q) for k, q in zip(keys, QS, strict=True)}
    change: dict[str, float | None] = {
        k: None if off_ms[k] is None or on_ms[k] is None else on_ms[k] - off_ms[k]  # type: ignore[operator]
        for k in keys
    }
    spread = _bootstrap_spread(off, on, seed)
    projected: dict[str, float | None] = {k: None for k in keys}
    projected_change: dict[str, float | None] = {k: None for k in keys}
    disagrees = {k: False for k in keys}
    if projected_on is not None:
        for k in keys:
            on_k, off_k = projected_on.get(k), off_ms[k]
            base_k = off_k if projected_off is None else projected_off.get(k)
            if on_k is not None and base_k is not None and off_k is not None:
                projected_change[k] = on_k - base_k
                projected[k] = off_k + (on_k - base_k)
            c, s, p = change[k], spread[k], projected_change[k]
            if c is not None and s is not None and p is not None:
                disagrees[k] = abs(p - c) > s
    return Comparison(
        name,
        off_ms,
        on_ms,
        change,
        spread,
        projected,
        projected_change,
        disagrees,
        len(off),
        len(on),
    )


def _bootstrap_spread(
    off: Sequence[float], on: Sequence[float], seed: int
) -> dict[str, float | None]:
    keys = [f"p{q:g}" for q in QS]
    if len(off) < 2 or len(on) < 2:
        return {k: None for k in keys}
    rng = np.random.default_rng(seed)
    a = np.asarray(off, dtype=np.float64)
    b = np.asarray(on, dtype=np.float64)
    ra = a[rng.integers(0, a.size, (BOOTSTRAP_DRAWS, a.size))]
    rb = b[rng.integers(0, b.size, (BOOTSTRAP_DRAWS, b.size))]
    out: dict[str, float | None] = {}
    for k, q in zip(keys, QS, strict=True):
        diff = np.percentile(rb, q, axis=1) - np.percentile(ra, q, axis=1)
        lo, hi = np.percentile(diff, [2.5, 97.5])
        out[k] = float((hi - lo) / 2.0)
    return out


def project_ttfat(turns_path: Path, lever: str, seed: int = 0) -> ProjectionDoc:
    """``earshot budget --from turns_path --lever LEVER --simulate``: projected TTFAT
    percentiles and mean per model term, baseline and with the lever.

    Raises:
        TurnsFileError: the file holds no complete turn.
        LeverError: the lever does not fit the measured terms.
    """
    measured = load_turns([turns_path])
    rng = np.random.default_rng(seed)
    baseline = measured.bootstrap(rng, PROJECTION_SAMPLES)
    base, after = simulate(baseline, [parse_lever(lever)], rng)
    return {
        "lever": lever,
        "baseline": {f"p{q:g}": base.percentiles_ms[q] for q in PERCENTILES},
        "projected": {f"p{q:g}": after.percentiles_ms[q] for q in PERCENTILES},
        "baseline_mean_ms": base.mean_ms,
        "projected_mean_ms": after.mean_ms,
        "turns": measured.measured.num_turns if measured.measured is not None else 0,
    }


def project_hedged_ttft(
    ttft_ms: Sequence[float], num_requests: int, seed: int = 0, delay_ms: float = 0.0
) -> dict[str, float]:
    """The budget model's hedge rule applied to measured single-request TTFTs: the first token
    of ``num_requests`` independent draws from them, request k sent ``k × delay_ms`` late
    (`SampleMode.hedge`, ``earshot budget --lever hedge=N,delay_ms=MS``), percentiles in ms."""
    rng = np.random.default_rng(seed)
    x: FloatArray = np.asarray(ttft_ms, dtype=np.float64)[
        rng.integers(0, len(ttft_ms), PROJECTION_SAMPLES)
    ]
    hedged = SampleMode(rng, PROJECTION_SAMPLES).hedge(x, num_requests, delay_ms)
    return {f"p{q:g}": float(np.percentile(hedged, q)) for q in QS}
