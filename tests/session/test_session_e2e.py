"""The whole loop on real recordings with the real embedded components.

Real: Silero VAD, pocketsphinx STT, espeak-ng TTS. Simulated: the LLM (scripted, which is what
the offline default is) and the clock (virtual time; ``charge_compute=False`` makes every mark an
exact function of the audio, so the accounting can be asserted to the millisecond).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from earshot.clock import SimulatedClock
from earshot.evals.tracks import build_caller_track, load_clips
from earshot.llm import make_llm
from earshot.llm.base import ChatMessage
from earshot.metrics.turn import MARKS, TurnRecord
from earshot.session.config import SessionConfig
from earshot.session.session import Session, SessionState
from earshot.stt.base import StreamingRecognizer
from earshot.transports.file import ArraySource, FileTransport, MemoryRecorder
from earshot.tts.base import Synthesizer
from earshot.turns.bargein import BargeInConfig
from earshot.turns.endpointer import FixedEndpointer
from earshot.vad import make_vad

CLIPS = (
    "realtimestt_ljspeech_LJ001-0008.wav",
    "realtimestt_ljspeech_LJ001-0002.wav",
    "realtimestt_ljspeech_LJ001-0013.wav",
)


@dataclass
class Ran:
    """A finished session and the agent track its transport recorded."""

    state: SessionState
    recorder: MemoryRecorder

    @property
    def turns(self) -> list[TurnRecord]:
        return self.state.turns

    @property
    def history(self) -> list[ChatMessage]:
        return self.state.history

    def agent_track(self) -> np.ndarray:
        return self.recorder.agent_track()


def run_session(
    pcm: np.ndarray,
    stt: StreamingRecognizer,
    tts: Synthesizer,
    *,
    frame_ms: int = 20,
    eot_ms: float = 500,
    jitter_ms: float = 40,
    profile: str = "gpt-4o-mini",
) -> Ran:
    clock = SimulatedClock(charge_compute=False)
    config = SessionConfig(frame_ms=frame_ms, jitter_ms=jitter_ms)
    recorder = MemoryRecorder(len(pcm) + 16 * int(config.max_tail_ms) + 16 * 100)
    transport = FileTransport(
        ArraySource(pcm), clock, recorder=recorder, max_tail_ms=config.max_tail_ms
    )
    session = Session(
        config,
        clock,
        make_vad("silero"),
        stt,
        make_llm("scripted", clock, profile=profile),
        tts,
        FixedEndpointer(eot_ms),
        bargein=BargeInConfig(),
    )
    return Ran(clock.run(lambda: session.run(transport)), recorder)


@pytest.fixture(scope="module")
def three_turns(speech_dir: Path) -> tuple[np.ndarray, list[int]]:
    clips = load_clips([speech_dir / c for c in CLIPS])
    track, placed = build_caller_track(clips, gap_ms=6000, lead_ms=700, tail_ms=6000)
    return track, [p.end_sample for p in placed]


def test_each_utterance_is_one_turn_and_terms_sum_to_ttfat(
    three_turns: tuple[np.ndarray, list[int]], stt: StreamingRecognizer, tts: Synthesizer
) -> None:
    track, ends = three_turns
    state = run_session(track, stt, tts)
    assert len(state.turns) == 3
    for turn, end_sample in zip(state.turns, ends, strict=True):
        assert turn.complete, turn.marks_ms
        marks = [turn.marks_ms[m] for m in MARKS]
        assert marks == sorted(marks), "marks must be in critical-path order"
        terms = turn.terms_ms
        assert terms is not None and turn.ttfat_ms is not None
        assert abs(sum(terms.values()) - turn.ttfat_ms) < 1.0
        # VAD speech end is near the real end of the utterance (within 150 ms)
        assert abs(turn.marks_ms["speech_end"] - end_sample / 16) < 150
        # with free compute and a fixed endpointer, the accounting is exact
        assert terms["endpointing"] == pytest.approx(500, abs=1e-6)
        assert terms["llm_ttft"] == pytest.approx(160, abs=1e-6)  # gpt-4o-mini profile
        assert terms["engine_overhead"] == pytest.approx(0, abs=1e-6)
        assert 40 <= terms["jitter_buffer"] <= 60  # hold + alignment to the 20 ms tick
        assert turn.user_text and turn.agent_text and not turn.interrupted
        assert turn.heard_text == " ".join(turn.agent_text.split())
    assert state.turns[0].user_text.split()[-1] == "surpassed"


def test_agent_audio_starts_exactly_at_playout_start(
    three_turns: tuple[np.ndarray, list[int]], stt: StreamingRecognizer, tts: Synthesizer
) -> None:
    track, _ = three_turns
    state = run_session(track, stt, tts)
    agent = state.agent_track()
    for turn in state.turns:
        start = int(turn.marks_ms["playout_start"] * 16)
        speech_end = int(turn.marks_ms["speech_end"] * 16)
        assert not agent[speech_end:start].any(), "the agent must be silent before playout_start"
        first = speech_end + int(np.flatnonzero(agent[speech_end:])[0])
        assert abs(first - start) <= 320  # within one frame
        gap_ms = (first - speech_end) / 16
        assert turn.ttfat_ms is not None and abs(gap_ms - turn.ttfat_ms) <= 20


@pytest.mark.parametrize("frame_ms", [10, 40])
def test_other_frame_sizes_run_the_same_turns(
    frame_ms: int,
    three_turns: tuple[np.ndarray, list[int]],
    stt: StreamingRecognizer,
    tts: Synthesizer,
) -> None:
    track, _ = three_turns
    state = run_session(track[: 16 * 8000], stt, tts, frame_ms=frame_ms)
    assert len(state.turns) == 1
    turn = state.turns[0]
    assert turn.terms_ms is not None and turn.ttfat_ms is not None
    assert abs(sum(turn.terms_ms.values()) - turn.ttfat_ms) < 1.0
    assert turn.terms_ms["endpointing"] == pytest.approx(500, abs=frame_ms)


def test_a_click_is_not_a_turn(stt: StreamingRecognizer, tts: Synthesizer) -> None:
    track = np.zeros(16 * 3000, dtype=np.int16)
    rng = np.random.default_rng(0)
    track[16000:16080] = rng.integers(-20000, 20000, 80)  # a 5 ms click
    state = run_session(track, stt, tts)
    assert state.turns == []
    assert not state.agent_track().any()


def test_the_session_ends_soon_after_the_last_reply(
    three_turns: tuple[np.ndarray, list[int]], stt: StreamingRecognizer, tts: Synthesizer
) -> None:
    track, _ = three_turns
    state = run_session(track[: 16 * 8000], stt, tts)
    agent = state.agent_track()
    last_agent_ms = int(np.flatnonzero(agent)[-1]) / 16
    session_ms = len(agent) / 16
    # not the 30 s max_tail_ms: it stops once input is processed and the reply has played
    assert session_ms <= max(8000, last_agent_ms) + 100


def test_a_false_end_of_turn_is_merged_when_no_reply_word_was_heard(
    speech_dir: Path, stt: StreamingRecognizer, tts: Synthesizer
) -> None:
    """The user pauses 650 ms mid-sentence: the 500 ms endpointer fires and a reply is being
    prepared (GPT-4o's ~700 ms TTFT profile) when the user goes on; the reply stops before a
    word is heard and the two halves are one turn."""
    from earshot.evals.endpointing_data import insert_pause

    (clip,) = load_clips([speech_dir / "realtimestt_ljspeech_LJ001-0004.wav"])
    # "produced the block books, | which were ..." — split after the comma (≈ 1.45 s)
    split = insert_pause(clip, at_sample=int(1.45 * 16000), pause_ms=650)
    track, _ = build_caller_track([split], gap_ms=[], lead_ms=500, tail_ms=6000)
    state = run_session(track, stt, tts, profile="gpt-4o")
    assert len(state.turns) == 1
    turn = state.turns[0]
    assert turn.extra["false_end_of_turn_ms"] is not None
    assert [b.resolution for b in turn.barge_ins] == ["continued"]
    assert turn.complete and not turn.interrupted
    users = [m.content for m in state.history if m.role == "user"]
    assert users == [turn.user_text]  # one user message holding both halves
    assert len(turn.user_text.split()) >= 8
