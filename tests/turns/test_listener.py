"""The listener's public API, driven frame by frame without an event loop (pure)."""

from __future__ import annotations

import numpy as np

from earshot.session.listener import (
    BargeIn,
    Listener,
    SpeechPaused,
    SpeechResumed,
    UserAudio,
    UserTurnEnded,
    UserTurnStarted,
)
from earshot.testing import ScriptedVad
from earshot.turns.bargein import BargeInConfig
from earshot.turns.endpointer import FixedEndpointer, PauseContext

FRAME = np.zeros(320, dtype=np.int16)


def _run(listener: Listener, n: int, playing: set[int] = frozenset()) -> list[tuple[int, object]]:  # type: ignore[assignment]
    out = []
    for i in range(n):
        for ev in listener.push(FRAME, i * 20.0, i in playing, (i + 1) * 20.0):
            out.append((i, ev))
    return out


def test_a_turn_with_a_pause_is_one_turn_ended_after_the_silence() -> None:
    vad = ScriptedVad([(200.0, 1000.0), (1200.0, 1600.0)])
    listener = Listener(vad, FixedEndpointer(500.0), pre_roll_ms=100.0)
    events = _run(listener, 150)
    kinds = [type(e).__name__ for _, e in events if not isinstance(e, UserAudio)]
    assert kinds == [
        "UserTurnStarted",
        "SpeechPaused",
        "SpeechResumed",
        "SpeechPaused",
        "UserTurnEnded",
    ]
    started = next(e for _, e in events if isinstance(e, UserTurnStarted))
    # the segmenter needs a short voiced run before it says "speech"
    assert started.start_ms == 240.0 and len(started.pre_roll) == 5 and not started.during_agent
    i, ended = next((i, e) for i, e in events if isinstance(e, UserTurnEnded))
    assert ended.eot.speech_end_ms == 1600.0 and ended.now_ms == (i + 1) * 20.0 == 2100.0
    assert [e.end_ms for _, e in events if isinstance(e, SpeechPaused)] == [1000.0, 1600.0]
    assert [e.start_ms for _, e in events if isinstance(e, SpeechResumed)] == [1200.0]


def test_speech_over_the_agent_barges_in_after_min_interruption() -> None:
    vad = ScriptedVad([(1000.0, 2000.0)])
    listener = Listener(
        vad, FixedEndpointer(500.0), bargein=BargeInConfig(min_interruption_ms=200.0)
    )
    events = _run(listener, 60, playing=set(range(40, 60)))
    (i, barge) = next((i, e) for i, e in events if isinstance(e, BargeIn))
    assert barge.detection.onset_ms == 1000.0 and barge.detection.detected_ms == 1200.0
    assert i == 59 and listener.bargein_pending


class TextRecordingEndpointer(FixedEndpointer):
    """A fixed policy that keeps the partial text it was shown on each pause frame."""

    def __init__(self, silence_ms: float) -> None:
        super().__init__(silence_ms)
        self.seen: list[str] = []

    def decide(self, ctx: PauseContext) -> bool:
        self.seen.append(ctx.partial_text)
        return super().decide(ctx)


def test_a_partial_source_is_asked_on_pause_frames_of_an_open_turn_only() -> None:
    vad = ScriptedVad([(200.0, 1000.0), (1200.0, 1600.0)])
    endpointer = TextRecordingEndpointer(500.0)
    asked_on: list[int] = []
    frame = [0]

    def source() -> str:
        asked_on.append(frame[0])
        return f"words up to {frame[0]}"

    listener = Listener(vad, endpointer, partial_source=source)
    ended_on = None
    for i in range(150):
        frame[0] = i
        for ev in listener.push(FRAME, i * 20.0, False, (i + 1) * 20.0):
            if isinstance(ev, UserTurnEnded):
                ended_on = i
    # the segmenter's pause frames only: the gap (silence from frame 51, its hangover frame
    # after 1000 ms, to 61, speech again two voiced frames after 1200 ms) and the tail from
    # 81 to the end of turn; never in speech, before the turn or after its end
    pause_frames = [*range(51, 62), *range(81, 105)]
    assert ended_on == 104 and asked_on == pause_frames
    assert endpointer.seen == [f"words up to {i}" for i in pause_frames]
    assert listener.partial == "words up to 104"


def test_without_a_partial_source_the_policy_reads_on_partial() -> None:
    vad = ScriptedVad([(200.0, 1000.0)])
    endpointer = TextRecordingEndpointer(500.0)
    listener = Listener(vad, endpointer)
    for i in range(30):
        listener.push(FRAME, i * 20.0, False, (i + 1) * 20.0)
    listener.on_partial("hello there", 600.0)
    for i in range(30, 80):
        listener.push(FRAME, i * 20.0, False, (i + 1) * 20.0)
    assert endpointer.seen and set(endpointer.seen) == {"hello there"}
