"""Percentiles, summaries and the negative-term check on synthetic turns (exact asserts)."""

from __future__ import annotations

import math

import pytest

from earshot.metrics.stats import percentiles, summarize, validate_terms
from earshot.metrics.turn import MARKS, TERMS, TurnRecord

# Gaps in ms between consecutive MARKS (speech_end → end_of_turn → ... → playout_start).
GAPS_MS = (200.0, 150.0, 2.0, 400.0, 60.0, 120.0, 1.0, 40.0)


def make_turn(
    turn: int,
    gaps_ms: tuple[float, ...] = GAPS_MS,
    *,
    start_ms: float = 1000.0,
    network_in_ms: float = 0.0,
    network_out_ms: float = 0.0,
    num_marks: int = len(MARKS),
) -> TurnRecord:
    """A turn whose marks are ``start_ms`` then cumulative ``gaps_ms`` (first ``num_marks``)."""
    marks = {MARKS[0]: start_ms}
    for name, gap in zip(MARKS[1:num_marks], gaps_ms, strict=False):
        marks[name] = marks[MARKS[len(marks) - 1]] + gap
    return TurnRecord(
        turn=turn, marks_ms=marks, network_in_ms=network_in_ms, network_out_ms=network_out_ms
    )


def test_terms_sum_to_ttfat_exactly() -> None:
    turn = make_turn(1, network_in_ms=30.0, network_out_ms=45.5)
    terms = turn.terms_ms
    assert terms is not None
    assert list(terms) == list(TERMS)
    assert turn.ttfat_ms == 200 + 150 + 2 + 400 + 60 + 120 + 1 + 40 + 30 + 45.5
    assert sum(terms.values()) == turn.ttfat_ms
    assert terms["endpointing"] == 200.0
    assert terms["stt_finalization"] == 150.0
    assert terms["llm_ttft"] == 400.0
    assert terms["sentence_aggregation"] == 60.0
    assert terms["tts_first_audio"] == 120.0
    assert terms["jitter_buffer"] == 40.0
    assert terms["engine_overhead"] == 3.0


def test_percentiles_of_known_arrays_use_linear_interpolation() -> None:
    assert percentiles(range(101)) == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
    # rank (n−1)·q/100 = 1.5 → halfway between 20 and 30
    assert percentiles([40.0, 10.0, 30.0, 20.0], qs=(50,)) == {"p50": 25.0}
    assert percentiles([0.0, 8.0], qs=(0, 25, 75, 100)) == {
        "p0": 0.0,
        "p25": 2.0,
        "p75": 6.0,
        "p100": 8.0,
    }
    assert percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0}
    assert percentiles([0.0, 1.0], qs=(99.9,)) == pytest.approx({"p99.9": 0.999}, abs=1e-12)


def test_percentiles_empty_is_none_and_bad_input_raises() -> None:
    assert percentiles([]) is None
    with pytest.raises(ValueError, match="NaN or infinite"):
        percentiles([1.0, math.nan])
    with pytest.raises(ValueError, match=r"q=101 is outside \[0, 100\]"):
        percentiles([1.0], qs=(50, 101))


def test_summarize_counts_and_stats_over_complete_turns_only() -> None:
    turns = [
        make_turn(1, (100.0, 100.0, 0.0, 300.0, 50.0, 100.0, 0.0, 50.0)),  # TTFAT 700
        make_turn(2, (200.0, 100.0, 0.0, 500.0, 50.0, 100.0, 0.0, 50.0)),  # TTFAT 1000
        make_turn(3, (300.0, 100.0, 0.0, 700.0, 50.0, 100.0, 0.0, 50.0)),  # TTFAT 1300
        make_turn(4, num_marks=5),  # reply never started: incomplete
    ]
    summary = summarize(turns)
    assert summary.count == 3
    assert summary.count_incomplete == 1
    assert summary.ttfat is not None
    assert summary.ttfat.p50_ms == 1000.0
    assert summary.ttfat.mean_ms == 1000.0
    assert summary.ttfat.max_ms == 1300.0
    assert summary.ttfat.p95_ms == pytest.approx(1270.0, abs=1e-9)  # rank 1.9
    assert list(summary.terms) == list(TERMS)
    assert summary.terms["endpointing"].p50_ms == 200.0
    assert summary.terms["llm_ttft"].max_ms == 700.0
    assert summary.terms["network_in"].p99_ms == 0.0


def test_summarize_with_no_complete_turn() -> None:
    summary = summarize([make_turn(1, num_marks=3)])
    assert (summary.count, summary.count_incomplete) == (0, 1)
    assert summary.ttfat is None
    assert summary.terms == {}
    assert summarize([]).count == 0


def test_negative_term_raises_naming_turn_and_term() -> None:
    bad = make_turn(7, (200.0, -30.0, 2.0, 400.0, 60.0, 120.0, 1.0, 40.0))
    with pytest.raises(ValueError, match=r"turn 7: term stt_finalization is negative \(-30\.000"):
        validate_terms([make_turn(1), bad])
    with pytest.raises(ValueError, match="turn 7: term stt_finalization"):
        summarize([bad])


def test_negative_network_term_raises() -> None:
    with pytest.raises(ValueError, match="turn 2: term network_out is negative"):
        validate_terms([make_turn(2, network_out_ms=-5.0)])


def test_hidden_negative_part_of_engine_overhead_raises() -> None:
    # llm_request 10 ms before stt_final, playout_queued 20 ms after tts_first_audio: the term
    # is +10 ms but one of its gaps is a clock bug.
    bad = make_turn(3, (200.0, 150.0, -10.0, 400.0, 60.0, 120.0, 20.0, 40.0))
    assert bad.terms_ms is not None and bad.terms_ms["engine_overhead"] == 10.0
    with pytest.raises(ValueError, match="turn 3: term engine_overhead has a negative part"):
        validate_terms([bad])


def test_incomplete_turns_are_not_validated() -> None:
    validate_terms([make_turn(1, (200.0, -999.0), num_marks=3)])
