"""Percentiles and per-run summaries of TTFAT and its terms.

Percentiles use numpy's ``"linear"`` method (Hyndman & Fan type 7, numpy's default): the
q-th percentile of n sorted values sits at rank ``(n − 1)·q/100`` and is interpolated linearly
between the two neighbouring values. With few turns the tail percentiles are therefore close to
the maximum (with n < 100, p99 lies between the two largest values), not extrapolated past it.

Only *measured* turns are aggregated: complete (every mark present) and not failed. A failed
turn (`TurnRecord.failure`: the LLM or TTS failed and the caller heard a fallback line) has marks,
but they time the fallback, not a reply, so it is counted apart; so are incomplete turns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from earshot.metrics.turn import MARKS, TERMS, TurnRecord

DEFAULT_QS: tuple[float, ...] = (50, 95, 99)
"""Percentiles reported in every summary, table and report."""

_ENGINE_OVERHEAD_SEGMENTS: tuple[tuple[str, str], ...] = (
    ("stt_final", "llm_request"),
    ("tts_first_audio", "playout_queued"),
)


def _q_key(q: float) -> str:
    return f"p{q:g}"


def percentiles(
    values: Iterable[float], qs: Sequence[float] = DEFAULT_QS
) -> dict[str, float] | None:
    """Percentiles of ``values`` with linear interpolation (numpy ``method="linear"``).

    Args:
        values: finite numbers (e.g. ms), any order.
        qs: percentiles in [0, 100]; keys of the result are ``f"p{q:g}"`` (``"p50"``, ``"p99.9"``).

    Returns:
        ``{"p50": ..., "p95": ..., "p99": ...}`` as floats, or ``None`` when ``values`` is empty
        (there is no percentile of nothing; callers print "n/a").

    Raises:
        ValueError: a value is NaN/infinite, or a q is outside [0, 100].
    """
    arr = np.asarray(list(values), dtype=np.float64)
    for q in qs:
        if not 0.0 <= float(q) <= 100.0:
            raise ValueError(f"percentile q={q} is outside [0, 100]; use e.g. qs=(50, 95, 99)")
    if arr.size == 0:
        return None
    if not np.all(np.isfinite(arr)):
        raise ValueError("percentiles got a NaN or infinite value; drop incomplete turns first")
    result = np.percentile(arr, [float(q) for q in qs], method="linear")
    return {_q_key(q): float(v) for q, v in zip(qs, result, strict=True)}


EVAL_QS: tuple[float, ...] = (50, 95)
"""Percentiles the evaluations report (`stat_ms`)."""


def stat_ms(
    values: Sequence[float], qs: Sequence[float] = EVAL_QS, digits: int = 3
) -> dict[str, float | int | None]:
    """``{"n", "p50_ms", "p95_ms", "mean_ms", "max_ms"}`` of ``values`` (ms), as the evaluations'
    JSON holds them: rounded to ``digits`` decimals, every statistic ``None`` when empty.

    Percentiles are `percentiles` (numpy "linear", Hyndman & Fan type 7).

    Raises:
        ValueError: a value is NaN/infinite.
    """
    pct = percentiles(values, qs)
    out: dict[str, float | int | None] = {"n": len(values)}
    for q in qs:
        out[f"{_q_key(q)}_ms"] = None if pct is None else round(pct[_q_key(q)], digits)
    out["mean_ms"] = round(math.fsum(values) / len(values), digits) if values else None
    out["max_ms"] = round(max(values), digits) if values else None
    return out


@dataclass(frozen=True, slots=True)
class Stat:
    """Distribution of one quantity over the measured turns of a run, all in ms."""

    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float

    @classmethod
    def of(cls, values_ms: Sequence[float]) -> Stat | None:
        """The `Stat` of ``values_ms``, or ``None`` if it is empty."""
        pct = percentiles(values_ms, DEFAULT_QS)
        if pct is None:
            return None
        return cls(
            p50_ms=pct["p50"],
            p95_ms=pct["p95"],
            p99_ms=pct["p99"],
            mean_ms=float(np.mean(values_ms)),
            max_ms=float(np.max(values_ms)),
        )


@dataclass(frozen=True, slots=True)
class Summary:
    """Aggregates of one run.

    ``ttfat`` is ``None`` and ``terms`` is empty when no turn was measured; otherwise ``terms``
    has one `Stat` per name in `TERMS`, in that order.
    """

    count: int
    """Measured turns: complete and not failed (those in the statistics)."""
    count_incomplete: int
    """Turns missing at least one mark (e.g. the recording ended mid-reply, or barge-in)."""
    ttfat: Stat | None
    terms: dict[str, Stat]
    count_failed: int = 0
    """Turns a stage failed on (`TurnRecord.failure`), complete or not; not in the statistics."""


def validate_terms(turns: Iterable[TurnRecord]) -> None:
    """Check that every term of every complete turn is finite and non-negative.

    A negative term means two marks were taken out of order — a clock bug, since the marks are
    on one monotonic clock. ``engine_overhead`` is the sum of two gaps, and each gap is checked
    on its own so one cannot hide the other.

    Raises:
        ValueError: naming the turn and the term (and, for engine_overhead, the marks).
    """
    for turn in turns:
        terms = turn.terms_ms
        if terms is None:
            continue
        for name in TERMS:
            value = terms[name]
            if not math.isfinite(value):
                raise ValueError(
                    f"turn {turn.turn}: term {name} is {value}; every mark must be a finite "
                    f"number of ms on the session clock"
                )
            if value < 0:
                raise ValueError(
                    f"turn {turn.turn}: term {name} is negative ({value:.3f} ms); its marks are "
                    f"out of order, which is a clock bug in whatever recorded them "
                    f"(marks must follow {', '.join(MARKS)})"
                )
        for start, end in _ENGINE_OVERHEAD_SEGMENTS:
            gap_ms = turn.marks_ms[end] - turn.marks_ms[start]
            if gap_ms < 0:
                raise ValueError(
                    f"turn {turn.turn}: term engine_overhead has a negative part: "
                    f"{end} − {start} = {gap_ms:.3f} ms; mark {end} was taken before {start}, "
                    f"which is a clock bug in whatever recorded them"
                )


def summarize(turns: Sequence[TurnRecord]) -> Summary:
    """p50/p95/p99, mean and max of TTFAT and of every term over the measured turns.

    ``count + count_incomplete + count_failed == len(turns)``: a failed turn counts as failed
    whether or not it is complete.

    Raises:
        ValueError: a complete turn has a negative or non-finite term (see `validate_terms`).
    """
    validate_terms(turns)
    measured = [t for t in turns if t.measured]
    failed = sum(1 for t in turns if t.failure is not None)
    ttfats = [t.ttfat_ms for t in measured if t.ttfat_ms is not None]
    per_term: dict[str, list[float]] = {name: [] for name in TERMS}
    for t in measured:
        terms = t.terms_ms
        assert terms is not None  # complete turns always have terms
        for name in TERMS:
            per_term[name].append(terms[name])
    term_stats: dict[str, Stat] = {}
    for name, values in per_term.items():
        stat = Stat.of(values)
        if stat is not None:
            term_stats[name] = stat
    return Summary(
        count=len(measured),
        count_incomplete=len(turns) - len(measured) - failed,
        count_failed=failed,
        ttfat=Stat.of(ttfats),
        terms=term_stats,
    )


def auc(ends: Sequence[float], mids: Sequence[float]) -> float | None:
    """Probability that a true end scores higher than a mid-turn pause (ties count half).

    The Mann-Whitney U statistic over ``len(ends) * len(mids)`` pairs; 0.5 is chance, 1 a
    perfect separation. None when either set is empty.
    """
    if not ends or not mids:
        return None
    e = np.asarray(ends, dtype=np.float64)[:, None]
    m = np.asarray(mids, dtype=np.float64)[None, :]
    return float(np.mean((e > m) + 0.5 * (e == m)))
