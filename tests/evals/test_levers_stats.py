"""The lever evaluation's statistics on synthetic samples: the hedge projection fed measured
TTFTs (immediate and deferred), and the disagreement flag."""

from __future__ import annotations

import random

import numpy as np
import pytest

from earshot.evals.latency_proxy import TailProfile
from earshot.evals.levers_stats import compare, project_hedged_ttft


def _two_point(n: int, seed: int) -> list[float]:
    # 90 % of requests at 100 ms, 10 % at 1000 ms (a fast body and a slow path).
    rng = np.random.default_rng(seed)
    return [float(v) for v in np.where(rng.random(n) < 0.1, 1000.0, 100.0)]


def test_immediate_hedge_projection_is_the_first_of_two_draws() -> None:
    off = _two_point(2000, 1)
    projected = project_hedged_ttft(off, 2, seed=2)
    # Both slow with probability 1 %: p95 fast, p99 on the edge, p50 fast.
    assert projected["p50"] == 100.0 and projected["p95"] == 100.0
    single = project_hedged_ttft(off, 1, seed=2)
    assert single["p95"] == 1000.0


def test_deferred_hedge_projection_pays_the_delay_on_slow_requests() -> None:
    off = _two_point(2000, 3)
    projected = project_hedged_ttft(off, 2, seed=4, delay_ms=200.0)
    # A slow first request is rescued at 200 + 100 ms; the fast body is untouched.
    assert projected["p50"] == 100.0
    assert projected["p95"] == pytest.approx(300.0)


def test_a_projection_outside_the_measured_spread_is_flagged() -> None:
    profile = TailProfile()
    draws = random.Random(5)
    off = [profile.draw_ms(draws) for _ in range(600)]
    on = [min(profile.draw_ms(draws), profile.draw_ms(draws)) for _ in range(600)]
    right = compare("llm_ttft", off, on, project_hedged_ttft(off, 2, seed=7), seed=8)
    assert not any(right.disagrees.values())
    assert right.relative_change("p99") is not None and right.relative_change("p99") < -0.3  # type: ignore[operator]
    # A model that ignored the hedge (projected = off) is flagged where hedging cuts the tail.
    unchanged = {k: v for k, v in right.off_ms.items() if v is not None}
    wrong = compare("llm_ttft", off, on, unchanged, seed=8)
    assert wrong.disagrees["p95"] and wrong.disagrees["p99"]
