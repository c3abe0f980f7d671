"""What an evaluation declares: a plan of trials, a trial function, and a report.

An evaluation is three module-level functions bundled in an `Evaluation`:

* ``plan(options) -> Iterable[Trial]`` — the trials, streamed (a generator that reads a data
  folder's ``manifest.jsonl`` entry by entry, never the whole corpus at once). Each trial is a
  small picklable description (paths, offsets, names), not audio.
* ``run_trial(options, trial) -> dict`` — runs one trial (models on the simulated clock) and
  scores it with the evaluation's pure scorer; the returned dict is JSON-able and is what the
  report aggregates. It must depend on ``options`` and ``trial`` alone (``trial.seed`` is the
  only randomness), so a trial gives the same result in any process, in any order: this is what
  makes a Ray run identical to a local one.
* ``report(options, run) -> Report`` — pure: the JSON document, the tables and the chart from
  the results of the trials done so far (a partial run reports what it has).

The harness (`earshot.evals.harness.runner`, `earshot.evals.harness.cli`) owns everything
else: the common flags, checking ``--out`` before any work, progress, Ctrl-C and SIGTERM (the
trials done so far are kept), the per-trial log ``<name>.trials.jsonl`` appended as trials
finish, atomic ``<name>.json``/``.txt``/``.png``, seeding, and running the trials locally or as
Ray tasks.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

O = TypeVar("O")  # noqa: E741 - the evaluation's options (a picklable dataclass)
P = TypeVar("P")
"""A trial's parameters (a picklable frozen dataclass)."""

TrialResult = Mapping[str, Any]
"""What `Evaluation.run_trial` returns: a JSON-able object (finite numbers only)."""


def trial_seed(run_seed: int, trial_id: str) -> int:
    """The seed of one trial: a stable function of the run's seed and the trial's id.

    CRC-32 (zlib) of ``"<run_seed>:<trial_id>"``, so it is the same in every process (unlike
    Python's salted ``hash``) and does not depend on the order trials run in.
    """
    return zlib.crc32(f"{run_seed}:{trial_id}".encode())


@dataclass(frozen=True, slots=True)
class Trial(Generic[P]):
    """One independent unit of work.

    Attributes:
        index: position in plan order (0-based); results are reported in this order.
        trial_id: stable, human-readable, unique within the plan (used in progress lines and
            the per-trial log).
        seed: this trial's only source of randomness (see `trial_seed`).
        params: the evaluation's description of the trial (picklable; no audio arrays needed).
    """

    index: int
    trial_id: str
    seed: int
    params: P


@dataclass(frozen=True, slots=True)
class DoneTrial:
    """A trial and its result."""

    index: int
    trial_id: str
    result: TrialResult


@dataclass(slots=True)
class RunResult:
    """The trials done so far, in plan order.

    Attributes:
        done: finished trials sorted by ``index``.
        planned: how many trials the plan yielded before the run stopped (all of them when it
            was not interrupted).
        interrupted: stopped by Ctrl-C or SIGTERM before the plan was exhausted.
        stop_reason: ``"SIGINT"``, ``"SIGTERM"`` or ``""``.
        total: the plan's length when it is a sized collection (a list), else ``None``
            (a streamed plan's length is known only once it is exhausted: ``planned``).
        failure: one line when a trial raised and the run stopped there (``""`` otherwise);
            ``done`` holds the trials finished before it.
    """

    done: list[DoneTrial] = field(default_factory=list)
    planned: int = 0
    interrupted: bool = False
    stop_reason: str = ""
    total: int | None = None
    failure: str = ""

    @property
    def results(self) -> list[TrialResult]:
        return [d.result for d in self.done]


@dataclass(frozen=True, slots=True)
class Report:
    """What one run produces besides the per-trial log.

    Attributes:
        doc: the ``<name>.json`` document (finite numbers only; it holds no wall-clock time or
            runner detail, so the same seed gives the same file locally and on Ray).
        tables: rich renderables printed on the terminal and, as plain text, into ``<name>.txt``.
        lines: plain lines printed after the tables (and written into ``<name>.txt``).
        plot: draws ``<name>.png`` at the given path (atomically), or ``None`` for no chart.
        exit_code: 0, or 1 when the run measured nothing usable (``message`` says why).
        message: a one-line error printed on stderr when ``exit_code`` is not 0.
        text_width: the width (characters) ``<name>.txt`` is rendered at.
        files: further text files to write into ``--out`` (name → content), each atomically
            (e.g. the latency evaluation's ``turns.jsonl``).
    """

    doc: Mapping[str, Any]
    tables: Sequence[Any] = ()
    lines: Sequence[str] = ()
    plot: Callable[[Path], None] | None = None
    exit_code: int = 0
    message: str = ""
    text_width: int = 120
    files: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Evaluation(Generic[O, P]):
    """An evaluation as the harness runs it.

    Attributes:
        name: the ``earshot eval`` verb and the stem of every output file.
        plan: ``options → trials``, streamed, in a fixed order for given options and seed.
        run_trial: ``(options, trial) → result``; a module-level function (Ray ships it by
            reference), deterministic in its arguments.
        report: ``(options, run) → Report``; pure.
        describe: ``result → a few words`` for the progress line of each finished trial.
    """

    name: str
    plan: Callable[[O], Iterable[Trial[P]]]
    run_trial: Callable[[O, Trial[P]], TrialResult]
    report: Callable[[O, RunResult], Report]
    describe: Callable[[TrialResult], str] | None = None
