"""Progress display for ``earshot converse``: audio position, turns done, last TTFAT.

On a terminal it is a live rich progress bar; when the output is not a terminal (CI, a pipe, a
log file) it prints plain lines, only when something worth a line happened: a turn finished, or
the audio position crossed another tenth of the input. ``quiet=True`` prints nothing.

Progress is driven by the caller's audio position (ms of input audio consumed), never by reading
a clock, so the output is a function of the updates alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from earshot.metrics.turn import TurnRecord

_REFRESH_EVERY_MS = 100.0
"""Redraw the live bar at most once per this much input audio (ms), or when a turn ends."""
_PLAIN_STEPS = 10
"""Plain mode prints a line each time the audio position crosses another 1/_PLAIN_STEPS."""


def _fmt_ttfat(last_ttfat_ms: float | None, last_failed: bool = False) -> str:
    if last_failed:
        return "FAILED"
    return "—" if last_ttfat_ms is None else f"{last_ttfat_ms:,.0f} ms"


def _fmt_turns(turns_done: int, turns_failed: int) -> str:
    return f"{turns_done} ({turns_failed} FAILED)" if turns_failed else str(turns_done)


class ConverseProgress:
    """Shows how far a converse run is through its input audio.

    Args:
        total_audio_ms: length of the input audio in ms, or ``None`` when it is open-ended
            (a live transport); then no percentage is shown.
        quiet: print nothing at all.
        console: where to draw (default: a rich Console on stdout). Whether it is a terminal
            (``console.is_terminal``) picks the live bar or plain lines.

    Raises:
        ValueError: ``total_audio_ms`` is negative or not finite.
    """

    def __init__(
        self,
        total_audio_ms: float | None,
        *,
        quiet: bool = False,
        console: Console | None = None,
    ) -> None:
        if total_audio_ms is not None and not (
            math.isfinite(total_audio_ms) and total_audio_ms >= 0
        ):
            raise ValueError(
                f"total_audio_ms={total_audio_ms}: give the input length in ms (>= 0), "
                f"or None when it is unknown"
            )
        self.total_audio_ms = total_audio_ms
        self.quiet = quiet
        self.console = console if console is not None else Console()
        self.live = not quiet and self.console.is_terminal
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._audio_pos_ms = 0.0
        self._turns_done = 0
        self._last_ttfat_ms: float | None = None
        self._turns_failed = 0
        self._last_failed = False
        self._drawn_pos_ms = -math.inf
        self._plain_step = -1
        self._plain_printed: tuple[float, int, float | None, int] | None = None

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Begin displaying (idempotent); `update` calls it if needed."""
        if not self.live or self._progress is not None:
            return
        self._progress = Progress(
            TextColumn("[bold]converse[/bold]"),
            BarColumn(),
            TextColumn("{task.fields[audio]}"),
            TextColumn("· turns {task.fields[turns]}"),
            TextColumn("· last TTFAT {task.fields[ttfat]}"),
            console=self.console,
            auto_refresh=False,
            transient=False,
        )
        self._task = self._progress.add_task(
            "converse",
            total=self.total_audio_ms,
            audio=self._audio_text(),
            turns=_fmt_turns(0, 0),
            ttfat=_fmt_ttfat(None),
        )
        self._progress.start()

    def stop(self) -> None:
        """Finish: a last redraw of the bar, or a last plain line if anything changed."""
        if self.quiet:
            return
        if self._progress is not None:
            self._redraw(force=True)
            self._progress.stop()
            self._progress = None
        elif not self.live:
            self._print_plain()

    def __enter__(self) -> ConverseProgress:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- updates --------------------------------------------------------------------

    def update(
        self,
        audio_pos_ms: float,
        turns_done: int | Sequence[TurnRecord],
        last_ttfat_ms: float | None = None,
    ) -> None:
        """Report progress.

        Args:
            audio_pos_ms: input audio consumed so far, ms (from sample counts).
            turns_done: user turns so far — a count, or the session's turn records, in which
                case the count is ``len(turns_done)``, failed turns (`TurnRecord.failure`) are
                counted and shown, ``last_ttfat_ms`` is taken from the most recent measured
                one, and "FAILED" is shown instead when the most recent turn failed.
            last_ttfat_ms: TTFAT of the last finished turn in ms, ``None`` if there is none
                or it was incomplete. Ignored when ``turns_done`` is a sequence of records.
        """
        if self.quiet:
            return
        if not isinstance(turns_done, int):
            records = turns_done
            turns_done = len(records)
            last_ttfat_ms = next(
                (t.ttfat_ms for t in reversed(records) if t.measured and t.ttfat_ms is not None),
                None,
            )
            self._turns_failed = sum(1 for t in records if t.failure is not None)
            self._last_failed = bool(records) and records[-1].failure is not None
        self._audio_pos_ms = audio_pos_ms
        new_turn = turns_done != self._turns_done
        self._turns_done = turns_done
        self._last_ttfat_ms = last_ttfat_ms
        if self.live:
            self.start()
            self._redraw(force=new_turn)
            return
        step = self._step()
        if new_turn or step > self._plain_step:
            self._plain_step = max(step, self._plain_step)
            self._print_plain()

    def note(self, message: str) -> None:
        """Print one line of text (above the live bar on a terminal)."""
        if self.quiet:
            return
        self.console.print(message, markup=False, highlight=False, soft_wrap=True)

    # -- internals ------------------------------------------------------------------

    def _audio_text(self) -> str:
        pos_s = self._audio_pos_ms / 1000.0
        if self.total_audio_ms is None:
            return f"{pos_s:.1f} s audio"
        return f"{pos_s:.1f} / {self.total_audio_ms / 1000.0:.1f} s audio"

    def _step(self) -> int:
        if not self.total_audio_ms:
            return 0
        fraction = min(1.0, max(0.0, self._audio_pos_ms / self.total_audio_ms))
        return math.floor(fraction * _PLAIN_STEPS)

    def _redraw(self, *, force: bool) -> None:
        if self._progress is None or self._task is None:
            return
        if not force and self._audio_pos_ms - self._drawn_pos_ms < _REFRESH_EVERY_MS:
            return
        self._drawn_pos_ms = self._audio_pos_ms
        self._progress.update(
            self._task,
            completed=self._audio_pos_ms,
            audio=self._audio_text(),
            turns=_fmt_turns(self._turns_done, self._turns_failed),
            ttfat=_fmt_ttfat(self._last_ttfat_ms, self._last_failed),
            refresh=True,
        )

    def _print_plain(self) -> None:
        state = (self._audio_pos_ms, self._turns_done, self._last_ttfat_ms, self._turns_failed)
        if state == self._plain_printed:
            return
        self._plain_printed = state
        pct = ""
        if self.total_audio_ms:
            pct = f" ({100.0 * self._audio_pos_ms / self.total_audio_ms:.0f}%)"
        self.note(
            f"converse: {self._audio_text()}{pct}, "
            f"{_fmt_turns(self._turns_done, self._turns_failed)} turns, "
            f"last TTFAT {_fmt_ttfat(self._last_ttfat_ms, self._last_failed)}"
        )
