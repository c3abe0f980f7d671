"""Failure paths of the whole loop on the shipped fakes: no backend error leaves a turn mute."""

from __future__ import annotations

import pytest
from loop_helpers import run_call

from earshot.llm import FALLBACK_LINE
from earshot.metrics.turn import TurnRecord
from earshot.session.config import SessionConfig
from earshot.session.session import SessionState
from earshot.testing import EnergyVad, FakeStt, FakeTts, LlmScript

TWO_TURNS = [(1000.0, 2500.0), (9000.0, 10_500.0)]


def test_a_tts_failure_in_the_first_sentence_is_spoken_around_and_the_next_turn_answered() -> None:
    tts = FakeTts(fail=lambda i, _text: i == 0)
    call = run_call(TWO_TURNS, 14_000.0, tts=tts)
    first, second = call.state.turns
    assert "tts_error" in first.extra and "fake TTS failure" in first.extra["tts_error"]
    assert "playout_start" in first.marks_ms  # the second sentence was heard
    assert first.heard_text == "What else would you like to know?"
    assert second.complete and second.heard_text == second.agent_text
    assert [f.stage for f in call.failures] == ["tts"]
    assert [t.turn for t in call.logged] == [1, 2]


def test_a_reply_the_tts_cannot_speak_at_all_does_not_mute_the_session() -> None:
    """The bug this redesign fixes: a dead reply used to block the jitter buffer for good."""
    tts = FakeTts(fail=lambda i, _text: i < 3)  # both sentences and the fallback line
    call = run_call(TWO_TURNS, 14_000.0, tts=tts)
    first, second = call.state.turns
    assert "tts_error" in first.extra and "playout_start" not in first.marks_ms
    assert not first.unfinished and first in call.logged
    assert second.complete and second.heard_text == second.agent_text


def test_a_single_sentence_reply_that_fails_in_tts_speaks_the_fallback() -> None:
    tts = FakeTts(fail=lambda i, _text: i == 0)
    call = run_call(
        TWO_TURNS[:1], 8000.0, scripts=[LlmScript(text="Hello there my friend.")], tts=tts
    )
    (turn,) = call.state.turns
    assert tts.texts[1] == FALLBACK_LINE
    assert turn.extra["fallback"] is True and turn.complete
    assert turn.heard_text == FALLBACK_LINE


def test_an_llm_error_speaks_the_fallback_and_the_next_turn_is_answered() -> None:
    call = run_call(TWO_TURNS, 14_000.0, scripts=[LlmScript(fail_after_tokens=0)])
    first, second = call.state.turns
    assert first.agent_text == FALLBACK_LINE and first.heard_text == FALLBACK_LINE
    assert first.extra["llm_error"] == "fake LLM failure" and first.extra["fallback"] is True
    assert second.complete and second.agent_text.startswith("Sure")


def test_any_exception_from_the_llm_is_handled_like_an_llm_error() -> None:
    script = LlmScript(fail_after_tokens=0, error=KeyError("boom"))
    call = run_call(TWO_TURNS, 14_000.0, scripts=[script])
    first, second = call.state.turns
    assert first.agent_text == FALLBACK_LINE and "KeyError" in first.extra["llm_error"]
    assert second.complete


def test_an_llm_failing_mid_reply_keeps_what_it_said() -> None:
    call = run_call(TWO_TURNS[:1], 8000.0, scripts=[LlmScript(fail_after_tokens=7)])
    (turn,) = call.state.turns
    assert turn.agent_text == "Sure, I can help with that. What"  # seven tokens
    assert turn.extra["fallback"] is False and "llm_error" in turn.extra
    assert turn.heard_text == turn.agent_text


def test_an_stt_failure_still_answers_the_turn_and_the_next() -> None:
    call = run_call(TWO_TURNS, 14_000.0, stt=FakeStt(fail_on_turn=[1]))
    first, second = call.state.turns
    assert "fake STT failure" in first.extra["stt_error"] and first.complete
    assert second.complete and second.user_text == "hello there"


def test_a_vad_failure_on_a_frame_counts_it_as_silence_and_the_call_goes_on() -> None:
    vad = EnergyVad(fail_on_call=[3, 60, 470])  # 470: inside turn 2's speech
    call = run_call(TWO_TURNS, 14_000.0, vad=vad)
    assert vad.calls > 600
    assert [t.complete for t in call.state.turns] == [True, True]


