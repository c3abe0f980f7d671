"""Monte Carlo against closed forms, within stated sampling error; seeded reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest

from earshot.budget.dists import (
    DistributionError,
    LogNormal,
    expected_tokens_per_step,
    hedged_cdf,
    hedged_quantile,
    speculative_speedup,
)
from earshot.budget.levers import parse_lever
from earshot.budget.model import budget_from_mapping, load_preset
from earshot.budget.montecarlo import (
    SampleMode,
    budget_distributions,
    draw,
    simulate,
    steps_to_commit,
    tokens_per_step,
)


def test_lognormal_fit_hits_the_given_percentiles() -> None:
    dist = LogNormal.from_p50_p99(150.0, 600.0)
    assert dist.ppf(0.5) == pytest.approx(150.0, rel=1e-12)
    assert dist.ppf(0.99) == pytest.approx(600.0, rel=1e-12)
    assert dist.cdf(150.0) == pytest.approx(0.5)
    assert (
        LogNormal.from_p50_p99(80.0, 80.0).sample(np.random.default_rng(0), 3).tolist()
        == [80.0] * 3
    )
    with pytest.raises(DistributionError, match="p50 ≤ p99"):
        LogNormal.from_p50_p99(600.0, 150.0)
    with pytest.raises(DistributionError, match="p50 > 0"):
        LogNormal.from_p50_p99(0.0, 10.0)


def test_expected_tokens_formula_and_the_printed_example() -> None:
    assert expected_tokens_per_step(0.7, 4) == pytest.approx(2.77310, abs=1e-5)
    assert expected_tokens_per_step(1.0, 4) == 5.0
    assert expected_tokens_per_step(0.0, 4) == 1.0
    assert speculative_speedup(0.7, 4, 0.125) == pytest.approx(1.8487, abs=1e-4)  # ≈ 1.85×


@pytest.mark.parametrize(("alpha", "gamma"), [(0.7, 4), (0.5, 2), (0.9, 6), (0.3, 1)])
def test_simulated_tokens_per_step_match_the_formula(alpha: float, gamma: int) -> None:
    draws = tokens_per_step(alpha, gamma, 400_000, np.random.default_rng(1))
    se = draws.std(ddof=1) / math.sqrt(draws.size)
    assert abs(draws.mean() - expected_tokens_per_step(alpha, gamma)) < 4 * se
    # Per-count law: j accepted then a rejection, P = α^j (1 − α); all γ accepted, P = α^γ.
    for j in range(gamma):
        p = alpha**j * (1 - alpha)
        assert abs((draws == j + 1).mean() - p) < 4 * math.sqrt(p * (1 - p) / draws.size)


def test_simulation_rejects_the_printed_2_79() -> None:
    draws = tokens_per_step(0.7, 4, 400_000, np.random.default_rng(2))
    se = draws.std(ddof=1) / math.sqrt(draws.size)
    assert abs(draws.mean() - 2.79) > 5 * se  # 2.79 is ≈ 7.7 standard errors away


def test_steps_to_commit_obeys_walds_bounds() -> None:
    # Wald: E[steps]·E[tokens/step] = E[tokens committed] ∈ [K, K + γ], so
    # K/E ≤ E[steps] ≤ (K + γ)/E.
    k, alpha, gamma = 400, 0.7, 4
    steps = steps_to_commit(k, alpha, gamma, 20_000, np.random.default_rng(3))
    e = expected_tokens_per_step(alpha, gamma)
    se = steps.std(ddof=1) / math.sqrt(steps.size)
    assert k / e - 4 * se <= steps.mean() <= (k + gamma) / e + 4 * se


def test_speculative_lever_simulated_per_token_latency_matches_closed_form() -> None:
    budget = load_preset("realtime-typical")
    rng = np.random.default_rng(4)
    baseline = draw(budget_distributions(budget), 20_000, rng)
    summaries = simulate(baseline, [parse_lever("spec_decode,tokens=400")], rng)
    closed = 150.0 / speculative_speedup(0.7, 4, 0.125)
    # Finite K overshoots by at most γ tokens: ≤ 4/400 = 1 % above the closed form.
    assert closed * 0.995 <= summaries[1].mean_ms["first_token"] <= closed * 1.011


@pytest.mark.parametrize("num_requests", [2, 3])
def test_hedged_distribution_is_the_min_of_n(num_requests: int) -> None:
    dist = LogNormal.from_p50_p99(400.0, 1600.0)
    n = 200_000
    rng = np.random.default_rng(5)
    hedged = SampleMode(rng, n).hedge(dist.sample(rng, n), num_requests)
    # DKW: sup |F_n − F| ≤ sqrt(ln(2/δ)/2n) ≈ 0.006 at δ = 1e-6; resampling from the
    # single-request draws adds the same order again: tolerance 0.012.
    for x in (150.0, 300.0, 400.0, 700.0, 1200.0, 2000.0):
        assert abs((hedged <= x).mean() - hedged_cdf(dist.cdf(x), num_requests)) < 0.012
    for q in (0.5, 0.95, 0.99):
        assert np.quantile(hedged, q) == pytest.approx(
            hedged_quantile(dist, q, num_requests), rel=0.03
        )


def test_deferred_hedge_sends_the_second_request_late() -> None:
    # 90 % of requests take 100 ms, 10 % take 1000 ms; the hedge goes out at 200 ms:
    # fast first → 100; slow first, fast second → 200 + 100; both slow → 1000 (1 %).
    n = 200_000
    rng = np.random.default_rng(8)
    x = np.where(rng.random(n) < 0.1, 1000.0, 100.0)
    hedged = SampleMode(rng, n).hedge(x, 2, delay_ms=200.0)
    assert set(np.unique(hedged)) == {100.0, 300.0, 1000.0}
    assert (hedged == 300.0).mean() == pytest.approx(0.09, abs=0.004)
    assert (hedged == 1000.0).mean() == pytest.approx(0.01, abs=0.002)
    # A delay longer than every request never helps.
    assert np.array_equal(SampleMode(rng, n).hedge(x, 2, delay_ms=2000.0), x)
    # The lever's rule uses it: a 5000 ms delay on a 400 ms median leaves the tail alone.
    budget = budget_from_mapping({"terms": {"llm_ttft": [400, 1600]}})
    base = draw(budget_distributions(budget), 50_000, rng)
    late = simulate(base, [parse_lever("hedge=2,delay_ms=5000")], rng)
    soon = simulate(base, [parse_lever("hedge=2,delay_ms=500")], rng)
    assert late[1].percentiles_ms[99.0] == pytest.approx(late[0].percentiles_ms[99.0], rel=0.01)
    assert soon[1].percentiles_ms[99.0] < 0.8 * soon[0].percentiles_ms[99.0]
    with pytest.raises(ValueError, match="delay_ms"):
        simulate(base, [parse_lever("hedge=2,delay_ms=-1")], rng)


def test_hedging_cuts_the_tail_more_than_the_median() -> None:
    budget = budget_from_mapping({"terms": {"endpointing": 500, "llm_ttft": [400, 1600]}})
    rng = np.random.default_rng(6)
    summaries = simulate(
        draw(budget_distributions(budget), 100_000, rng), [parse_lever("hedge=2")], rng
    )
    base, hedged = summaries[0].percentiles_ms, summaries[1].percentiles_ms
    dist = LogNormal.from_p50_p99(400.0, 1600.0)
    assert hedged[99.0] - 500 == pytest.approx(hedged_quantile(dist, 0.99, 2), rel=0.03)
    assert base[99.0] - hedged[99.0] > 2 * (base[50.0] - hedged[50.0])


def test_same_seed_same_numbers_other_seed_other_numbers() -> None:
    budget = load_preset("pipeline-ranges")
    levers = [parse_lever(s) for s in ("preemptive,mismatch=0.2", "hedge=2")]

    def run(seed: int) -> list[dict[float, float]]:
        rng = np.random.default_rng(seed)
        summaries = simulate(draw(budget_distributions(budget), 5_000, rng), levers, rng)
        return [s.percentiles_ms for s in summaries]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_range_terms_are_drawn_with_p50_lo_and_p99_hi() -> None:
    budget = budget_from_mapping({"terms": {"stt_finalization": [200, 800]}})
    rng = np.random.default_rng(9)
    summary = simulate(draw(budget_distributions(budget), 200_000, rng), [], rng)[0]
    assert summary.percentiles_ms[50.0] == pytest.approx(200.0, rel=0.01)
    assert summary.percentiles_ms[99.0] == pytest.approx(800.0, rel=0.03)


def test_tail_term_is_the_heavy_one_and_none_when_nothing_varies() -> None:
    budget = budget_from_mapping(
        {"terms": {"endpointing": [400, 500], "llm_ttft": [300, 3000], "jitter_buffer": 80}}
    )
    rng = np.random.default_rng(10)
    summary = simulate(draw(budget_distributions(budget), 50_000, rng), [], rng)[0]
    assert summary.tail_term == "llm_ttft"
    assert summary.tail_excess_ms["jitter_buffer"] == 0.0
    fixed = simulate(
        draw(budget_distributions(load_preset("realtime-typical")), 1000, rng), [], rng
    )
    assert fixed[0].tail_term is None
    assert set(fixed[0].percentiles_ms.values()) == {850.0}


def test_preemptive_mismatch_in_samples_is_a_coin_flip_per_turn() -> None:
    # 1.5 s budget (constants): the LLM shows 100 ms when the partial held, 600 when it restarts.
    budget = load_preset("pipeline-1.5s")
    rng = np.random.default_rng(11)
    n = 100_000
    summaries = simulate(
        draw(budget_distributions(budget), n, rng), [parse_lever("preemptive,mismatch=0.25")], rng
    )
    expected = 0.75 * 100 + 0.25 * 600
    se = 500 * math.sqrt(0.25 * 0.75 / n)
    assert abs(summaries[1].mean_ms["llm_ttft"] - expected) < 4 * se


def test_set_levers_shift_the_distribution_in_samples_mode() -> None:
    budget = budget_from_mapping({"terms": {"endpointing": [500, 900], "jitter_buffer": [60, 120]}})
    rng = np.random.default_rng(12)
    baseline = draw(budget_distributions(budget), 20_000, rng)
    summaries = simulate(baseline, [parse_lever("vad_silence=300,from=500")], rng)
    assert summaries[1].mean_ms["endpointing"] - summaries[0].mean_ms[
        "endpointing"
    ] == pytest.approx(-200.0)


def test_dist_override_must_name_a_budget_term() -> None:
    with pytest.raises(DistributionError, match="not terms of"):
        budget_distributions(load_preset("realtime-typical"), {"llm_ttft": LogNormal.constant(1)})


def test_model_choice_rescales_the_distribution_keeping_its_shape() -> None:
    budget = budget_from_mapping({"terms": {"llm_ttft": [600, 2400]}})
    rng = np.random.default_rng(13)
    baseline = draw(budget_distributions(budget), 20_001, rng)
    mode = SampleMode(rng, 20_001)
    steps = simulate(baseline, [parse_lever("model=gpt-4o-mini")], rng)
    # Median moves to the midpoint of the published 120–200 ms; p99/p50 ratio is unchanged.
    ratio_before = steps[0].percentiles_ms[99.0] / steps[0].percentiles_ms[50.0]
    assert steps[1].percentiles_ms[50.0] == pytest.approx(160.0, rel=1e-9)
    assert steps[1].percentiles_ms[99.0] / 160.0 == pytest.approx(ratio_before, rel=1e-9)
    assert float(mode.reference(baseline["llm_ttft"])) == pytest.approx(
        steps[0].percentiles_ms[50.0], rel=1e-9
    )
