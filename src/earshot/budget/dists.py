"""Per-term latency distributions and the closed forms the levers are checked against.

A term's distribution is a constant, or a lognormal fitted to a stated p50 and p99 (lognormal:
right-skewed and heavy-tailed, the usual shape of service latencies). Closed forms:

* speculative decoding, expected committed tokens per target step
  ``(1 − α^(γ+1)) / (1 − α)`` and per-token latency ``(t_target + γ·t_draft) / E[tokens]``
  (§39.4.6; Leviathan et al., ICML 2023);
* hedging, the first of N iid requests: ``F_min(x) = 1 − (1 − F(x))^N``, so its q-quantile is
  ``F⁻¹(1 − (1 − q)^(1/N))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from earshot.budget.model import FloatArray

_STD_NORMAL = NormalDist()
Z_P99 = _STD_NORMAL.inv_cdf(0.99)
"""Standard-normal 99th percentile, ≈ 2.3263."""


class DistributionError(ValueError):
    """A distribution cannot be built from the given numbers; the message says what to give."""


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Latency ~ exp(N(mu, sigma²)) in ms, or exactly ``constant_ms`` when that is set."""

    mu: float
    sigma: float
    constant_ms: float | None = None

    @classmethod
    def constant(cls, value_ms: float) -> LogNormal:
        """A fixed latency (ms ≥ 0), drawn exactly."""
        if not value_ms >= 0:
            raise DistributionError(f"a latency cannot be negative ({value_ms} ms)")
        return cls(0.0, 0.0, constant_ms=float(value_ms))

    @classmethod
    def from_p50_p99(cls, p50_ms: float, p99_ms: float) -> LogNormal:
        """Fit to a median and a 99th percentile (ms): sigma = ln(p99/p50) / z₀.₉₉.

        Equal p50 and p99 give a constant.

        Raises:
            DistributionError: p50 < 0, p99 < p50, or p50 = 0 < p99 (no lognormal has that).
        """
        if not (math.isfinite(p50_ms) and math.isfinite(p99_ms)) or p50_ms < 0 or p99_ms < p50_ms:
            raise DistributionError(
                f"p50={p50_ms}, p99={p99_ms}: give 0 ≤ p50 ≤ p99 (ms), e.g. 150:600"
            )
        if p50_ms == p99_ms:
            return cls.constant(p50_ms)
        if p50_ms == 0:
            raise DistributionError(
                f"p50=0 with p99={p99_ms}: a lognormal needs p50 > 0; give a small p50 "
                "(e.g. 1) or a constant 0:0"
            )
        return cls(math.log(p50_ms), math.log(p99_ms / p50_ms) / Z_P99)

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        """``size`` iid draws in ms, float64 (a constant draws no random numbers)."""
        if self.constant_ms is not None:
            return np.full(size, self.constant_ms)
        return rng.lognormal(self.mu, self.sigma, size)

    def cdf(self, x_ms: float) -> float:
        """P(latency ≤ x_ms)."""
        if self.constant_ms is not None:
            return 1.0 if x_ms >= self.constant_ms else 0.0
        if x_ms <= 0:
            return 0.0
        return _STD_NORMAL.cdf((math.log(x_ms) - self.mu) / self.sigma)

    def ppf(self, q: float) -> float:
        """The q-quantile in ms, 0 < q < 1."""
        if self.constant_ms is not None:
            return self.constant_ms
        return math.exp(self.mu + self.sigma * _STD_NORMAL.inv_cdf(q))


def expected_tokens_per_step(alpha: float, gamma: int) -> float:
    """Expected tokens committed per target forward pass: (1 − α^(γ+1)) / (1 − α).

    §39.4.6 (Leviathan et al., ICML 2023). α = 1 gives γ + 1.

    Raises:
        ValueError: α outside [0, 1] or γ < 1.
    """
    _check_speculative(alpha, gamma)
    if alpha == 1.0:
        return float(gamma + 1)
    return (1.0 - alpha ** (gamma + 1)) / (1.0 - alpha)


def speculative_speedup(alpha: float, gamma: int, draft_cost_ratio: float) -> float:
    """Per-token speed-up over plain decoding: E[tokens] / (1 + γ·c), c = t_draft / t_target.

    From per-token latency ≈ (t_target + γ·t_draft) / E[tokens] (§39.4.6).

    Raises:
        ValueError: bad α or γ, or c < 0.
    """
    if draft_cost_ratio < 0:
        raise ValueError(f"draft_cost={draft_cost_ratio}: give t_draft / t_target ≥ 0, e.g. 0.125")
    return expected_tokens_per_step(alpha, gamma) / (1.0 + gamma * draft_cost_ratio)


def _check_speculative(alpha: float, gamma: int) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha}: the acceptance rate must lie in [0, 1]")
    if gamma < 1:
        raise ValueError(f"gamma={gamma}: propose at least one draft token per step")


def hedged_cdf(cdf_value: float, num_requests: int) -> float:
    """CDF of the first of ``num_requests`` iid requests at a point where one has CDF F."""
    return 1.0 - (1.0 - cdf_value) ** num_requests


def hedged_quantile(dist: LogNormal, q: float, num_requests: int) -> float:
    """The q-quantile (ms) of the minimum of ``num_requests`` iid draws of ``dist``."""
    return dist.ppf(1.0 - (1.0 - q) ** (1.0 / num_requests))
