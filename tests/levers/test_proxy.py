"""The latency-injecting proxy on 127.0.0.1 (real aiohttp server; stand-in upstream, see
conftest), and `earshot eval levers`' hedge arm end to end through it."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from earshot.clock import SystemClock
from earshot.evals.latency_proxy import LatencyProxy, TailProfile
from earshot.evals.levers_runs import ttft_trials
from earshot.levers.hedge import HedgeConfig, HedgedLLM
from earshot.llm.openai_compat import OpenAICompatLLM

from .conftest import Upstream


def test_the_tail_profile_is_heavy_tailed_as_published() -> None:
    profile = TailProfile()
    rng = random.Random(0)
    draws = np.array([profile.draw_ms(rng) for _ in range(20_000)])
    assert np.percentile(draws, 50) == pytest.approx(165.0, rel=0.05)  # the gpt-4o-mini body
    assert 800.0 < np.percentile(draws, 99) < 1300.0  # the slow path sets the p99
    # The first of two independent draws: the tail is what hedging removes.
    pairs = np.minimum(draws[::2], draws[1::2])
    assert np.percentile(pairs, 99) < 0.5 * np.percentile(draws, 99)


def test_proxy_delays_each_request_and_a_hedge_loser_never_reaches_the_upstream(
    upstream: Upstream,
) -> None:
    profile = TailProfile(60.0, 61.0, 0.5, 600.0, 601.0, name="test", source="test")
    with (
        LatencyProxy(upstream.base_url, profile, seed=3) as a,
        LatencyProxy(upstream.base_url, profile, seed=4) as b,
    ):
        assert httpx.get(f"{a.base_url}/models").json() == {"data": [{"id": "stub"}]}
        clock = SystemClock()
        single = OpenAICompatLLM(a.base_url, "stub", clock)
        hedged = HedgedLLM(
            [
                OpenAICompatLLM(a.base_url, "stub", clock),
                OpenAICompatLLM(b.base_url, "stub", clock),
            ],
            clock,
            HedgeConfig(2),
        )
        import asyncio

        async def main() -> dict[str, list]:  # type: ignore[type-arg]
            try:
                return await ttft_trials({"off": single, "on": hedged}, ["hi"], clock, 8)
            finally:
                await single.aclose()
                await hedged.aclose()

        results = asyncio.run(main())
        delays = a.stats.delays_ms + b.stats.delays_ms
        forwarded = a.stats.forwarded + b.stats.forwarded
        log = a.stats.log + b.stats.log
    for trial in results["off"] + results["on"]:
        assert trial.error == "" and trial.chars == len("Hello from the stub server.")
        assert trial.ttft_ms is not None and trial.ttft_ms >= 59.0  # at least the injected delay
    cancelled = a.stats.cancelled_in_delay + b.stats.cancelled_in_delay
    assert cancelled >= 1  # a slow loser was closed while held
    assert forwarded == len(delays) - cancelled  # ... and was never forwarded
    assert len(upstream.requests) <= forwarded
    # The per-request log: one record per request, its delay waited out before forwarding;
    # a forwarded request that ran to its end has the upstream's first token after that.
    assert len(log) == len(delays)
    assert all(r.last_user == "hi" for r in log)
    held = [r for r in log if r.forwarded_ms is None]
    assert len(held) == cancelled and all(r.closed_by_client for r in held)
    done = [r for r in log if r.forwarded_ms is not None and not r.closed_by_client]
    assert done
    for r in done:
        assert r.forwarded_ms - r.arrived_ms >= r.delay_ms - 1.0
        assert r.upstream_first_content_ms is not None
        assert r.upstream_first_content_ms >= r.forwarded_ms
    for trial in results["on"]:
        assert trial.notes["llm_hedge"]["requests_sent"] == 2


def run_eval(upstream: Upstream, out_dir: Path, lever: str, **options: object) -> Any:
    """`earshot eval levers --quick --levers LEVER` against the stand-in; the harness's result
    (asserted to have run and reported without failure)."""
    from earshot.evals.harness import CommonSettings, execute
    from earshot.evals.levers import EVALUATION, LeversOptions

    opts = LeversOptions(
        out_dir=out_dir,
        levers=(lever,),
        quick=True,
        base_urls=(upstream.base_url,),
        model="stub",
        quiet=True,
        **options,  # type: ignore[arg-type]
    )
    done = execute(EVALUATION, opts, CommonSettings(out_dir, quiet=True))
    assert done.run.failure == "" and done.report.exit_code == 0
    return done


def test_eval_levers_hedge_arm_writes_table_json_and_chart(
    upstream: Upstream, tmp_path: Path
) -> None:
    done = run_eval(upstream, tmp_path, "hedge", trials=6)
    doc = done.report.doc
    arms = doc["levers"]["hedge"]["arms"]
    assert set(arms) == {"off", "hedge=2", "hedge=2 same backend", "hedge=2 delayed p90"}
    assert arms["hedge=2"]["requests_sent"] == 12 and arms["off"]["requests"] == 6
    assert arms["hedge=2 same backend"]["requests_sent"] == 12
    # The model is fed the deferred hedge's delay (200 ms until 10 TTFTs are measured).
    assert arms["hedge=2"]["model_lever"] == "hedge=2"
    assert arms["hedge=2 delayed p90"]["model_lever"] == "hedge=2,delay_ms=200"
    assert doc["levers"]["hedge"]["rig"]["trial_max_tokens"] == 1
    comparison = arms["hedge=2"]["comparison"]
    assert comparison["num_off"] == 6 and comparison["projected_on_ms"]["p50"] is not None
    assert "hedge — llm_ttft" in (tmp_path / "levers.txt").read_text()
    saved = json.loads((tmp_path / "levers.json").read_text())
    assert saved["injected_ttft"]["name"] == TailProfile().name
    assert saved["levers"] == json.loads(json.dumps(doc["levers"]))
    # the proxies' counters, summed per replica: every winner reached a proxy; a loser
    # cancelled before its connection opened never did (the direct arms bypass the proxies)
    sent = sum(arm["requests_sent"] for arm in arms.values())
    winners = sum(arm["requests"] for arm in arms.values())
    assert len(saved["proxy_stats"]) == 2
    assert winners <= sum(p["requests"] for p in saved["proxy_stats"]) <= sent
    assert (tmp_path / "levers.png").stat().st_size > 1000
    lines = (tmp_path / "levers.trials.jsonl").read_text().splitlines()
    assert [json.loads(x)["trial"] for x in lines] == ["hedge"]
    # every request each proxy saw, one JSON line each
    for k, stats in enumerate(saved["proxy_stats"]):
        path = tmp_path / "servers" / f"proxy-hedge-{k}.requests.jsonl"
        logged = path.read_text().splitlines()
        assert len(logged) == stats["requests"]


def test_eval_levers_context_arm_writes_its_section_beside_the_budget_model(
    upstream: Upstream, tmp_path: Path
) -> None:
    done = run_eval(upstream, tmp_path, "context")
    arm = done.report.doc["levers"]["context"]
    assert arm["failed"] == 0 and len(arm["requests"]) == 4 * arm["turns"]
    # The stand-in charges only the words a prompt does not share with the one before.
    c = arm["comparison"]
    assert c["on_ms"]["p50"] < c["off_ms"]["p50"]
    assert arm["prefill_fit"]["off"]["ms_per_token"] > 0.0
    assert c["projected_on_ms"]["p50"] is not None
    assert arm["server_prompt_cache"] is None  # not a server the rig started
    text = (tmp_path / "levers.txt").read_text()
    assert "context — llm_ttft" in text and "prompt cache not recorded" in text


def test_eval_levers_cli_rejects_an_unknown_lever(tmp_path: Path) -> None:
    import argparse

    from earshot.evals import levers

    parser = argparse.ArgumentParser()
    levers.add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path / "o"), "--levers", "hedge,nope", "--quiet"])
    assert levers.run(args) == 2
    assert not (tmp_path / "o").exists()
