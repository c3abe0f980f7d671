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
from earshot.turns.endpointer import FixedEndpointer

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
