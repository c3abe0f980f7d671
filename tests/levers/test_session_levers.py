"""The levers inside the whole loop, on the shipped fakes and the simulated clock (exact)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from earshot.clock import SimulatedClock
from earshot.levers.cache import ResponseCache
from earshot.levers.hedge import HedgeConfig, HedgedLLM
from earshot.levers.preemptive import PreemptiveConfig
from earshot.levers.session_levers import SessionLevers
from earshot.llm.base import LanguageModel
from earshot.metrics.turn import TurnRecord
from earshot.session.config import SessionConfig
from earshot.session.session import Session
from earshot.testing import EnergyVad, FakeLlm, FakeStt, FakeTts, LlmScript, SyntheticCaller
from earshot.transports.file import FileTransport
from earshot.turns.endpointer import FixedEndpointer

JITTER_MS = 40.0
EOT_MS = 500.0


def call(
    speech_ms: Sequence[tuple[float, float]],
    transcripts: Sequence[str],
    *,
    levers: SessionLevers | None = None,
    ttft_ms: float = 400.0,
    ms_per_word: float = 150.0,
    llm: LanguageModel | None = None,
    clock: SimulatedClock | None = None,
) -> tuple[list[TurnRecord], FakeLlm | None]:
    clock = clock or SimulatedClock(charge_compute=False)
    fake = FakeLlm(clock, default=LlmScript(text="We open at nine.", ttft_ms=ttft_ms))
    session = Session(
        SessionConfig(max_tail_ms=10_000.0, jitter_ms=JITTER_MS),
        clock,
        EnergyVad(),
        FakeStt(transcripts, ms_per_word=ms_per_word),
        llm or fake,
        FakeTts(ms_per_char=20.0),
        FixedEndpointer(EOT_MS),
        levers=levers,
    )
    caller = SyntheticCaller(speech_ms, speech_ms[-1][1] + 6000.0)
    state = clock.run(lambda: session.run(FileTransport(caller, clock, max_tail_ms=10_000.0)))
    return [t for t in state.turns if t.complete], (fake if llm is None else None)


TWICE = [(500.0, 1500.0), (5000.0, 6000.0)]


def test_a_cache_hit_waits_for_endpointing_and_the_jitter_buffer_only() -> None:
    levers = SessionLevers(cache=ResponseCache())
    turns, fake = call(TWICE, ["what are your hours", "What are your hours?"], levers=levers)
    first, second = turns
    assert fake is not None and len(fake.calls) == 1  # the second reply never asked the LLM
    assert first.extra["cache"] == {"hit": False}
    assert second.extra["cache"]["hit"] is True and second.agent_text == first.agent_text
    terms = second.terms_ms
    assert terms is not None and second.ttfat_ms is not None
    assert terms["endpointing"] == pytest.approx(EOT_MS, abs=20.0)
    for name in (
        "stt_finalization",
        "llm_ttft",
        "sentence_aggregation",
        "tts_first_audio",
        "engine_overhead",
    ):
        assert terms[name] == 0.0
    assert JITTER_MS <= terms["jitter_buffer"] < JITTER_MS + 20.0  # hold + one frame tick
    assert second.ttfat_ms == pytest.approx(terms["endpointing"] + terms["jitter_buffer"])
    assert first.ttfat_ms is not None and second.ttfat_ms < first.ttfat_ms - 350.0
    assert levers.summary()["cache"]["hits"] == 1


def test_a_hit_on_the_partial_is_retracted_when_the_final_differs() -> None:
    # 1 s of speech + 300 ms pre-roll + 500 ms wait = 1.8 s of audio: at 400 ms per word the
    # partial at end-of-turn holds 4 words ("what are your hours", cached), the final all 6.
    levers = SessionLevers(cache=ResponseCache())
    turns, fake = call(
        TWICE,
        ["what are your hours", "what are your hours today please"],
        levers=levers,
        ms_per_word=400.0,
    )
    assert fake is not None and len(fake.calls) == 2
    second = turns[1]
    assert second.extra["cache"]["retracted"] is True
    assert fake.calls[1][-1].content == "what are your hours today please"
    assert levers.summary()["cache"]["retracted"] == 1 and second.terms_ms is not None
    assert second.terms_ms["llm_ttft"] == pytest.approx(400.0)


def test_uncacheable_turns_are_never_replayed() -> None:
    levers = SessionLevers(cache=ResponseCache(), cacheable=lambda user, reply: "time" not in user)
    _, fake = call(TWICE, ["what time is it", "what time is it"], levers=levers)
    assert fake is not None and len(fake.calls) == 2
    assert levers.summary()["cache"]["refused"] == 2


def test_preemptive_generation_removes_the_llm_ttft_from_a_matched_turn() -> None:
    texts = ["tell me the opening hours", "and on sunday"]
    off, _ = call(TWICE, texts)
    levers = SessionLevers(preemptive=PreemptiveConfig(stable_ms=60.0))
    on, fake = call(TWICE, texts, levers=levers)
    assert fake is not None and len(fake.calls) == 2  # no restarts: partials were final
    for before, after in zip(off, on, strict=True):
        assert after.extra["preemptive"]["llm_ttft_ms"] == pytest.approx(400.0)
        assert after.terms_ms is not None and after.terms_ms["llm_ttft"] == 0.0
        assert before.ttfat_ms is not None and after.ttfat_ms is not None
        saving = before.ttfat_ms - after.ttfat_ms
        assert saving >= 400.0  # at least the LLM's TTFT
        assert sum(after.terms_ms.values()) == pytest.approx(after.ttfat_ms)
        assert after.agent_text == before.agent_text
    assert levers.summary()["preemptive"]["committed"] == 2


def test_a_partial_that_keeps_changing_restarts_and_the_reply_is_on_the_final() -> None:
    # 1.3 s of audio per word: the partial grows during the end-of-turn wait.
    levers = SessionLevers(preemptive=PreemptiveConfig(stable_ms=20.0, max_speculations=3))
    turns, fake = call(
        [(500.0, 1500.0)],
        ["book a table for two people tonight please"],
        levers=levers,
        ms_per_word=250.0,
    )
    assert fake is not None
    summary = levers.summary()["preemptive"]
    assert summary["speculations"] >= 1 and summary["committed"] == 0
    assert fake.calls[-1][-1].content == "book a table for two people tonight please"
    assert turns and turns[0].terms_ms is not None
    assert turns[0].terms_ms["llm_ttft"] == pytest.approx(400.0)


def test_a_restart_counts_the_tokens_and_words_the_speculation_had_streamed() -> None:
    # A 30 ms TTFT: the speculation on the first stable partial streams its reply before the
    # next word (250 ms later) changes the partial and cancels it. None of it is heard.
    levers = SessionLevers(preemptive=PreemptiveConfig(stable_ms=20.0, max_speculations=3))
    turns, fake = call(
        [(500.0, 1500.0)],
        ["book a table for two people tonight please"],
        levers=levers,
        ttft_ms=30.0,
        ms_per_word=250.0,
    )
    assert fake is not None and turns
    summary = levers.summary()["preemptive"]
    restarts = summary["restarts"]
    assert restarts >= 1
    # FakeLlm streams "We open at nine." a word per delta: 4 tokens and 4 words per restart
    # that ran to its end; a cancelled one has at most that many.
    assert 1 <= summary["discarded_tokens"] <= 4 * restarts
    assert summary["discarded_words"] >= 1
    assert turns[0].heard_text == turns[0].agent_text  # the reply heard is the final's alone
    assert fake.calls[-1][-1].content == "book a table for two people tonight please"


def test_hedging_in_the_session_records_the_winner_in_the_turn() -> None:
    clock = SimulatedClock(charge_compute=False)
    slow = FakeLlm(clock, default=LlmScript(text="Slow answer.", ttft_ms=1500.0), name="slow")
    fast = FakeLlm(clock, default=LlmScript(text="Fast answer.", ttft_ms=150.0), name="fast")
    llm = HedgedLLM([slow, fast], clock, HedgeConfig(2))
    turns, _ = call([(500.0, 1500.0)], ["hello"], llm=llm, clock=clock)
    (turn,) = turns
    assert turn.agent_text == "Fast answer."
    assert turn.extra["llm_hedge"]["winner"] == 1 and turn.extra["llm_hedge"]["requests_sent"] == 2
    assert turn.terms_ms is not None and turn.terms_ms["llm_ttft"] == pytest.approx(150.0)


def test_a_slow_tool_in_the_session_is_masked_and_predictable_calls_prefetched() -> None:
    from earshot.levers.filler import FillerConfig
    from earshot.levers.tools import Tool, ToolRegistry, ToolUsingLLM
    from earshot.llm.scripted import LatencyProfile, RuleSet, ScriptedLLM

    clock = SimulatedClock(charge_compute=False)
    rules = RuleSet.model_validate(
        {
            "rules": [
                {"pattern": "hours", "tool": {"name": "hours"}, "reply": "We open {result}."},
                {"pattern": "order", "tool": {"name": "order_status"}, "reply": "{result}."},
            ],
            "default": "Okay.",
        }
    )
    ran: list[float] = []

    async def hours() -> str:
        ran.append(clock.now_ms())
        return "at nine"

    async def order_status() -> str:
        await clock.sleep_ms(1500.0)
        return "Your order has shipped"

    tools = ToolRegistry(
        [
            Tool("hours", "opening hours", hours, predictable=True),
            Tool("order_status", "order status", order_status),
        ]
    )
    llm = ToolUsingLLM(
        ScriptedLLM(rules, LatencyProfile(150.0, 10.0), clock),
        tools,
        clock,
        FillerConfig(threshold_ms=300.0, lines=("Let me check.",)),
    )
    turns, _ = call(
        TWICE,
        ["what are your hours", "where is my order"],
        llm=llm,
        clock=clock,
        levers=SessionLevers(tools=tools),
    )
    first, second = turns
    assert ran == [0.0]  # prefetched when the session started, served from there
    assert first.agent_text == "We open at nine." and first.extra["tools"][0]["prefetched"]
    assert second.agent_text == "Let me check. Your order has shipped."
    assert second.terms_ms is not None and second.ttfat_ms is not None
    assert second.terms_ms["tool"] == pytest.approx(300.0)  # masked after the threshold
    assert sum(second.terms_ms.values()) == pytest.approx(second.ttfat_ms)
    assert second.marks_ms["tool_end"] - second.marks_ms["tool_start"] == pytest.approx(1500.0)
