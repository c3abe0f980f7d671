"""The filler's pure cores on synthetic timelines: when it is spoken, where the answer cuts it,
and the jitter buffer's cut (the same queue `clear` drops on a barge-in)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from earshot.levers.filler import (
    FillerConfig,
    FillerSchedule,
    FillerText,
    plan_cut,
    word_boundary_cut,
)
from earshot.playout.jitter import JitterBuffer, truncate_chunks
from earshot.tts.base import WordTiming

# "one" 0-400, gap, "moment" 600-1200, gap, "please" 1300-1900; 2000 samples in all.
WORDS = (
    WordTiming("one", 0, 400),
    WordTiming("moment", 600, 1200),
    WordTiming("please", 1300, 1900),
)
LENGTH = 2000
FADE = 160  # 10 ms at 16 kHz


def test_filler_only_after_the_threshold_and_never_once_answered() -> None:
    config = FillerConfig(threshold_ms=300.0, lines=("One moment.", "Let me check."))
    quick = FillerSchedule(config, started_ms=1000.0)
    assert quick.poll(1299.0) is None
    quick.answered(1200.0)
    assert quick.poll(2000.0) is None
    slow = FillerSchedule(config, started_ms=1000.0, line_index=1)
    assert slow.poll(1299.9) is None
    spoken = slow.poll(1300.0)
    assert spoken is not None and spoken.text == "Let me check." and spoken.at_ms == 1300.0
    assert slow.poll(1400.0) is None  # once


def test_bad_filler_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="threshold_ms and fade_ms"):
        FillerConfig(fade_ms=-1.0)
    with pytest.raises(ValueError, match="non-empty filler line"):
        FillerConfig(lines=("  ",))
    with pytest.raises(ValueError, match="must be >= 0"):
        plan_cut(WORDS, LENGTH, -1, FADE)
    with pytest.raises(ValueError, match="fade_ms must be >= 0"):
        FillerText("One moment.", "tool", -5.0)


def test_a_filler_line_is_text_that_says_who_spoke_it() -> None:
    line = FillerText("Just a second. ", "budget", 15.0)
    assert line == "Just a second. " and line.strip() == "Just a second."
    assert line.source == "budget" and line.fade_ms == 15.0
    assert FillerText("x").source == "tool"


def test_word_boundary_is_the_end_of_the_word_being_played() -> None:
    assert word_boundary_cut(WORDS, 100) == 400
    assert word_boundary_cut(WORDS, 500) == 500  # between words: here
    assert word_boundary_cut(WORDS, 600) == 600  # at a word's first sample: nothing of it out
    assert word_boundary_cut(WORDS, 601) == 1200


def test_mid_word_the_cut_finishes_the_word_and_fades_its_tail() -> None:
    cut = plan_cut(WORDS, LENGTH, sent_samples=700, fade_samples=FADE)
    assert (cut.cut_sample, cut.fade_samples) == (1200, FADE)
    assert [w.text for w in cut.heard] == ["one", "moment"]
    assert [w.text for w in cut.dropped] == ["please"] and not cut.whole
    near_end = plan_cut(WORDS, LENGTH, sent_samples=1150, fade_samples=FADE)
    assert (near_end.cut_sample, near_end.fade_samples) == (1200, 50)  # only unsent audio fades


def test_between_words_the_cut_fades_over_the_gap_and_never_into_the_next_word() -> None:
    wide = plan_cut(WORDS, LENGTH, sent_samples=400, fade_samples=FADE)
    assert (wide.cut_sample, wide.fade_samples) == (560, FADE)
    assert [w.text for w in wide.heard] == ["one"]
    narrow = plan_cut(WORDS, LENGTH, sent_samples=1220, fade_samples=FADE)
    assert (narrow.cut_sample, narrow.fade_samples) == (1300, 80)  # "please" starts at 1300
    assert [w.text for w in narrow.dropped] == ["please"]


def test_after_the_last_word_the_filler_s_trailing_silence_is_cut_too() -> None:
    trailing = plan_cut(WORDS, 2400, sent_samples=1920, fade_samples=FADE)  # 500 silent
    assert (trailing.cut_sample, trailing.fade_samples) == (1920 + FADE, FADE)
    assert not trailing.whole and not trailing.dropped and len(trailing.heard) == 3


def test_a_filler_not_started_is_dropped_and_one_played_out_is_whole() -> None:
    unheard = plan_cut(WORDS, LENGTH, sent_samples=0, fade_samples=FADE)
    assert (unheard.cut_sample, unheard.fade_samples, unheard.heard) == (0, 0, ())
    assert len(unheard.dropped) == 3
    tail = plan_cut(WORDS, LENGTH, sent_samples=1950, fade_samples=FADE)
    assert tail.whole and tail.cut_sample == LENGTH and len(tail.heard) == 3
    assert tail.fade_samples == 0
    done = plan_cut(WORDS, LENGTH, sent_samples=5000, fade_samples=FADE)
    assert done.whole and done.cut_sample == LENGTH


def test_without_word_timings_a_started_filler_plays_whole() -> None:
    blind = plan_cut((), LENGTH, sent_samples=700, fade_samples=FADE)
    assert blind.cut_sample == LENGTH and blind.fade_samples == 0
    assert plan_cut((), LENGTH, sent_samples=0, fade_samples=FADE).cut_sample == 0


def test_truncating_chunks_keeps_the_head_and_ramps_it_to_zero() -> None:
    a = np.full(300, 1000, dtype=np.int16)
    b = np.full(300, 2000, dtype=np.int16)
    kept = truncate_chunks([a, b], 400, 200)
    out = np.concatenate(kept)
    assert out.size == 400
    assert np.all(out[:200] == 1000)  # untouched before the fade
    assert out[-1] == 0 and out[200] < 1000 and np.all(np.diff(out[200:300]) < 0)
    assert np.all(a == 1000) and np.all(b == 2000)  # the input is never written
    assert truncate_chunks([a, b], 0, 160) == []
    assert np.concatenate(truncate_chunks([a], 300, 0)).tolist() == a.tolist()


def _drain(jitter: JitterBuffer, frames: int, now_ms: float) -> np.ndarray:
    return np.concatenate([jitter.pull(160, now_ms + 10.0 * i).audio for i in range(frames)])


def test_the_jitter_buffer_cut_keeps_the_response_open_for_what_follows() -> None:
    jitter = JitterBuffer(jitter_ms=0.0)
    jitter.open(1)
    filler = np.full(LENGTH, 3000, dtype=np.int16)
    jitter.push(1, filler[:1000], 0.0)
    jitter.push(1, filler[1000:], 0.0)
    first = _drain(jitter, 4, 0.0)  # 640 samples out: inside "moment"
    assert jitter.played_samples(1) == 640
    cut = plan_cut(WORDS, LENGTH, jitter.played_samples(1), FADE)
    assert jitter.cut(1, cut.cut_sample, cut.fade_samples) == 1200
    assert jitter.buffered_ms_of(1) == pytest.approx(560 / 16)
    answer = np.full(800, -5000, dtype=np.int16)
    assert jitter.push(1, answer, 50.0)
    jitter.end(1)
    rest = _drain(jitter, 10, 50.0)
    played = np.concatenate([first, rest])
    assert np.all(played[:1040] == 3000)  # the filler untouched up to the fade
    assert played[1199] == 0 and np.all(np.diff(played[1040:1200]) <= 0)  # faded to zero
    assert np.all(played[1200:2000] == -5000)  # the answer at once: no gap at all
    assert jitter.played_samples(1) == 2000


def test_a_cut_never_recalls_audio_that_has_left_and_clear_still_closes() -> None:
    jitter = JitterBuffer(jitter_ms=0.0)
    jitter.open(7)
    jitter.push(7, np.full(1000, 100, dtype=np.int16), 0.0)
    _drain(jitter, 3, 0.0)
    assert jitter.cut(7, 100) == 480  # clipped to what was played
    assert jitter.cut(7, 10_000) == 480  # and to what was pushed
    assert jitter.clear(7) == 0
    assert jitter.cut(7, 0) == 480 and not jitter.push(7, np.ones(10, dtype=np.int16), 0.0)


@st.composite
def _timeline(draw: st.DrawFn) -> tuple[list[WordTiming], int, int, int]:
    """Words with random lengths and gaps (possibly none), a length, a sent position, a fade."""
    words: list[WordTiming] = []
    pos = draw(st.integers(0, 400))
    for i in range(draw(st.integers(0, 6))):
        length = draw(st.integers(1, 4000))
        words.append(WordTiming(f"w{i}", pos, pos + length))
        pos += length + draw(st.integers(0, 800))
    num = pos + draw(st.integers(0, 3000))
    return words, num, draw(st.integers(0, num + 500)), draw(st.integers(0, 480))


@settings(max_examples=300, deadline=None)
@given(_timeline())
def test_a_cut_never_falls_inside_a_word_nor_before_what_was_sent(
    case: tuple[list[WordTiming], int, int, int],
) -> None:
    words, num, sent, fade = case
    cut = plan_cut(words, num, sent, fade)
    assert min(sent, num) <= cut.cut_sample <= num
    assert not any(w.start_sample < cut.cut_sample < w.end_sample for w in words)
    assert 0 <= cut.fade_samples <= min(fade, cut.cut_sample - cut.sent_samples)
    assert [*cut.heard, *cut.dropped] == words
    if sent == 0 or not words:
        assert cut.cut_sample in (0, num)
