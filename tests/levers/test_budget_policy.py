"""Budget policy: the pure rule on a timeline, and the guard on the simulated clock."""

from __future__ import annotations

import contextlib

import pytest

from earshot.clock import SimulatedClock
from earshot.levers.budget_policy import SHORTER_INSTRUCTION, BudgetGuardLLM, BudgetPolicy, Fired
from earshot.levers.filler import FillerText
from earshot.levers.notes import bind_turn_notes
from earshot.llm.base import ChatMessage, LanguageModel
from earshot.testing import FakeLlm, LlmScript


def test_nothing_fires_before_the_line_or_after_a_token() -> None:
    policy = BudgetPolicy(line_ms=600.0, request_ms=1000.0, actions=("hedge", "shorter"))
    assert policy.poll(1599.0) == []
    assert policy.poll(1610.0) == [
        Fired("hedge", 1610.0, 600.0, 10.0),
        Fired("shorter", 1610.0, 600.0, 10.0),
    ]
    assert policy.poll(1700.0) == []  # once per turn
    quick = BudgetPolicy(line_ms=600.0, request_ms=0.0)
    quick.token(300.0)
    assert quick.poll(900.0) == []
    with pytest.raises(ValueError, match="unknown budget actions"):
        BudgetPolicy(600.0, 0.0, ("pray",))  # type: ignore[arg-type]


def _run(clock: SimulatedClock, llm: LanguageModel) -> tuple[str, float | None, dict[str, object]]:
    notes: dict[str, object] = {}

    async def main() -> tuple[str, float | None]:
        text, first = "", None
        with bind_turn_notes(notes):
            async with contextlib.aclosing(llm.stream([ChatMessage("user", "hi")])) as stream:
                async for delta in stream:
                    first = clock.now_ms() if first is None else first
                    text += delta
        return text, first

    text, first = clock.run(main)
    return text, first, notes


def test_past_the_line_the_guard_hedges_to_the_faster_backend_with_a_shorter_reply() -> None:
    clock = SimulatedClock(charge_compute=False)
    slow = FakeLlm(clock, default=LlmScript(text="A long slow answer.", ttft_ms=2000.0))
    fast = FakeLlm(clock, default=LlmScript(text="Short one.", ttft_ms=150.0))
    guard = BudgetGuardLLM(slow, clock, 600.0, ("hedge", "shorter"), fallback=fast)
    text, first, notes = _run(clock, guard)
    assert text == "Short one. " and first == pytest.approx(750.0)
    assert fast.calls[0][-1] == ChatMessage("system", SHORTER_INSTRUCTION)
    assert notes["budget_actions"] == [
        {"action": "hedge", "at_ms": 600.0, "line_ms": 600.0, "late_ms": 0.0},
        {"action": "shorter", "at_ms": 600.0, "line_ms": 600.0, "late_ms": 0.0},
    ]
    assert notes["budget_winner"] == 1


def test_a_filler_is_spoken_at_the_line_and_the_reply_follows() -> None:
    clock = SimulatedClock(charge_compute=False)
    slow = FakeLlm(clock, default=LlmScript(text="Here it is.", ttft_ms=1000.0))
    guard = BudgetGuardLLM(slow, clock, 600.0, ("filler",), filler_lines=("One moment.",))
    deltas: list[str] = []

    async def main() -> None:
        async with contextlib.aclosing(guard.stream([ChatMessage("user", "hi")])) as stream:
            async for delta in stream:
                deltas.append(delta)

    text, first, notes = _run(clock, guard)
    assert text == "One moment. Here it is. " and first == pytest.approx(600.0)
    assert notes["budget_actions"][0]["action"] == "filler"  # type: ignore[index]
    clock.run(main)
    # The filler is marked, so the response runner cuts it at a word when the reply is ready.
    (filler,) = [d for d in deltas if isinstance(d, FillerText)]
    assert filler == "One moment. " and filler.source == "budget" and deltas[0] is filler


def test_within_the_line_nothing_happens() -> None:
    clock = SimulatedClock(charge_compute=False)
    ok = FakeLlm(clock, default=LlmScript(text="Fine.", ttft_ms=200.0))
    fast = FakeLlm(clock)
    text, first, notes = _run(clock, BudgetGuardLLM(ok, clock, 600.0, fallback=fast))
    assert text == "Fine. " and first == pytest.approx(200.0)
    assert "budget_actions" not in notes and fast.calls == []
