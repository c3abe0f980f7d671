"""Clock sync on synthetic timelines: known offset, known one-way delays."""

import random

import pytest

from earshot.transports.clocksync import ClockSync, ClockSyncError, SyncSample


def exchange(t0: float, offset: float, up_ms: float, down_ms: float, turn_ms: float = 1.0):
    """Server sends at t0 (session clock); client clock = session + offset."""
    t1 = t0 + down_ms + offset
    t2 = t1 + turn_ms
    t3 = t2 - offset + up_ms
    return SyncSample(t0, t1, t2, t3)


def test_symmetric_delay_recovers_offset_exactly() -> None:
    s = exchange(1000.0, offset=-52_000.5, up_ms=40.0, down_ms=40.0, turn_ms=3.0)
    assert s.offset_ms == pytest.approx(-52_000.5)
    assert s.rtt_ms == pytest.approx(80.0)


def test_asymmetric_delay_stays_within_bound() -> None:
    sync = ClockSync()
    est = sync.add(exchange(0.0, offset=1234.0, up_ms=70.0, down_ms=10.0))
    assert abs(est.offset_ms - 1234.0) == pytest.approx(30.0)
    assert est.error_bound_ms == pytest.approx(40.0)
    assert abs(est.offset_ms - 1234.0) <= est.error_bound_ms


def test_least_delayed_sample_wins_and_bound_holds_under_jitter() -> None:
    rng = random.Random(7)
    sync = ClockSync(window=8)
    true_offset = 777.0
    for i in range(50):
        up = 20.0 + rng.uniform(0, 30)
        down = 20.0 + rng.uniform(0, 30)
        est = sync.add(exchange(i * 1000.0, true_offset, up, down))
        assert abs(est.offset_ms - true_offset) <= est.error_bound_ms + 1e-9
    # With 8 samples kept the best round trip is close to the 40 ms floor.
    assert est.rtt_ms < 60.0


def test_bound_widens_with_age() -> None:
    sync = ClockSync(drift_ppm=15.0)
    sync.add(exchange(0.0, 0.0, 5.0, 5.0))
    fresh = sync.estimate(10.0)
    old = sync.estimate(10.0 + 600_000.0)  # ten minutes later
    assert fresh is not None and old is not None
    assert old.error_bound_ms - fresh.error_bound_ms == pytest.approx(9.0, abs=1e-3)


def test_impossible_reply_is_rejected() -> None:
    with pytest.raises(ClockSyncError, match="round trip"):
        ClockSync().add(SyncSample(100.0, 5.0, 50.0, 110.0))


def test_mapping_round_trips() -> None:
    est = ClockSync().add(exchange(0.0, offset=500.0, up_ms=10.0, down_ms=10.0))
    assert est.to_session_ms(est.to_client_ms(123.0)) == pytest.approx(123.0)
    assert est.to_session_ms(1500.0) == pytest.approx(1000.0)
