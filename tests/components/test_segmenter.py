"""The pure VAD hysteresis segmenter: exact events on synthetic probability timelines."""

from __future__ import annotations

import math

import pytest

from earshot.vad.segmenter import SpeechEnded, SpeechStarted, VadEvent, VadSegmenter


def run(
    probs: list[float], frame_ms: float = 20.0, seg: VadSegmenter | None = None
) -> list[tuple[int, VadEvent]]:
    """Push ``probs`` as contiguous frames from 0 ms; return (frame index, event) pairs."""
    seg = seg if seg is not None else VadSegmenter()
    out: list[tuple[int, VadEvent]] = []
    for i, prob in enumerate(probs):
        out.extend((i, event) for event in seg.push(prob, i * frame_ms, frame_ms))
    return out


def test_start_after_min_speech_and_end_after_one_frame_hangover() -> None:
    probs = [0.0, 0.0, 0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.0]
    # Start: frames 2-4 span 60 ms, reported on frame 4, dated to frame 2's start.
    # End: frame 6 is the tolerated dip, frame 7 ends it at the end of frame 5 (120 ms).
    assert run(probs) == [(4, SpeechStarted(40.0)), (7, SpeechEnded(120.0))]


def test_state_properties_follow_the_timeline() -> None:
    seg = VadSegmenter()
    assert (seg.is_speech, seg.last_voiced_end_ms, seg.speech_start_ms) == (False, None, None)
    for i, prob in enumerate([0.9, 0.9]):
        seg.push(prob, i * 20.0, 20.0)
    assert (seg.is_speech, seg.last_voiced_end_ms) == (False, None)  # not confirmed yet
    seg.push(0.9, 40.0, 20.0)
    assert (seg.is_speech, seg.last_voiced_end_ms, seg.speech_start_ms) == (True, 60.0, 0.0)
    seg.push(0.2, 60.0, 20.0)  # hangover frame: still speech, end unchanged
    assert (seg.is_speech, seg.last_voiced_end_ms) == (True, 60.0)
    assert seg.push(0.2, 80.0, 20.0) == [SpeechEnded(60.0)]
    assert (seg.is_speech, seg.last_voiced_end_ms, seg.speech_start_ms) == (False, 60.0, 0.0)


def test_flicker_between_thresholds_does_not_split_the_utterance() -> None:
    # Stop threshold is 0.5 - 0.15 = 0.35: values in [0.35, 0.5) keep speech going.
    probs = [0.8, 0.8, 0.8, *[0.45, 0.6, 0.36, 0.49, 0.7, 0.4], 0.0, 0.0]
    assert run(probs) == [(2, SpeechStarted(0.0)), (10, SpeechEnded(180.0))]


def test_default_stop_threshold_is_silero_offset_with_floor() -> None:
    assert VadSegmenter(threshold=0.5).stop_threshold == pytest.approx(0.35)
    assert VadSegmenter(threshold=0.1).stop_threshold == 0.01


def test_one_frame_dip_is_bridged_but_two_end_the_utterance() -> None:
    speech = [0.9, 0.9, 0.9]
    assert run([*speech, 0.1, 0.9, 0.9, 0.0, 0.0]) == [
        (2, SpeechStarted(0.0)),
        (7, SpeechEnded(120.0)),
    ]
    assert run([*speech, 0.1, 0.1, 0.9, 0.9, 0.9]) == [
        (2, SpeechStarted(0.0)),
        (4, SpeechEnded(60.0)),
        (7, SpeechStarted(100.0)),
    ]


def test_zero_hangover_ends_on_first_unvoiced_frame() -> None:
    seg = VadSegmenter(hangover_frames=0)
    assert run([0.9, 0.9, 0.9, 0.9, 0.1, 0.9], seg=seg) == [
        (2, SpeechStarted(0.0)),
        (4, SpeechEnded(80.0)),
    ]


def test_short_blips_are_ignored() -> None:
    seg = VadSegmenter()
    # 40 ms blips (< 60 ms) separated by silence never start an utterance.
    assert run([0.9, 0.9, 0.0, 0.95, 1.0, 0.1, 0.8, 0.8, 0.0], seg=seg) == []
    assert seg.is_speech is False
    assert seg.last_voiced_end_ms is None


def test_idle_run_needs_start_threshold_on_every_frame() -> None:
    # A 0.4 frame (above stop, below start) breaks the run while not yet in speech.
    assert run([0.9, 0.9, 0.4, 0.9, 0.9, 0.9]) == [(5, SpeechStarted(60.0))]


@pytest.mark.parametrize(("frame_ms", "frames_needed"), [(10.0, 6), (20.0, 3), (40.0, 2)])
def test_min_speech_counts_milliseconds_not_frames(frame_ms: float, frames_needed: int) -> None:
    events = run([0.9] * 10, frame_ms=frame_ms)
    assert events == [(frames_needed - 1, SpeechStarted(0.0))]


def test_gap_between_frames_is_allowed_and_times_stay_exact() -> None:
    seg = VadSegmenter()
    assert seg.push(0.9, 1000.0, 20.0) == []
    assert seg.push(0.9, 1020.0, 20.0) == []
    assert seg.push(0.9, 1060.0, 20.0) == [SpeechStarted(1000.0)]  # 20 ms gap before
    assert seg.push(0.0, 1080.0, 20.0) == []
    assert seg.push(0.0, 1100.0, 20.0) == [SpeechEnded(1080.0)]


def test_finish_closes_an_open_utterance_and_allows_a_new_stream() -> None:
    seg = VadSegmenter()
    run([0.9] * 5, seg=seg)
    assert seg.finish() == [SpeechEnded(100.0)]
    assert seg.finish() == []
    assert seg.is_speech is False
    assert seg.last_voiced_end_ms == 100.0
    assert run([0.9] * 3, seg=seg) == [(2, SpeechStarted(0.0))]  # restart at 0 ms accepted


def test_reset_forgets_everything() -> None:
    seg = VadSegmenter()
    run([0.9] * 5, seg=seg)
    seg.reset()
    assert (seg.is_speech, seg.last_voiced_end_ms, seg.speech_start_ms) == (False, None, None)


@pytest.mark.parametrize("prob", [-0.1, 1.5, math.nan])
def test_rejects_probabilities_outside_unit_interval(prob: float) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        VadSegmenter().push(prob, 0.0, 20.0)


def test_rejects_overlapping_or_backward_frames() -> None:
    seg = VadSegmenter()
    seg.push(0.0, 100.0, 20.0)
    with pytest.raises(ValueError, match="before the previous frame ended"):
        seg.push(0.0, 110.0, 20.0)


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="stop_threshold"):
        VadSegmenter(threshold=0.5, stop_threshold=0.6)
    with pytest.raises(ValueError, match="threshold"):
        VadSegmenter(threshold=0.0)
    with pytest.raises(ValueError, match="frame_ms"):
        VadSegmenter().push(0.5, 0.0, 0.0)
