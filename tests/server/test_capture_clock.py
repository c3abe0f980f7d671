"""Capture times for RTP frames on synthetic arrival timelines."""

import itertools
import random

from earshot.transports.capture_clock import CaptureClock

F = 20.0


def test_steady_stream_is_dated_exactly() -> None:
    cc = CaptureClock(F)
    times = [cc.stamp(1000.0 + 30.0 + (j + 1) * F, 30.0) for j in range(100)]
    assert times == [1000.0 + j * F for j in range(100)]


def test_burst_at_start_converges_and_stays_causal_and_ordered() -> None:
    rng = random.Random(1)
    cc = CaptureClock(F)
    truth = [500.0 + j * F for j in range(500)]
    arrivals = []
    for j, c in enumerate(truth):
        a = c + F + 25.0 + rng.uniform(0, 15)
        if j < 20:
            a = max(a, truth[19] + F + 200.0)  # the first 20 frames arrive together, late
        arrivals.append(a)
    arrivals = list(itertools.accumulate(arrivals, max))
    stamps = [cc.stamp(a, 25.0) for a in arrivals]
    assert all(b >= a for a, b in itertools.pairwise(stamps))
    assert all(s <= a - F + 1e-9 for s, a in zip(stamps, arrivals, strict=True))
    late_errors = [abs(s - t) for s, t in zip(stamps[400:], truth[400:], strict=True)]
    assert max(late_errors) < 2.0  # converged onto the least-delayed frames
