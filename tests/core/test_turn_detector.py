"""Turn detector + fixed endpointer on synthetic frame timelines (no clock, no audio)."""

import pytest

from earshot.turns.detector import (
    EndOfTurn,
    TurnDetector,
    TurnDiscarded,
    TurnEvent,
    TurnResumed,
    TurnStarted,
)
from earshot.turns.endpointer import FixedEndpointer

FRAME_MS = 20


def run(pattern: str, silence_ms: float = 500, min_speech_ms: float = 200) -> list[TurnEvent]:
    """pattern: one char per 20 ms frame, 'S' speech, '.' silence."""
    det = TurnDetector(FixedEndpointer(silence_ms), min_speech_ms=min_speech_ms)
    events: list[TurnEvent] = []
    for i, c in enumerate(pattern):
        events += det.push(i * FRAME_MS, (i + 1) * FRAME_MS, c == "S")
    return events


def test_turn_ends_exactly_after_the_silence_threshold() -> None:
    ev = run("." * 5 + "S" * 20 + "." * 30)
    assert ev[0] == TurnStarted(100)
    eot = ev[1]
    assert isinstance(eot, EndOfTurn)
    assert eot.speech_end_ms == 500  # frames 5..24 voiced: end of frame 24 = 500 ms
    assert eot.decided_at_ms == 1000  # 500 ms of silence later
    assert eot.speech_ms == 400


def test_a_pause_shorter_than_the_threshold_does_not_end_the_turn() -> None:
    ev = run("S" * 15 + "." * 20 + "S" * 15 + "." * 30)
    kinds = [type(e) for e in ev]
    assert kinds == [TurnStarted, TurnResumed, EndOfTurn]
    assert ev[1] == TurnResumed(start_ms=700, pause_ms=400)
    assert isinstance(ev[2], EndOfTurn) and ev[2].speech_end_ms == 1000
    assert ev[2].speech_ms == 600


def test_a_click_shorter_than_min_speech_is_discarded_not_answered() -> None:
    ev = run("." * 3 + "SS" + "." * 40)
    assert [type(e) for e in ev] == [TurnStarted, TurnDiscarded]
    assert ev[1] == TurnDiscarded(60, 100)


@pytest.mark.parametrize("threshold", [200, 300, 500, 800, 1000])
def test_endpointing_delay_equals_the_fixed_threshold(threshold: int) -> None:
    ev = run("S" * 20 + "." * 60, silence_ms=threshold)
    eot = ev[-1]
    assert isinstance(eot, EndOfTurn)
    assert eot.decided_at_ms - eot.speech_end_ms == threshold


def test_segmenter_voiced_end_overrides_the_hangover_frame() -> None:
    det = TurnDetector(FixedEndpointer(100), min_speech_ms=0)
    det.push(0, 20, True)
    det.push(20, 40, True)  # a hangover frame the segmenter says was not voiced
    events = []
    for i in range(2, 12):
        events += det.push(i * 20, (i + 1) * 20, False, voiced_end_ms=20 if i == 2 else None)
    eot = events[0]
    assert isinstance(eot, EndOfTurn)
    assert eot.speech_end_ms == 20 and eot.decided_at_ms == 120
