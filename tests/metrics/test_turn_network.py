"""TTFAT terms with measured network timing (pure)."""

from __future__ import annotations

import pytest

from earshot.metrics.turn import MARKS, TERMS, NetworkTiming, TurnRecord

MARKS_MS = dict(
    zip(
        MARKS, (1000.0, 1540.0, 1600.0, 1610.0, 1800.0, 1900.0, 2000.0, 2001.0, 2040.0), strict=True
    )
)


def test_with_heard_start_ttfat_ends_at_the_callers_ear_and_terms_sum() -> None:
    turn = TurnRecord(1, dict(MARKS_MS))
    timing = NetworkTiming(
        network_in_ms=30.0, uplink_jitter_buffer_ms=10.0, client_playout_ms=25.0, sync_error_ms=3.0
    )
    timing.network_out_ms = 35.0
    turn.set_heard_start(2100.0, timing)
    terms = turn.terms_ms
    assert terms is not None and list(terms) == list(TERMS)
    assert turn.ttfat_ms == pytest.approx(1100.0)
    assert sum(terms.values()) == pytest.approx(1100.0, abs=1e-9)
    assert terms["endpointing"] == pytest.approx(540.0 - 40.0)
    assert terms["network_out"] == pytest.approx(2100.0 - 2040.0 - 25.0)
    doc = turn.to_json()
    assert doc["marks_ms"]["heard_start"] == 2100.0
    assert doc["terms_measured"] == [
        "network_in",
        "uplink_jitter_buffer",
        "network_out",
        "client_playout",
    ]
    assert doc["sync_error_ms"] == 3.0


def test_unmeasured_terms_are_listed_as_estimated() -> None:
    turn = TurnRecord(1, dict(MARKS_MS))
    turn.set_heard_start(2080.0, NetworkTiming(network_in_ms=20.0))
    doc = turn.to_json()
    assert doc["terms_measured"] == ["network_in"]
    assert doc["terms_estimated"] == ["uplink_jitter_buffer", "network_out", "client_playout"]
    assert doc["sync_error_ms"] is None
    assert sum(doc["terms_ms"].values()) == pytest.approx(doc["ttfat_ms"], abs=0.01)


def test_without_heard_start_the_old_estimates_extend_the_span() -> None:
    turn = TurnRecord(1, dict(MARKS_MS), network_in_ms=5.0, network_out_ms=7.0)
    assert turn.ttfat_ms == pytest.approx(1040.0 + 12.0)
    assert turn.terms_ms is not None and turn.terms_ms["client_playout"] == 0.0
    assert "terms_measured" not in turn.to_json()
