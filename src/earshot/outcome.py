"""How a run ended, as one object: the exit status and the last line of the terminal output.

A run "succeeds" only when every turn was answered and every output was written. The exit
statuses of ``earshot`` (also in ``earshot converse --help`` and the README):

| status | meaning |
|---|---|
| 0 | every turn answered, every output written |
| 1 | an internal error (a bug): one line, the traceback with ``EARSHOT_DEBUG=1`` |
| 2 | a bad option, input file or output folder: nothing was run (one-line error) |
| 3 | the run finished but a turn failed (the caller heard a fallback line) |
| 4 | the run finished but an output file could not be written (e.g. the disk is full) |
| 130 | stopped by Ctrl-C (SIGINT); the outputs hold the turns done so far |
| 141 | the output pipe was closed (e.g. ``| head``); nothing more was printed |
| 143 | stopped by SIGTERM; the outputs hold the turns done so far |
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from earshot.metrics.turn import TurnFailure, TurnRecord
from earshot.safe_text import printable
from earshot.shutdown import EXIT_SIGINT as EXIT_SIGINT
from earshot.shutdown import EXIT_SIGTERM as EXIT_SIGTERM

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_TURNS_FAILED = 3
EXIT_OUTPUT_FAILED = 4
EXIT_BROKEN_PIPE = 141

EXIT_STATUS_HELP = (
    "exit status: 0 every turn answered and every output written; 1 internal error (a bug); "
    "2 bad option, input or "
    "--out (nothing run); 3 finished, but turns failed (the caller heard a fallback line); "
    "4 finished, but an output could not be written; 130 stopped by Ctrl-C, 143 by SIGTERM "
    "(outputs hold the turns done so far); 141 output pipe closed"
)
"""The exit statuses in one paragraph, for ``--help`` epilogs."""

_MESSAGE_CHARS = 240


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """The end of a run.

    Attributes:
        num_turns: user turns in the run.
        failures: one per failed turn, in turn order: ``(turn, failure)``.
        stopped_by: ``"SIGINT"`` or ``"SIGTERM"`` when the run was stopped, else None.
        output_errors: one line per output that could not be written.
    """

    num_turns: int
    failures: tuple[tuple[int, TurnFailure], ...] = ()
    stopped_by: str | None = None
    output_errors: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        turns: Sequence[TurnRecord],
        *,
        stopped_by: str | None = None,
        output_errors: Sequence[str] = (),
    ) -> RunOutcome:
        """The outcome of a run with these turns."""
        failures = tuple((t.turn, f) for t in turns if (f := t.failure) is not None)
        return cls(len(turns), failures, stopped_by, tuple(output_errors))

    @property
    def failed_stages(self) -> dict[str, int]:
        """Stage → number of turns it failed on, most first."""
        counts: dict[str, int] = {}
        for _, failure in self.failures:
            counts[failure.stage] = counts.get(failure.stage, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    @property
    def exit_code(self) -> int:
        """The process exit status (see the module docstring); a stop outranks a failure."""
        if self.stopped_by == "SIGTERM":
            return EXIT_SIGTERM
        if self.stopped_by is not None:
            return EXIT_SIGINT
        if self.output_errors:
            return EXIT_OUTPUT_FAILED
        if self.failures:
            return EXIT_TURNS_FAILED
        return EXIT_OK

    def stage_note(self, stage: str) -> str | None:
        """``"FAILED on 2 of 2 turns"`` for a stage that failed, else None."""
        n = self.failed_stages.get(stage, 0)
        return f"FAILED on {n} of {self.num_turns} turns" if n else None

    def detail_lines(self) -> list[str]:
        """The lines before the last: the first error of each failed stage, every output error."""
        lines = []
        seen: set[str] = set()
        for turn, failure in self.failures:
            if failure.stage in seen:
                continue
            seen.add(failure.stage)
            message = printable(failure.message)[:_MESSAGE_CHARS]
            lines.append(f"{failure.stage} error (first, turn {turn}): {message}")
        lines += [printable(e) for e in self.output_errors]
        return lines

    def last_line(self) -> str:
        """One line saying how the run ended; starts with "ok:", "FAILED:" or "stopped"."""
        failed = ""
        if self.failures:
            stages = ", ".join(
                f"{stage} on every turn" if n == self.num_turns else f"{stage} on {n}"
                for stage, n in self.failed_stages.items()
            )
            failed = (
                f"{len(self.failures)} of {self.num_turns} turns failed ({stages}); the caller "
                "heard a fallback line"
            )
        if self.stopped_by is not None:
            how = "Ctrl-C" if self.stopped_by == "SIGINT" else "SIGTERM"
            text = f"stopped by {how}: the outputs hold the turns done so far"
            return text + (f"; {failed}" if failed else "")
        if self.output_errors:
            n = len(self.output_errors)
            text = f"FAILED: {n} output{'s' if n > 1 else ''} could not be written (see above)"
            return text + (f"; {failed}" if failed else "")
        if failed:
            return f"FAILED: {failed}"
        if self.num_turns == 0:
            return "ok: the caller took no turn (no speech detected), nothing failed"
        return f"ok: {self.num_turns} of {self.num_turns} turns answered"
