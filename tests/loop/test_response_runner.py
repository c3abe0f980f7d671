"""The response runner on its own, feeding an `AudioSink` that is not a jitter buffer (as an
endpoint whose client owns playout would), on the shipped fakes and the simulated clock."""

from __future__ import annotations

import asyncio

import numpy as np

from earshot.clock import SimulatedClock
from earshot.llm import FALLBACK_LINE
from earshot.llm.base import ChatMessage
from earshot.metrics.turn import TurnRecord
from earshot.session.response import ResponseFailed, ResponseHandle, ResponseRunner
from earshot.testing import FakeLlm, FakeTts, LlmScript


class ListSink:
    """Collects audio per response; a client "plays" nothing, so nothing is queued."""

    def __init__(self) -> None:
        self.audio: dict[int, list[np.ndarray]] = {}
        self.ended: list[int] = []

    def push(self, response_id: int, audio: np.ndarray, now_ms: float) -> bool:
        self.audio.setdefault(response_id, []).append(audio)
        return True

    def end(self, response_id: int) -> None:
        self.ended.append(response_id)

    def buffered_ms_of(self, response_id: int) -> float:
        return 0.0


def _run(scripts: list[LlmScript]) -> tuple[ResponseHandle, ListSink, list[ResponseFailed]]:
    clock = SimulatedClock(charge_compute=False)
    sink = ListSink()
    failures: list[ResponseFailed] = []
    runner = ResponseRunner(
        clock, FakeLlm(clock, scripts), FakeTts(), sink, on_failure=failures.append
    )
    handle = ResponseHandle(7, TurnRecord(1))

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(runner.run(handle, [ChatMessage("user", "hi")]))

    clock.run(main)
    return handle, sink, failures


def test_a_reply_streams_into_any_sink_with_its_marks() -> None:
    handle, sink, failures = _run([LlmScript(text="Hello there. How are you?", ttft_ms=150.0)])
    marks = handle.turn.marks_ms
    assert marks["llm_first_token"] - marks["llm_request"] == 150.0
    assert sum(len(a) for a in sink.audio[7]) == handle.synthesized_samples > 0
    assert sink.ended == [7] and failures == []
    assert [w.text for w in handle.words] == ["Hello", "there.", "How", "are", "you?"]


def test_an_llm_failure_streams_the_fallback_into_the_sink() -> None:
    handle, sink, failures = _run([LlmScript(fail_after_tokens=0)])
    assert handle.generated_text == FALLBACK_LINE and sink.audio[7]
    assert [f.stage for f in failures] == ["llm"] and sink.ended == [7]


def test_a_text_only_reply_streams_llm_deltas_without_tts() -> None:
    clock = SimulatedClock(charge_compute=False)
    sink = ListSink()
    deltas: list[str] = []
    tts = FakeTts()
    runner = ResponseRunner(
        clock,
        FakeLlm(
            clock, [LlmScript(text="One two three.", token_ms=10.0), LlmScript(fail_after_tokens=0)]
        ),
        tts,
        sink,
        on_delta=lambda h, d: deltas.append(d),
    )
    ok, failed = ResponseHandle(1, TurnRecord(1)), ResponseHandle(2, TurnRecord(2))

    async def main() -> None:
        await runner.run(ok, [ChatMessage("user", "count")], speak=False)
        await runner.run(failed, [ChatMessage("user", "again")], speak=False)

    clock.run(main)
    assert deltas == ["One ", "two ", "three. ", FALLBACK_LINE]
    assert ok.generated_text == "One two three. " and failed.generated_text == FALLBACK_LINE
    assert tts.texts == [] and sink.audio == {} and sink.ended == [1, 2]
    assert ok.turn.marks_ms["llm_first_token"] - ok.turn.marks_ms["llm_request"] == 200.0