def test_llm_text_is_sanitized_before_tts() -> None:
    tts = FakeTts(reject_control_chars=True)
    text = "Hello\x00 there <b>friend</b>\x07. How are you *today*?"
    call = run_call(TWO_TURNS[:1], 8000.0, scripts=[LlmScript(text=text)], tts=tts)
    (turn,) = call.state.turns
    assert "tts_error" not in turn.extra and "response_error" not in turn.extra
    assert tts.texts == ["Hello there friend.", "How are you today?"]
    assert turn.heard_text == "Hello there friend. How are you today?"


def test_an_llm_trickling_words_without_punctuation_is_spoken_as_it_comes() -> None:
    words = " ".join(f"word{i}" for i in range(60))
    script = LlmScript(text=words, ttft_ms=100.0, token_ms=300.0)  # 18 s to stream it all
    call = run_call(TWO_TURNS[:1], 30_000.0, scripts=[script])
    (turn,) = call.state.turns
    m = turn.marks_ms
    assert m["first_sentence"] - m["llm_first_token"] <= 1500.0 + 400.0
    assert m["playout_start"] - m["llm_first_token"] < 3000.0  # not after the 18 s stream
    assert turn.heard_text == words


def test_a_stalled_llm_is_a_failed_turn_and_the_fallback_is_spoken() -> None:
    script = LlmScript(text="", stall=True)
    call = run_call([(1000.0, 2500.0), (16_000.0, 17_500.0)], 22_000.0, scripts=[script])
    first, second = call.state.turns
    assert first.extra["response_error"] == "no audio 8 s after the reply started"
    assert first.heard_text == FALLBACK_LINE
    assert first.marks_ms["playout_start"] - first.marks_ms["llm_request"] >= 8000.0
    assert second.complete and second.agent_text.startswith("Sure")


def test_tts_lookahead_is_bounded_by_seconds_of_queued_audio() -> None:
    text = " ".join(["This is one more sentence of a very long reply."] * 40)

    def peak_queued_ms(lookahead_ms: float) -> float:
        peak = [0.0]

        def on_tick(_t: float, state: SessionState) -> None:
            for h in state.responses:  # synthesized but not yet played, in ms
                peak[0] = max(peak[0], (h.synthesized_samples - h.played_samples) / 16.0)

        config = SessionConfig(max_lookahead_ms=lookahead_ms, max_tail_ms=200_000.0)
        call = run_call(
            TWO_TURNS[:1], 5000.0, scripts=[LlmScript(text=text)], config=config,
            on_tick=on_tick, record=False,
        )  # fmt: skip
        assert call.state.turns[0].heard_text == text
        return peak[0]

    bounded, unbounded = peak_queued_ms(3000.0), peak_queued_ms(1e9)
    assert bounded <= 3000.0 + 4000.0  # the bound plus at most one sentence's audio
    assert unbounded > 60_000.0  # without it, the whole reply queues ahead of playout


def test_an_internal_error_before_the_answer_still_writes_the_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from earshot.clock import SimulatedClock
    from earshot.session.conversation import Conversation
    from earshot.session.session import Session
    from earshot.testing import FakeLlm, SyntheticCaller
    from earshot.transports.file import FileTransport
    from earshot.turns.endpointer import FixedEndpointer

    clock = SimulatedClock(charge_compute=False)
    logged: list[object] = []
    session = Session(
        SessionConfig(), clock, EnergyVad(), FakeStt(), FakeLlm(clock), FakeTts(),
        FixedEndpointer(500.0), on_turn=logged.append,
    )  # fmt: skip
    answer = Conversation.answer
    calls = [0]

    def flaky_answer(self: Conversation, turn: TurnRecord, text: str) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("a bug in earshot")
        answer(self, turn, text)

    monkeypatch.setattr(Conversation, "answer", flaky_answer)
    caller = SyntheticCaller(TWO_TURNS, 14_000.0)
    state = clock.run(lambda: session.run(FileTransport(caller, clock)))
    first, second = state.turns
    assert first.extra["response_error"] == "RuntimeError: a bug in earshot"
    assert [f.stage for f in state.failures] == ["internal"]
    assert logged == [first, second] and second.complete
