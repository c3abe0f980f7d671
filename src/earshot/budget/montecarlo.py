"""Monte Carlo over per-term latency distributions: TTFAT percentiles and the tail's cause.

Baseline draws come from a budget (point terms are constants; a published range ``lo–hi`` is read
as a lognormal with p50 = lo and p99 = hi, an assumption stated in every report; ``--dist``
overrides a term with a lognormal fitted to a given p50 and p99) or from measured turns (whole
turns resampled with replacement, so correlated terms stay correlated). Levers are applied to
the draws by the same rules as the bounds evaluation, through `SampleMode`. Everything is a
function of the seed: the same seed gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from earshot.budget.dists import DistributionError, LogNormal, speculative_speedup
from earshot.budget.levers import LeverSpec
from earshot.budget.model import Budget, FloatArray
from earshot.budget.whatif import Step, project

DEFAULT_SAMPLES = 100_000
DEFAULT_SEED = 0
PERCENTILES: tuple[float, ...] = (50.0, 95.0, 99.0)


class SampleMode:
    """Lever evaluation on Monte Carlo draws of shape ``(size,)``; see `earshot.budget.levers`."""

    def __init__(self, rng: np.random.Generator, size: int) -> None:
        self.rng = rng
        self.size = size

    def reference(self, x: FloatArray) -> FloatArray:
        return np.asarray(np.median(x), dtype=np.float64)

    def bound(self, low: float, high: float, *, saving: bool = False) -> FloatArray:
        return np.asarray((low + high) / 2.0, dtype=np.float64)

    def restart(self, probability: float) -> FloatArray:
        return (self.rng.random(self.size) < probability).astype(np.float64)

    def hedge(self, x: FloatArray, num_requests: int, delay_ms: float = 0.0) -> FloatArray:
        """Minimum of ``x`` and ``num_requests − 1`` independent redraws from ``x``'s draws,
        request k (from 0) sent ``k × delay_ms`` late — and only if none has a token by then,
        which the minimum already accounts for (Dean & Barroso's deferred hedge)."""
        if num_requests == 1:
            return x
        extra = x[self.rng.integers(0, x.shape[0], (num_requests - 1, x.shape[0]))]
        late = delay_ms * np.arange(1, num_requests, dtype=np.float64)[:, None]
        first: FloatArray = np.minimum(x, (extra + late).min(axis=0))
        return first

    def speculative(
        self, x: FloatArray, alpha: float, gamma: int, draft_cost_ratio: float, tokens: int | None
    ) -> FloatArray:
        """``x`` as the plain decoding of ``tokens`` tokens, redone with speculative steps.

        Without ``tokens`` the closed-form per-token speed-up scales ``x``. With it, each draw
        counts the target steps needed to commit ``tokens`` tokens, each step costing
        ``(1 + γ·c)`` plain-token times.
        """
        if tokens is None:
            return x / speculative_speedup(alpha, gamma, draft_cost_ratio)
        steps = steps_to_commit(tokens, alpha, gamma, x.shape[0], self.rng)
        return steps * (x / tokens) * (1.0 + gamma * draft_cost_ratio)


def tokens_per_step(
    alpha: float, gamma: int, size: int, rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """Tokens committed by each of ``size`` speculative target steps.

    The target checks γ draft tokens in order, each accepted with probability α until the first
    rejection; it then commits the accepted ones plus one of its own (the correction, or a bonus
    token when all γ pass): 1 … γ+1 tokens. Its mean is (1 − α^(γ+1))/(1 − α) (§39.4.6).
    """
    accepted = rng.random((size, gamma)) < alpha
    tokens: npt.NDArray[np.int64] = np.cumprod(accepted, axis=1).sum(axis=1) + 1
    return tokens


def steps_to_commit(
    tokens: int, alpha: float, gamma: int, size: int, rng: np.random.Generator
) -> FloatArray:
    """Target steps each of ``size`` generations needs to commit ``tokens`` tokens, float64."""
    committed = np.zeros(size, dtype=np.int64)
    steps = np.zeros(size, dtype=np.float64)
    active = np.arange(size)
    while active.size:
        committed[active] += tokens_per_step(alpha, gamma, active.size, rng)
        steps[active] += 1.0
        active = active[committed[active] < tokens]
    return steps


def budget_distributions(
    budget: Budget, overrides: Mapping[str, LogNormal] | None = None
) -> dict[str, LogNormal]:
    """Per-term distribution for a budget: an override, a constant, or lognormal(lo→p50, hi→p99).

    Raises:
        DistributionError: an override names a term the budget lacks, or a range cannot be
            fitted.
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(budget.term_names))
    if unknown:
        raise DistributionError(
            f"--dist names {unknown}, not terms of {budget.name} ({', '.join(budget.term_names)})"
        )
    out: dict[str, LogNormal] = {}
    for term in budget.terms:
        if term.name in overrides:
            out[term.name] = overrides[term.name]
        elif term.is_range:
            out[term.name] = LogNormal.from_p50_p99(term.low_ms, term.high_ms)
        else:
            out[term.name] = LogNormal.constant(term.low_ms)
    return out


def draw(
    dists: Mapping[str, LogNormal], size: int, rng: np.random.Generator
) -> dict[str, FloatArray]:
    """``size`` independent draws per term (in the mapping's order), ms."""
    return {name: dist.sample(rng, size) for name, dist in dists.items()}


@dataclass(frozen=True, slots=True)
class Summary:
    """One step of a simulation, summarised.

    Attributes:
        label: ``"baseline"`` or the lever as typed.
        mean_ms: term → mean critical-path contribution (means add up to ``mean_total_ms``).
        percentiles_ms: percentile (50, 95, 99) → TTFAT at that percentile.
        tail_excess_ms: term → mean contribution among draws at or above the p99 of TTFAT,
            minus its overall mean; they add up to how far the tail sits above the mean.
        tail_term: the term with the largest tail excess, or ``None`` when nothing varies.
    """

    label: str
    mean_ms: dict[str, float]
    mean_total_ms: float
    percentiles_ms: dict[float, float]
    tail_excess_ms: dict[str, float]
    tail_term: str | None
    notes: tuple[str, ...] = ()
    cite: str = ""


def summarise(step: Step) -> Summary:
    """Percentiles of TTFAT and the tail's dominant term for one simulated `Step`."""
    total = step.total_ms()
    p99 = float(np.percentile(total, 99.0))
    tail = total >= p99
    means = {k: float(v.mean()) for k, v in step.contributions_ms.items()}
    excess = {k: float(v[tail].mean()) - means[k] for k, v in step.contributions_ms.items()}
    dominant = max(excess, key=lambda k: excess[k])
    return Summary(
        label=step.label,
        mean_ms=means,
        mean_total_ms=float(total.mean()),
        percentiles_ms={p: float(np.percentile(total, p)) for p in PERCENTILES},
        tail_excess_ms=excess,
        tail_term=dominant if excess[dominant] > 1e-9 else None,
        notes=step.notes,
        cite=step.cite,
    )


def simulate(
    baseline_ms: Mapping[str, FloatArray],
    levers: Sequence[LeverSpec],
    rng: np.random.Generator,
) -> list[Summary]:
    """Apply ``levers`` cumulatively to baseline draws and summarise every step.

    Args:
        baseline_ms: term → draws in ms, all of shape ``(n,)``.
        levers: parsed levers, applied in order.
        rng: the generator for the levers' own randomness (hedging, mismatches).

    Raises:
        LeverError: a lever does not fit these terms.
    """
    size = next(iter(baseline_ms.values())).shape[0]
    return [summarise(s) for s in project(baseline_ms, levers, SampleMode(rng, size))]


def check_samples(samples: int) -> int:
    """Validate a sample count.

    Raises:
        DistributionError: fewer than 1,000 samples (the p99 would rest on under 10 draws).
    """
    if samples < 1000:
        raise DistributionError(
            f"--samples {samples}: use at least 1000 so the p99 rests on 10 or more draws"
        )
    return samples
