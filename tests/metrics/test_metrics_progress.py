"""The converse progress display: plain lines off a terminal, a live bar on one, or nothing."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from earshot.metrics.progress import ConverseProgress
from earshot.metrics.turn import MARKS, TurnRecord


def plain_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200), out


def drive(progress: ConverseProgress) -> None:
    """10 s of input in 20 ms frames; turn 1 ends at 3.5 s (TTFAT 812 ms), turn 2 at 8.25 s."""
    with progress:
        for pos_ms in range(0, 10_001, 20):
            turns, last = (0, None) if pos_ms < 3500 else (1, 812.4) if pos_ms < 8260 else (2, None)
            progress.update(pos_ms, turns, last)


def test_plain_lines_when_not_a_terminal() -> None:
    console, out = plain_console()
    progress = ConverseProgress(10_000, console=console)
    assert progress.live is False
    drive(progress)
    lines = out.getvalue().splitlines()
    # one line per tenth of the audio (0 %, 10 % ... 100 %) plus one per finished turn
    assert len(lines) == 11 + 2
    assert lines[0] == "converse: 0.0 / 10.0 s audio (0%), 0 turns, last TTFAT —"
    assert lines[4] == "converse: 3.5 / 10.0 s audio (35%), 1 turns, last TTFAT 812 ms"
    assert lines[-1] == "converse: 10.0 / 10.0 s audio (100%), 2 turns, last TTFAT —"


def test_plain_final_line_on_exit_when_state_changed() -> None:
    console, out = plain_console()
    with ConverseProgress(None, console=console) as progress:
        progress.update(0, 0, None)
        progress.update(1234, 0, None)  # no turn, no total: nothing to print yet
    assert out.getvalue().splitlines() == [
        "converse: 0.0 s audio, 0 turns, last TTFAT —",
        "converse: 1.2 s audio, 0 turns, last TTFAT —",
    ]


def test_quiet_prints_nothing_even_on_a_terminal() -> None:
    out = io.StringIO()
    progress = ConverseProgress(10_000, quiet=True, console=Console(file=out, force_terminal=True))
    drive(progress)
    progress.note("hello")
    assert out.getvalue() == ""


def test_live_bar_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    progress = ConverseProgress(10_000, console=console)
    assert progress.live is True
    drive(progress)
    text = out.getvalue()
    assert "10.0 / 10.0 s audio" in text
    assert "turns 2" in text
    assert "last TTFAT 812 ms" in text


def test_bad_total_is_refused() -> None:
    with pytest.raises(ValueError, match="give the input length in ms"):
        ConverseProgress(-1.0)


def test_update_from_the_session_turn_records() -> None:
    console, out = plain_console()
    done = TurnRecord(1, {name: 100.0 * i for i, name in enumerate(MARKS)})  # TTFAT 800
    in_flight = TurnRecord(2, {"speech_end": 5000.0})
    with ConverseProgress(None, console=console) as progress:
        progress.update(4000, [done])
        progress.update(5020, [done, in_flight])
    assert out.getvalue().splitlines() == [
        "converse: 4.0 s audio, 1 turns, last TTFAT 800 ms",
        "converse: 5.0 s audio, 2 turns, last TTFAT 800 ms",
    ]
