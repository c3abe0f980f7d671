"""The adaptive uplink jitter buffer on synthetic arrival timelines."""

import random

import numpy as np
import pytest

from earshot.transports.uplink import AdaptiveJitterBuffer, conceal_pcm

F = 20.0


def run(buf: AdaptiveJitterBuffer[int], arrivals: dict[int, float], end_ms: float):
    """Drive the buffer on a 1 ms tick; returns released frames."""
    out = []
    events = sorted((t, seq) for seq, t in arrivals.items())
    i = 0
    for now in np.arange(0.0, end_ms, 1.0):
        while i < len(events) and events[i][0] <= now:
            buf.push(events[i][1], events[i][1], events[i][0])
            i += 1
        out.extend(buf.pop_due(float(now)))
    return [r for r in out if r.seq in arrivals]  # after the last packet: concealment


def test_steady_arrivals_pass_with_no_delay() -> None:
    buf: AdaptiveJitterBuffer[int] = AdaptiveJitterBuffer(F)
    arrivals = {k: 35.0 + k * F for k in range(50)}
    out = run(buf, arrivals, 50 * F + 100)
    assert [r.seq for r in out] == list(range(50))
    assert all(r.payload == r.seq for r in out)
    assert max(r.release_ms - r.arrival_ms for r in out) <= 1.0  # released on arrival
    assert buf.delay_ms == 0.0


def test_target_follows_jitter_and_late_share_matches_quantile() -> None:
    rng = random.Random(3)
    buf: AdaptiveJitterBuffer[int] = AdaptiveJitterBuffer(F, quantile=0.95, window=200)
    arrivals: dict[int, float] = {}
    t_prev = 0.0
    for k in range(500):
        t = 40.0 + k * F + rng.uniform(0.0, 60.0)
        t_prev = max(t_prev, t)  # in order, like TCP
        arrivals[k] = t_prev
    out = run(buf, arrivals, 500 * F + 400)
    assert [r.seq for r in out] == list(range(len(out)))
    assert 30.0 < buf.target_delay_ms() <= 65.0
    concealed = sum(r.concealed for r in out[100:])
    assert concealed / len(out[100:]) < 0.1  # the 95 % quantile keeps most frames
    assert buf.stats.late == sum(r.concealed for r in out)  # each concealed one came late


def test_lost_packet_is_concealed_in_order_and_late_copy_dropped() -> None:
    buf: AdaptiveJitterBuffer[str] = AdaptiveJitterBuffer(F)
    for k in (0, 1, 3):
        buf.push(k, f"p{k}", k * F)
    out = buf.pop_due(3 * F)
    assert [(r.seq, r.payload) for r in out] == [(0, "p0"), (1, "p1"), (2, None), (3, "p3")]
    assert out[2].concealed
    assert not buf.push(2, "p2", 3 * F + 1)
    assert buf.stats.late == 1
    assert buf.stats.concealed == 1


def test_delay_rises_at_once_and_decays_slowly() -> None:
    buf: AdaptiveJitterBuffer[int] = AdaptiveJitterBuffer(F, window=20, decay_ms_per_frame=1.0)
    for k in range(10):
        buf.push(k, k, k * F)
        buf.pop_due(k * F)
    buf.push(10, 10, 10 * F + 80.0)  # one packet 80 ms late
    assert buf.delay_ms == pytest.approx(buf.target_delay_ms())
    high = buf.delay_ms
    assert high > 0
    buf.pop_due(10 * F + 80.0)
    for k in range(11, 60):
        buf.push(k, k, k * F)
        buf.pop_due(k * F + high)
    assert buf.delay_ms < high  # the jump has left the window and the delay decays
    assert buf.delay_ms >= high - 49 * 1.0


def test_flush_releases_everything_with_gaps_concealed() -> None:
    buf: AdaptiveJitterBuffer[int] = AdaptiveJitterBuffer(F)
    buf.push(0, 0, 0.0)
    buf.push(2, 2, 40.0)
    out = buf.pop_due(0.0) + buf.flush(0.0)
    assert [(r.seq, r.concealed) for r in out] == [(0, False), (1, True), (2, False)]


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="quantile"):
        AdaptiveJitterBuffer(F, quantile=0.2)
    with pytest.raises(ValueError, match="sequence"):
        AdaptiveJitterBuffer(F).push(-1, 0, 0.0)


def test_conceal_pcm_repeats_once_then_silence() -> None:
    last = np.full(320, 1000, dtype=np.int16)
    first = conceal_pcm(last, 320, 1)
    assert first.dtype == np.int16 and int(first[0]) == 500
    assert not conceal_pcm(last, 320, 2).any()
    assert not conceal_pcm(None, 320, 1).any()
