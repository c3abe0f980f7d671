"""A TTFT trial whose stream never ends is abandoned and recorded as failed instead of holding
`earshot eval levers` forever (simulated clock: the 60 s guard passes in no real time)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from earshot.clock import SimulatedClock
from earshot.evals.levers_runs import REQUEST_TIMEOUT_MS, ttft_trials
from earshot.llm.base import ChatMessage


class StuckAfterFirstToken:
    """An LLM that sends one token and then never another, nor an end."""

    name = "stuck"

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        yield "Hi"
        await asyncio.Event().wait()


class Quick:
    name = "quick"

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        yield "Hello."


def test_a_stuck_stream_is_abandoned_and_the_other_arms_still_run() -> None:
    clock = SimulatedClock()

    async def main():  # type: ignore[no-untyped-def]
        return await ttft_trials(
            {"stuck": StuckAfterFirstToken(), "quick": Quick()}, ["hi"], clock, 2
        )  # type: ignore[dict-item]

    results = clock.run(main)
    assert [t.ttft_ms for t in results["quick"]] == [0.0, 0.0]
    for trial in results["stuck"]:
        assert trial.ttft_ms == 0.0  # the first token came
        assert "abandoned" in trial.error
        assert trial.total_ms >= REQUEST_TIMEOUT_MS - 1
