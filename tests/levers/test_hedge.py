"""Hedging: the pure race on synthetic timelines, and HedgedLLM on the simulated clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

import pytest

from earshot.clock import SimulatedClock
from earshot.levers.hedge import (
    Cancel,
    GiveUp,
    HedgeConfig,
    HedgedLLM,
    HedgeRace,
    Launch,
    TtftHistory,
    Win,
    hedge_delay_ms,
)
from earshot.levers.notes import bind_turn_notes
from earshot.llm.base import ChatMessage, LlmError

# -- the pure race ----------------------------------------------------------------------------


def test_immediate_race_launches_all_and_the_first_token_cancels_the_rest() -> None:
    race = HedgeRace(num_requests=3, num_backends=2, delay_ms=0.0, start_ms=100.0)
    assert race.start() == [Launch(0, 0), Launch(1, 1), Launch(2, 0)]
    assert race.next_launch_ms is None
    assert race.first_token(1, 250.0) == [Win(1), Cancel(0), Cancel(2)]
    assert race.finished and race.winner == 1
    out = race.outcome()
    assert out.requests_sent == 3 and out.cancelled == 2 and out.winner_ttft_ms == 150.0
    # A token that arrives after the race is over is cancelled too.
    assert race.first_token(0, 260.0) == [Cancel(0)]


def test_delayed_hedge_sends_the_second_request_only_after_the_threshold() -> None:
    race = HedgeRace(num_requests=2, num_backends=1, delay_ms=200.0, start_ms=0.0)
    assert race.start() == [Launch(0, 0)]
    assert race.next_launch_ms == 200.0
    assert race.poll(199.9) == []
    assert race.poll(200.0) == [Launch(1, 0)]
    assert race.poll(1000.0) == []
    assert race.first_token(1, 330.0) == [Win(1), Cancel(0)]
    assert race.outcome().launch_offsets_ms == (0.0, 200.0)
    assert race.outcome().winner_ttft_ms == pytest.approx(130.0)


def test_no_hedge_when_the_first_request_answers_before_the_threshold() -> None:
    race = HedgeRace(num_requests=2, num_backends=2, delay_ms=200.0, start_ms=0.0)
    race.start()
    assert race.first_token(0, 150.0) == [Win(0)]
    assert race.next_launch_ms is None and race.poll(500.0) == []
    assert race.outcome().requests_sent == 1 and race.outcome().cancelled == 0


def test_a_failure_fails_over_at_once_and_all_failing_gives_up() -> None:
    race = HedgeRace(num_requests=2, num_backends=2, delay_ms=500.0, start_ms=0.0)
    race.start()
    assert race.failed(0, 40.0, "refused") == [Launch(1, 1)]
    actions = race.failed(1, 90.0, "HTTP 500")
    assert actions == [GiveUp(("request 0: refused", "request 1: HTTP 500"), False)]
    assert race.finished and race.winner is None


def test_percentile_delay_uses_the_measured_ttft_once_there_are_enough() -> None:
    config = HedgeConfig(2, delay_ms=300.0, percentile=90.0, min_history=5)
    history = TtftHistory()
    for ttft in (100.0, 110.0, 120.0, 130.0):
        history.observe("a", ttft)
    assert hedge_delay_ms(config, history, "a") == 300.0  # 4 < min_history: the fixed delay
    history.observe("a", 1000.0)
    assert hedge_delay_ms(config, history, "a") == pytest.approx(130.0 + 0.6 * 870.0)


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="num_requests"):
        HedgeConfig(0)
    with pytest.raises(ValueError, match="percentile"):
        HedgeConfig(2, percentile=100.0)


# -- the shell on the simulated clock ---------------------------------------------------------


@dataclass
class TimedLlm:
    """Streams ``tokens`` after ``ttft_ms``; records whether its stream was closed early."""

    clock: SimulatedClock
    ttft_ms: float
    tokens: Sequence[str] = ("Hello ", "there.")
    fail: bool = False
    name: str = "timed"
    simulated: bool = True
    started_ms: list[float] = field(default_factory=list)
    closed_early: list[float] = field(default_factory=list)

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        self.started_ms.append(self.clock.now_ms())
        done = False
        try:
            await self.clock.sleep_ms(self.ttft_ms)
            if self.fail:
                raise LlmError("backend down")
            for token in self.tokens:
                yield token
                await self.clock.sleep_ms(10.0)
            done = True
        finally:
            if not done:
                self.closed_early.append(self.clock.now_ms())


def _collect(clock: SimulatedClock, llm: HedgedLLM) -> tuple[str, float | None, dict[str, object]]:
    notes: dict[str, object] = {}

    async def main() -> tuple[str, float | None]:
        text, first = "", None
        with bind_turn_notes(notes):
            async with contextlib.aclosing(llm.stream([ChatMessage("user", "hi")])) as s:
                async for delta in s:
                    first = clock.now_ms() if first is None else first
                    text += delta
        return text, first

    text, first = clock.run(main)
    return text, first, notes


def test_hedged_llm_takes_the_faster_backend_and_closes_the_slow_one_at_once() -> None:
    clock = SimulatedClock(charge_compute=False)
    slow, fast = TimedLlm(clock, 1500.0, name="slow"), TimedLlm(clock, 120.0, name="fast")
    text, first, notes = _collect(clock, HedgedLLM([slow, fast], clock, HedgeConfig(2)))
    assert text == "Hello there." and first == pytest.approx(120.0)
    assert slow.closed_early == [pytest.approx(120.0)]  # cancelled the moment fast answered
    assert fast.closed_early == []
    assert notes["llm_hedge"] == {
        "requests_sent": 2,
        "winner": 1,
        "winner_backend": 1,
        "winner_ttft_ms": 120.0,
        "launch_offsets_ms": [0.0, 0.0],
        "cancelled": 1,
        "errors": [],
        "delay_ms": 0.0,
    }


def test_delayed_hedge_on_the_clock_and_no_second_request_when_fast() -> None:
    clock = SimulatedClock(charge_compute=False)
    first_backend, second_backend = TimedLlm(clock, 900.0), TimedLlm(clock, 100.0)
    llm = HedgedLLM([first_backend, second_backend], clock, HedgeConfig(2, delay_ms=250.0))
    _, first, notes = _collect(clock, llm)
    assert second_backend.started_ms == [250.0] and first == pytest.approx(350.0)
    assert notes["llm_hedge"]["winner"] == 1  # type: ignore[index]
    quick = TimedLlm(clock, 100.0)
    late = TimedLlm(clock, 100.0)
    _collect(clock, HedgedLLM([quick, late], clock, HedgeConfig(2, delay_ms=250.0)))
    assert len(quick.started_ms) == 1 and late.started_ms == []


def test_a_failing_backend_loses_the_race_and_all_failing_raises() -> None:
    clock = SimulatedClock(charge_compute=False)
    broken, ok = TimedLlm(clock, 10.0, fail=True), TimedLlm(clock, 300.0)
    text, first, _ = _collect(clock, HedgedLLM([broken, ok], clock, HedgeConfig(2, 1000.0)))
    assert text == "Hello there."
    assert ok.started_ms == [10.0]  # failed over at once, not after the 1000 ms delay
    assert first == pytest.approx(310.0)
    both = HedgedLLM([TimedLlm(clock, 5.0, fail=True)], clock, HedgeConfig(2))
    with pytest.raises(LlmError, match="all 2 hedged LLM requests failed"):
        _collect(clock, both)


def test_cancelling_the_consumer_mid_race_closes_every_request() -> None:
    clock = SimulatedClock(charge_compute=False)
    a, b = TimedLlm(clock, 1000.0), TimedLlm(clock, 2000.0)
    llm = HedgedLLM([a, b], clock, HedgeConfig(2))

    async def main() -> None:
        async def consume() -> None:
            async for _ in llm.stream([ChatMessage("user", "hi")]):
                pass

        task = asyncio.ensure_future(consume())
        await clock.sleep_ms(50.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    clock.run(main)
    assert a.closed_early == [50.0] and b.closed_early == [50.0]
