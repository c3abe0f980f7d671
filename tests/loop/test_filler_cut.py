"""The filler in the whole loop, on the shipped fakes and the simulated clock (exact).

A tool (or the LLM, for the budget policy) runs past its line, a filler is spoken, and the real
answer's first audio arrives while the filler is mid-word: the filler must finish that word,
fade out, and the answer follow at once, with the heard text and history holding exactly the
filler words that played.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, ms_to_samples
from earshot.clock import SimulatedClock
from earshot.levers.budget_policy import BudgetGuardLLM
from earshot.levers.filler import FillerConfig
from earshot.levers.tools import Tool, ToolRegistry, ToolUsingLLM
from earshot.llm.base import ChatMessage, LanguageModel
from earshot.llm.scripted import LatencyProfile, RuleSet, ScriptedLLM
from earshot.metrics.turn import TurnRecord
from earshot.playout.jitter import JitterBuffer
from earshot.session.config import SessionConfig
from earshot.session.response import AudioSink, ResponseFailed, ResponseHandle, ResponseRunner
from earshot.session.session import Session, SessionState
from earshot.testing import EnergyVad, FakeLlm, FakeStt, FakeTts, LlmScript, SyntheticCaller
from earshot.testing.transport import FakeNetworkTransport
from earshot.transports.base import Transport
from earshot.transports.file import FileTransport, MemoryRecorder
from earshot.tts.base import WordTiming
from earshot.tts.heard import resume_text
from earshot.turns.bargein import BargeInConfig
from earshot.turns.endpointer import FixedEndpointer

FILLER = "One moment while I check."
MS_PER_CHAR = 60.0  # FakeTts: the filler is 1.56 s, "while" plays 660-1020 ms into it
THRESHOLD_MS = 300.0
FADE_MS = 10.0
SPEECH = [(500.0, 1500.0)]


@dataclass
class Run:
    turn: TurnRecord
    state: SessionState
    agent: Pcm16
    transport: Transport


def _run(
    llm: LanguageModel,
    clock: SimulatedClock,
    transcript: str,
    *,
    barge_in: tuple[float, float] | None = None,
    network: bool = False,
) -> Run:
    config = SessionConfig(max_tail_ms=10_000.0, jitter_ms=40.0)
    speech = SPEECH if barge_in is None else [*SPEECH, barge_in]
    recorder = MemoryRecorder(16 * 20_000)
    session = Session(
        config,
        clock,
        EnergyVad(),
        FakeStt([transcript, "no wait stop"], ms_per_word=50.0),
        llm,
        FakeTts(ms_per_char=MS_PER_CHAR),
        FixedEndpointer(500.0),
        bargein=BargeInConfig() if barge_in is not None else None,
    )
    caller = SyntheticCaller(speech, 8000.0)
    transport: Transport = (
        FakeNetworkTransport(clock, caller, downlink_ms=60.0, client_playout_ms=40.0)
        if network
        else FileTransport(caller, clock, recorder=recorder, max_tail_ms=10_000.0)
    )
    state = clock.run(lambda: session.run(transport))
    return Run(state.turns[0], state, recorder.agent_track(), transport)


def _filler_words() -> list[WordTiming]:
    return [w for chunk in FakeTts(MS_PER_CHAR).synthesize(FILLER) for w in chunk.words]


def _tool_llm(clock: SimulatedClock, tool_ms: float) -> ToolUsingLLM:
    rules = RuleSet.model_validate(
        {
            "rules": [{"pattern": "order", "tool": {"name": "order"}, "reply": "It {result}."}],
            "default": "Okay.",
        }
    )

    async def order() -> str:
        await clock.sleep_ms(tool_ms)
        return "has shipped"

    return ToolUsingLLM(
        ScriptedLLM(rules, LatencyProfile(100.0, 10.0), clock),
        ToolRegistry([Tool("order", "order status", order)]),
        clock,
        FillerConfig(threshold_ms=THRESHOLD_MS, lines=(FILLER,), fade_ms=FADE_MS),
    )


def _longest_silence(track: Pcm16, start: int, end: int) -> int:
    """The longest run of exact zeros in ``track[start:end]`` (FakeTts never writes a 0)."""
    longest = run = 0
    for sample in track[start:end]:
        run = run + 1 if sample == 0 else 0
        longest = max(longest, run)
    return longest


def _assert_cut_at_a_word_end(run: Run, source: str) -> dict[str, Any]:
    turn = run.turn
    filler: dict[str, Any] = turn.extra["filler"]
    assert filler["source"] == source and filler["outcome"] == "cut"
    words = _filler_words()
    ends_ms = [w.end_sample / 16 for w in words]
    assert filler["cut_ms"] in ends_ms  # the cut is the end of a word...
    assert filler["sent_ms"] < filler["cut_ms"]  # ...which was playing when the answer came
    i = ends_ms.index(filler["cut_ms"])
    assert words[i].start_sample / 16 < filler["sent_ms"]  # mid-word, not between words
    heard = " ".join(w.text for w in words[: i + 1])
    assert filler["heard"] == heard and filler["dropped"]
    assert filler["fade_ms"] == pytest.approx(FADE_MS)
    # Heard text and history: the filler's words up to the cut, then the answer.
    assert turn.heard_text.startswith(heard + " ") and filler["dropped"] not in turn.heard_text
    assert turn.agent_text == turn.heard_text
    assert run.state.history[-1].content == turn.agent_text
    # The audio: filler to the cut (faded), the answer at once — no gap longer than the fade.
    start = ms_to_samples(turn.marks_ms["playout_start"])
    cut = start + words[i].end_sample
    track = run.agent
    assert track[cut - 1] == 0 and abs(int(track[cut - 2])) < 8000 * 2 / 160 + 1  # ramped
    spoken = np.flatnonzero(track)
    assert _longest_silence(track, start, int(spoken[-1])) <= ms_to_samples(FADE_MS)
    assert np.count_nonzero(track[cut : cut + 320]) == 320  # the answer plays right after
    # The terms still sum to TTFAT.
    assert turn.terms_ms is not None and turn.ttfat_ms is not None
    assert sum(turn.terms_ms.values()) == pytest.approx(turn.ttfat_ms)
    return filler


def test_a_slow_tool_s_filler_is_cut_at_the_next_word_boundary_by_the_answer() -> None:
    clock = SimulatedClock(charge_compute=False)
    run = _run(_tool_llm(clock, tool_ms=900.0), clock, "where is my order")
    turn = run.turn
    marks = turn.marks_ms
    # The filler starts only after the threshold; the tool term is measured.
    assert turn.extra["tool_filler"]["at_ms"] - marks["tool_start"] == pytest.approx(THRESHOLD_MS)
    assert marks["tool_end"] - marks["tool_start"] == pytest.approx(900.0)
    assert turn.terms_ms is not None and turn.terms_ms["tool"] == pytest.approx(THRESHOLD_MS)
    filler = _assert_cut_at_a_word_end(run, "tool")
    # The answer was ready mid-"while": the cut is at its end, after the tool had answered.
    assert filler["heard"] == "One moment while"
    assert filler["cut_at_ms"] >= marks["tool_end"]
    assert turn.agent_text == "One moment while It has shipped."
    assert turn.extra["uncacheable"] is True


def test_a_tool_just_past_the_threshold_leaves_one_word_of_filler() -> None:
    clock = SimulatedClock(charge_compute=False)
    run = _run(_tool_llm(clock, tool_ms=THRESHOLD_MS - 90.0), clock, "where is my order")
    assert "tool_filler" not in run.turn.extra  # answered within the threshold: no filler
    clock = SimulatedClock(charge_compute=False)
    # 10 ms past the threshold: the answer is ready ~120 ms later, inside "One" (0-210 ms).
    run = _run(_tool_llm(clock, tool_ms=THRESHOLD_MS + 10.0), clock, "where is my order")
    filler = _assert_cut_at_a_word_end(run, "tool")
    assert filler["heard"] == "One" and filler["dropped"] == "moment while I check."
    assert run.turn.agent_text == "One It has shipped."


def test_a_filler_that_played_out_before_the_answer_is_whole() -> None:
    clock = SimulatedClock(charge_compute=False)
    run = _run(_tool_llm(clock, tool_ms=3000.0), clock, "where is my order")
    filler = run.turn.extra["filler"]
    assert filler["outcome"] == "whole" and "cut_ms" not in filler
    assert run.turn.agent_text == f"{FILLER} It has shipped."
    assert run.turn.heard_text == run.turn.agent_text


def test_the_budget_policy_s_filler_takes_the_same_cut() -> None:
    clock = SimulatedClock(charge_compute=False)
    slow = FakeLlm(clock, default=LlmScript(text="Your order has shipped.", ttft_ms=1200.0))
    guard = BudgetGuardLLM(slow, clock, 300.0, ("filler",), filler_lines=(FILLER,))
    run = _run(guard, clock, "where is my order")
    turn = run.turn
    (fired,) = turn.extra["budget_actions"]
    assert fired["action"] == "filler"
    assert fired["at_ms"] - turn.marks_ms["llm_request"] == pytest.approx(300.0)
    filler = _assert_cut_at_a_word_end(run, "budget")
    assert filler["at_ms"] == pytest.approx(fired["at_ms"])
    assert turn.agent_text.endswith("Your order has shipped.")
    assert turn.terms_ms is not None and "tool" not in turn.terms_ms
    assert SAMPLE_RATE_HZ == 16_000


def test_a_barge_in_after_the_cut_keeps_the_heard_filler_words_and_can_resume() -> None:
    clock = SimulatedClock(charge_compute=False)
    # The answer "It has shipped." plays from ~3.4 s; the caller cuts in at 3.6 s.
    run = _run(_tool_llm(clock, 900.0), clock, "where is my order", barge_in=(3600.0, 4600.0))
    turn = run.turn
    assert turn.extra["filler"]["outcome"] == "cut" and turn.interrupted
    (record,) = turn.barge_ins
    assert record.resolution == "confirmed"
    assert turn.heard_text.startswith("One moment while It")
    assert "check" not in turn.heard_text and "shipped" not in turn.heard_text
    (kept,) = [m for m in run.state.history if m.role == "assistant" and m.interrupted]
    assert kept.content == turn.heard_text
    # Resuming (a false interruption's path) reads the cut reply's text and words as one.
    handle = run.state.responses[0]
    assert handle.generated_text == "One moment while It has shipped."
    played = int(turn.extra["played_samples"])
    rest = resume_text(handle.generated_text, handle.words, played)
    assert rest and "It has shipped.".endswith(rest) and "while" not in rest


def test_over_a_network_the_client_s_reports_give_the_heard_filler_words_and_no_clear() -> None:
    clock = SimulatedClock(charge_compute=False)
    run = _run(_tool_llm(clock, 900.0), clock, "where is my order", network=True)
    turn = run.turn
    filler = turn.extra["filler"]
    assert filler["outcome"] == "cut" and filler["heard"] == "One moment while"
    # The cut is on the server's queue: the client is never told to clear anything.
    assert isinstance(run.transport, FakeNetworkTransport) and run.transport.cleared == []
    answer = sum(len(c.audio) for c in FakeTts(MS_PER_CHAR).synthesize("It has shipped."))
    assert turn.extra["played_samples"] == ms_to_samples(filler["cut_ms"]) + answer
    assert turn.heard_text == "One moment while It has shipped." == turn.agent_text
    assert "heard_start" in turn.marks_ms  # the played position is the client's report
    assert turn.terms_ms is not None and turn.ttfat_ms is not None
    assert sum(turn.terms_ms.values()) == pytest.approx(turn.ttfat_ms)


class _ClientSink:
    """An `AudioSink` that streams each chunk to a client at once (nothing to cut)."""

    def __init__(self) -> None:
        self.samples = 0

    def push(self, response_id: int, audio: Pcm16, now_ms: float) -> bool:
        self.samples += len(audio)
        return True

    def end(self, response_id: int) -> None:
        pass

    def buffered_ms_of(self, response_id: int) -> float:
        return 0.0


class _BrokenCut(JitterBuffer):
    def cut(self, response_id: int, at_sample: int, fade_samples: int = 0) -> int:
        raise RuntimeError("cut broke")


def _runner_reply(sink: AudioSink) -> tuple[ResponseHandle, list[ResponseFailed]]:
    clock = SimulatedClock(charge_compute=False)
    slow = FakeLlm(clock, default=LlmScript(text="Your order has shipped.", ttft_ms=1200.0))
    guard = BudgetGuardLLM(slow, clock, 300.0, ("filler",), filler_lines=(FILLER,))
    failures: list[ResponseFailed] = []
    runner = ResponseRunner(clock, guard, FakeTts(MS_PER_CHAR), sink, on_failure=failures.append)
    handle = ResponseHandle(1, TurnRecord(1))

    async def main() -> None:
        await runner.run(handle, [ChatMessage("user", "where is my order")])

    clock.run(main)
    return handle, failures


def test_a_sink_that_cannot_cut_plays_the_filler_whole() -> None:
    sink = _ClientSink()
    handle, failures = _runner_reply(sink)
    assert handle.turn.extra["filler"]["outcome"] == "whole" and failures == []
    assert handle.generated_text == f"{FILLER} Your order has shipped. "
    assert sink.samples == handle.synthesized_samples


def test_a_failing_cut_is_recorded_and_costs_the_answer_nothing() -> None:
    jitter = _BrokenCut(jitter_ms=40.0)
    jitter.open(1)
    handle, failures = _runner_reply(jitter)
    assert [(f.stage, f.recovered) for f in failures] == [("internal", True)]
    assert "filler cut: RuntimeError: cut broke" in failures[0].error
    assert handle.turn.extra["filler"]["outcome"] == "whole"
    assert [w.text for w in handle.words][-4:] == ["Your", "order", "has", "shipped."]
    assert jitter.buffered_ms_of(1) * 16 == pytest.approx(handle.synthesized_samples)
