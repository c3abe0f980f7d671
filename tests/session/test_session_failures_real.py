"""Failure paths with the real TTS (espeak-ng): a NUL from the LLM, a TTS that breaks once.

Real: espeak-ng. Fakes (on purpose, so the failure is exact): the VAD and STT (energy and
scripted), the LLM (scripted reply), and the clock (virtual, free compute).
"""

from __future__ import annotations

from earshot.clock import SimulatedClock
from earshot.session.config import SessionConfig
from earshot.session.session import Session
from earshot.testing import EnergyVad, FakeLlm, FakeStt, LlmScript, SyntheticCaller
from earshot.transports.file import FileTransport
from earshot.tts.base import Synthesizer
from earshot.turns.endpointer import FixedEndpointer


def test_a_nul_from_the_llm_is_spoken_around_by_the_real_tts(tts: Synthesizer) -> None:
    clock = SimulatedClock(charge_compute=False)
    llm = FakeLlm(clock, [LlmScript(text="Sure\x00 thing. The time is\x00 noon.")])
    session = Session(
        SessionConfig(),
        clock,
        EnergyVad(),
        FakeStt(["what time is it", "thanks"]),
        llm,
        tts,
        FixedEndpointer(500.0),
    )
    caller = SyntheticCaller([(1000.0, 2500.0), (9000.0, 10_000.0)], 14_000.0)
    state = clock.run(lambda: session.run(FileTransport(caller, clock)))
    first, second = state.turns
    assert "tts_error" not in first.extra and first.complete
    assert first.heard_text == "Sure thing. The time is noon."
    assert second.complete and second.user_text == "thanks"
