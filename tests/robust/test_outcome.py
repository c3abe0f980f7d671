"""The run outcome: failed turns counted apart, exit statuses, the last line, the progress."""

from __future__ import annotations

import io

from rich.console import Console

from earshot.metrics.progress import ConverseProgress
from earshot.metrics.stats import summarize
from earshot.metrics.turn import MARKS, TurnRecord
from earshot.outcome import RunOutcome
from earshot.turns.bargein import reaction_ms


def _turn(n: int, ttfat_ms: float, *, error: str | None = None) -> TurnRecord:
    step = ttfat_ms / (len(MARKS) - 1)
    marks = {name: 10_000.0 * n + step * i for i, name in enumerate(MARKS)}
    return TurnRecord(n, marks, extra={} if error is None else {"llm_error": error})


def test_failed_turns_are_not_in_the_latency_statistics() -> None:
    turns = [_turn(1, 900.0), _turn(2, 580.0, error="HTTP 500"), _turn(3, 1100.0)]
    summary = summarize(turns)
    assert (summary.count, summary.count_failed, summary.count_incomplete) == (2, 1, 0)
    assert summary.ttfat is not None
    assert summary.ttfat.p50_ms == 1000.0  # 900 and 1100: the 580 ms fallback is left out
    assert summarize([_turn(1, 580.0, error="x")]).ttfat is None


def test_exit_status_and_last_line() -> None:
    ok = [_turn(1, 900.0), _turn(2, 800.0)]
    assert RunOutcome.of(ok).exit_code == 0
    assert RunOutcome.of(ok).last_line() == "ok: 2 of 2 turns answered"
    failed = [_turn(1, 580.0, error="HTTP 500"), _turn(2, 580.0, error="HTTP 500")]
    outcome = RunOutcome.of(failed)
    assert outcome.exit_code == 3
    assert outcome.last_line() == (
        "FAILED: 2 of 2 turns failed (llm on every turn); the caller heard a fallback line"
    )
    assert outcome.stage_note("llm") == "FAILED on 2 of 2 turns"
    assert outcome.stage_note("tts") is None
    assert RunOutcome.of(ok, output_errors=["cannot write x: full"]).exit_code == 4
    stopped = RunOutcome.of(failed, stopped_by="SIGTERM")
    assert stopped.exit_code == 143
    assert stopped.last_line().startswith("stopped by SIGTERM: the outputs hold the turns")
    assert RunOutcome.of(ok, stopped_by="SIGINT").exit_code == 130


def test_progress_shows_failed_turns() -> None:
    out = io.StringIO()
    with ConverseProgress(None, console=Console(file=out, width=200)) as progress:
        progress.update(4000, [_turn(1, 900.0)])
        progress.update(5000, [_turn(1, 900.0), _turn(2, 580.0, error="HTTP 500")])
    assert out.getvalue().splitlines() == [
        "converse: 4.0 s audio, 1 turns, last TTFAT 900 ms",
        "converse: 5.0 s audio, 2 (1 FAILED) turns, last TTFAT FAILED",
    ]


def test_reaction_is_never_negative() -> None:
    assert reaction_ms(user_onset_ms=1000.0, last_agent_sample_played_ms=1180.0) == 180.0
    # The agent had gone quiet at 900 ms, before the user spoke at 1000 ms: it talked over
    # no one, so the reaction is 0, not -100.
    assert reaction_ms(user_onset_ms=1000.0, last_agent_sample_played_ms=900.0) == 0.0
