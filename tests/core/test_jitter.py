"""Jitter buffer: exact behaviour on synthetic timelines."""

import numpy as np
import pytest

from earshot.playout.jitter import JitterBuffer


def tone(n: int, value: int = 1000) -> np.ndarray:
    return np.full(n, value, dtype=np.int16)


def test_first_audio_is_held_for_the_jitter_depth_then_plays_on_a_tick() -> None:
    jb = JitterBuffer(jitter_ms=40)
    jb.open(1)
    assert jb.pull(320, 0).response_id is None
    jb.push(1, tone(800), now_ms=5)
    # held until 5 + 40 = 45 ms: ticks at 20 and 40 are silent, 60 plays
    assert jb.pull(320, 20).agent_samples == 0
    assert jb.pull(320, 40).agent_samples == 0
    f = jb.pull(320, 60)
    assert f.started and f.response_id == 1 and f.agent_samples == 320
    assert jb.played_samples(1) == 320


def test_response_finishes_when_drained_and_played_count_survives() -> None:
    jb = JitterBuffer(jitter_ms=0)
    jb.open(7)
    jb.push(7, tone(500), 0)
    jb.end(7)
    a = jb.pull(320, 0)
    b = jb.pull(320, 20)
    assert a.started and not a.finished_ids
    assert b.finished_ids == (7,) and b.agent_samples == 180
    assert np.all(b.audio[180:] == 0)
    assert jb.played_samples(7) == 500
    assert jb.playing_id is None


def test_underrun_pads_with_silence_and_resumes() -> None:
    jb = JitterBuffer(jitter_ms=0)
    jb.open(1)
    jb.push(1, tone(320), 0)
    assert jb.pull(320, 0).agent_samples == 320
    gap = jb.pull(320, 20)
    assert gap.agent_samples == 0 and jb.underrun_samples == 320
    jb.push(1, tone(320, 5), 30)
    resumed = jb.pull(320, 40)
    assert resumed.agent_samples == 320 and not resumed.started
    assert int(resumed.audio[0]) == 5


def test_clear_drops_the_response_and_its_late_chunks() -> None:
    jb = JitterBuffer(jitter_ms=0)
    jb.open(1)
    jb.push(1, tone(3200), 0)
    jb.pull(320, 0)
    dropped = jb.clear(1)
    assert dropped == 3200 - 320
    assert jb.push(1, tone(320), 25) is False  # a stale chunk arriving after the stop
    assert jb.pull(320, 40).agent_samples == 0
    assert jb.played_samples(1) == 320


def test_responses_play_in_order_each_starting_on_a_frame_boundary() -> None:
    jb = JitterBuffer(jitter_ms=0)
    jb.open(1)
    jb.open(2)
    jb.push(2, tone(320, 2), 0)
    jb.push(1, tone(100, 1), 0)
    jb.end(1)
    jb.end(2)
    a = jb.pull(320, 0)
    assert a.response_id == 1 and a.finished_ids == (1,) and a.agent_samples == 100
    b = jb.pull(320, 20)
    assert b.response_id == 2 and b.started and int(b.audio[0]) == 2


def test_negative_depth_and_double_open_are_rejected() -> None:
    with pytest.raises(ValueError, match="jitter buffer"):
        JitterBuffer(jitter_ms=-1)
    jb = JitterBuffer()
    jb.open(1)
    with pytest.raises(ValueError, match="already opened"):
        jb.open(1)


def test_a_response_that_ended_with_no_audio_does_not_block_the_next() -> None:
    jb = JitterBuffer(jitter_ms=0.0)
    jb.open(1)
    jb.open(2)
    jb.push(2, np.full(320, 7, dtype=np.int16), now_ms=0.0)
    jb.end(1)  # a failed reply: nothing was ever pushed
    frame = jb.pull(320, now_ms=0.0)
    assert frame.finished_ids == (1,) and frame.response_id == 2 and frame.started
    assert frame.audio.tolist() == [7] * 320
    assert jb.played_samples(1) == 0 and jb.buffered_ms_of(2) == 0.0


def test_buffered_ms_of_counts_one_response() -> None:
    jb = JitterBuffer(jitter_ms=40.0)
    jb.open(1)
    jb.open(2)
    jb.push(1, np.ones(1600, dtype=np.int16), now_ms=0.0)
    jb.push(2, np.ones(800, dtype=np.int16), now_ms=0.0)
    assert (jb.buffered_ms_of(1), jb.buffered_ms_of(2), jb.buffered_ms_of(3)) == (100.0, 50.0, 0.0)
