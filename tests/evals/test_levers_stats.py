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


def test_the_models_change_is_taken_on_its_own_baseline() -> None:
    # Six turns; a lever that saves 100 ms on every one. Resampled, the p95 of six turns is
    # their maximum (5180), not their interpolated p95 (4648): measured against the
    # interpolated off the model would seem to add time.
    off = [1000.0, 1500.0, 2000.0, 2500.0, 4000.0, 5180.0]
    on = [x - 100.0 for x in off]
    model_off = {"p50": 2250.0, "p95": 5180.0, "p99": 5180.0}
    model_on = {k: v - 100.0 for k, v in model_off.items()}
    naive = compare("ttfat", off, on, model_on, seed=1)
    assert naive.projected_change_ms["p95"] is not None and naive.projected_change_ms["p95"] > 0
    fair = compare("ttfat", off, on, model_on, seed=1, projected_off=model_off)
    assert fair.projected_change_ms == {"p50": -100.0, "p95": -100.0, "p99": -100.0}
    assert fair.projected_ms["p95"] == pytest.approx(fair.off_ms["p95"] - 100.0)  # type: ignore[operator]
    assert not any(fair.disagrees.values())
