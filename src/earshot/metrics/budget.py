"""Per-term latency budgets that a run's turns are checked against.

A `TermBudget` is a set of budget lines, each covering one or more TTFAT terms (names in
`earshot.metrics.turn.TERMS`), plus a budget for the whole TTFAT. A turn is over on a line when
the sum of that line's terms exceeds the line's budget (strictly), and over in total when its
TTFAT exceeds ``total_ms``. Terms that no line covers are unbudgeted on their own but still count
toward the total.

This is the runtime check behind the report of ``earshot converse``; the what-if model that
projects levers lives in `earshot.budget`.

Budget file (``--budget FILE``; YAML, or JSON when the name ends in ``.json``)::

    name: my 1.2 s budget          # optional
    total_ms: 1200
    lines:
      - name: VAD silence threshold  # optional; defaults to the terms joined by "+"
        terms: [endpointing]         # one term name or a list of them
        budget_ms: 200
      - terms: [network_in, network_out, jitter_buffer]
        budget_ms: 100
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from earshot.budget.model import Budget, load_preset
from earshot.inputs import read_text_file
from earshot.metrics.turn import TERMS, TurnRecord

TOTAL_LINE = "total TTFAT"
"""The name `Overrun.line` carries when the whole TTFAT is over ``total_ms``."""


class BudgetError(ValueError):
    """A budget definition is invalid; the message names the bad key and what is allowed."""


@dataclass(frozen=True, slots=True)
class BudgetLine:
    """One line of a budget: the summed terms it covers and their allowance in ms."""

    name: str
    terms: tuple[str, ...]
    budget_ms: float

    def measured_ms(self, terms_ms: Mapping[str, float]) -> float:
        """Sum of this line's terms in ``terms_ms`` (ms)."""
        return sum(terms_ms[t] for t in self.terms)


@dataclass(frozen=True, slots=True)
class Overrun:
    """One budget line (or the total) that a turn exceeded."""

    turn: int
    line: str
    """The budget line's name, or `TOTAL_LINE`."""
    terms: tuple[str, ...]
    """The terms the line covers (all of `TERMS` for the total)."""
    measured_ms: float
    budget_ms: float

    @property
    def over_ms(self) -> float:
        """How far over the budget the turn went, ms (> 0)."""
        return self.measured_ms - self.budget_ms


def _check_ms(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BudgetError(f"{where}: expected a number of milliseconds, got {value!r}")
    ms = float(value)
    if not math.isfinite(ms) or ms <= 0:
        raise BudgetError(f"{where}: must be a positive number of milliseconds, got {value!r}")
    return ms


@dataclass(frozen=True, slots=True)
class TermBudget:
    """Budget lines over TTFAT terms plus a total TTFAT budget, all in ms.

    Raises:
        BudgetError: a line names an unknown term, a term is in two lines, a line has no terms,
            two lines share a name, or a budget is not a positive number of ms.
    """

    lines: tuple[BudgetLine, ...]
    total_ms: float
    name: str = "custom"
    source: str = ""
    """Where the numbers come from (a citation), shown in the report."""
    _by_term: dict[str, BudgetLine] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_ms(self.total_ms, "total_ms")
        by_term: dict[str, BudgetLine] = {}
        names: set[str] = set()
        for i, line in enumerate(self.lines):
            where = f"lines[{i}] ({line.name!r})"
            _check_ms(line.budget_ms, f"{where}.budget_ms")
            if not line.terms:
                raise BudgetError(f"{where}.terms: empty; name at least one of {_allowed()}")
            if line.name in names:
                raise BudgetError(f"{where}.name: two lines are named {line.name!r}; rename one")
            names.add(line.name)
            for term in line.terms:
                if term not in TERMS:
                    raise BudgetError(
                        f"{where}.terms: unknown term {term!r}; allowed terms: {_allowed()}"
                    )
                if term in by_term:
                    raise BudgetError(
                        f"{where}.terms: term {term!r} is already budgeted by line "
                        f"{by_term[term].name!r}; a term may be in one line only"
                    )
                by_term[term] = line
        object.__setattr__(self, "_by_term", by_term)

    @property
    def unbudgeted_terms(self) -> tuple[str, ...]:
        """Terms no line covers, in `TERMS` order (they still count toward ``total_ms``)."""
        return tuple(t for t in TERMS if t not in self._by_term)

    def line_for(self, term: str) -> BudgetLine | None:
        """The line covering ``term``, or ``None`` if it is unbudgeted."""
        return self._by_term.get(term)

    def check(self, turn: TurnRecord) -> list[Overrun]:
        """Every line the turn is over (sum of its terms > ``budget_ms``), then the total.

        Raises:
            ValueError: the turn is incomplete (it has no TTFAT to check).
        """
        terms = turn.terms_ms
        ttfat_ms = turn.ttfat_ms
        if terms is None or ttfat_ms is None:
            raise ValueError(
                f"turn {turn.turn} is incomplete (marks {sorted(turn.marks_ms)}); it has no TTFAT "
                f"to check against the budget — check only turns whose `complete` is True"
            )
        overruns = [
            Overrun(turn.turn, line.name, line.terms, line.measured_ms(terms), line.budget_ms)
            for line in self.lines
            if line.measured_ms(terms) > line.budget_ms
        ]
        if ttfat_ms > self.total_ms:
            overruns.append(Overrun(turn.turn, TOTAL_LINE, TERMS, ttfat_ms, self.total_ms))
        return overruns

    def to_dict(self) -> dict[str, Any]:
        """The budget in the file format `load_budget` reads."""
        return {
            "name": self.name,
            "total_ms": self.total_ms,
            "lines": [
                {"name": ln.name, "terms": list(ln.terms), "budget_ms": ln.budget_ms}
                for ln in self.lines
            ],
        }


def _allowed() -> str:
    return ", ".join(TERMS)


def term_budget(preset: Budget) -> TermBudget:
    """The runtime check of a published budget preset (`earshot.budget.model.Budget`).

    Each preset term becomes one line: a runtime term budgets itself, a term with ``covers``
    (e.g. ``margin``) budgets the runtime terms it lists. Its total is the preset's
    ``budget_ms``. Runtime terms the preset has no line for stay unbudgeted on their own (they
    still count toward the total).

    Raises:
        BudgetError: the preset has a range term, no ``budget_ms``, or a term that is neither a
            runtime term nor ``covers`` any.
    """
    if preset.budget_ms is None:
        raise BudgetError(
            f"preset {preset.name!r} states no budget_ms (a total to check turns against); "
            "choose a preset with one, e.g. pipeline-1.5s"
        )
    lines = []
    for term in preset.terms:
        if term.is_range:
            raise BudgetError(
                f"preset {preset.name!r}: term {term.name!r} is a range "
                f"({term.low_ms:g}–{term.high_ms:g} ms); a budget line needs one number"
            )
        covered = term.covers or (term.name,)
        lines.append(BudgetLine(term.label or term.name, covered, term.high_ms))
    try:
        return TermBudget(
            lines=tuple(lines), total_ms=preset.budget_ms, name=preset.name, source=preset.source
        )
    except BudgetError as exc:
        raise BudgetError(f"preset {preset.name!r}: {exc}") from exc


PRESET_ALIASES: dict[str, str] = {"1.5s": "pipeline-1.5s", "2.0s": "pipeline-2.0s"}
"""``--budget-preset`` names → the presets under ``earshot/data/budget/presets/``."""

PIPELINE_1_5_S = term_budget(load_preset(PRESET_ALIASES["1.5s"]))
"""The 1.5 s pipeline budget ("Latency Budgeting: Speed Goals for Realtime Voice"), the default;
read from the ``pipeline-1.5s`` preset, the same file ``earshot budget --preset`` reads."""
PIPELINE_2_0_S = term_budget(load_preset(PRESET_ALIASES["2.0s"]))
"""The 2.0 s pipeline budget, from the ``pipeline-2.0s`` preset."""
DEFAULT_BUDGET = PIPELINE_1_5_S

_margin = PIPELINE_1_5_S.line_for("network_in")
assert _margin is not None  # the preset's margin covers the network and buffering terms
NETWORK_MARGIN_TERMS: tuple[str, ...] = _margin.terms
"""The terms the published "network / buffer jitter margin" line covers (the preset's
``covers:``): both network legs, both jitter buffers (the server's uplink one and the playout
one) and the client's playout."""
PRESETS: dict[str, TermBudget] = {"1.5s": PIPELINE_1_5_S, "2.0s": PIPELINE_2_0_S}

_TOP_KEYS = ("name", "total_ms", "lines", "source")
_LINE_KEYS = ("name", "terms", "budget_ms")


def budget_from_dict(data: object, where: str = "budget") -> TermBudget:
    """Build a `TermBudget` from the parsed budget-file structure (see the module docstring).

    Args:
        data: the parsed YAML/JSON document.
        where: prefix for error messages (the file name).

    Raises:
        BudgetError: naming the bad key, and the allowed keys or term names.
    """
    if not isinstance(data, Mapping):
        raise BudgetError(
            f"{where}: expected a mapping with keys {', '.join(_TOP_KEYS)}, "
            f"got {type(data).__name__}"
        )
    for key in data:
        if key not in _TOP_KEYS:
            raise BudgetError(f"{where}: unknown key {key!r}; allowed keys: {', '.join(_TOP_KEYS)}")
    if "total_ms" not in data:
        raise BudgetError(f"{where}: missing key 'total_ms' (the TTFAT budget in ms)")
    raw_lines = data.get("lines", [])
    if not isinstance(raw_lines, list):
        raise BudgetError(
            f"{where}.lines: expected a list of lines, got {type(raw_lines).__name__}"
        )
    lines: list[BudgetLine] = []
    for i, raw in enumerate(raw_lines):
        at = f"{where}.lines[{i}]"
        if not isinstance(raw, Mapping):
            raise BudgetError(f"{at}: expected a mapping with keys {', '.join(_LINE_KEYS)}")
        for key in raw:
            if key not in _LINE_KEYS:
                raise BudgetError(
                    f"{at}: unknown key {key!r}; allowed keys: {', '.join(_LINE_KEYS)}"
                )
        for key in ("terms", "budget_ms"):
            if key not in raw:
                raise BudgetError(f"{at}: missing key {key!r}")
        raw_terms = raw["terms"]
        if isinstance(raw_terms, str):
            raw_terms = [raw_terms]
        if not isinstance(raw_terms, list) or not all(isinstance(t, str) for t in raw_terms):
            raise BudgetError(
                f"{at}.terms: expected a term name or a list of them from: {_allowed()}"
            )
        for term in raw_terms:
            if term not in TERMS:
                raise BudgetError(f"{at}.terms: unknown term {term!r}; allowed terms: {_allowed()}")
        budget_ms = _check_ms(raw["budget_ms"], f"{at}.budget_ms")
        name = raw.get("name", "+".join(raw_terms))
        if not isinstance(name, str) or not name:
            raise BudgetError(f"{at}.name: expected a non-empty string, got {name!r}")
        lines.append(BudgetLine(name, tuple(raw_terms), budget_ms))
    total_ms = _check_ms(data["total_ms"], f"{where}.total_ms")
    name = data.get("name", "custom")
    source = data.get("source", "")
    if not isinstance(name, str) or not isinstance(source, str):
        raise BudgetError(f"{where}: 'name' and 'source' must be strings")
    try:
        return TermBudget(lines=tuple(lines), total_ms=total_ms, name=name, source=source)
    except BudgetError as exc:
        raise BudgetError(f"{where}: {exc}") from exc


def load_budget(
    path: str | os.PathLike[str] | None = None, *, preset: str | None = None
) -> TermBudget:
    """Read a budget file (YAML, or JSON when the name ends in ``.json``), or take a preset.

    Args:
        path: the budget file; when given, ``preset`` is ignored.
        preset: a name in `PRESETS` ("1.5s", "2.0s"), used when ``path`` is ``None``;
            ``None`` means `DEFAULT_BUDGET`.

    Raises:
        BudgetError: the file is missing, does not parse, or is not a valid budget; or the
            preset is unknown.
    """
    if path is None:
        if preset is None:
            return DEFAULT_BUDGET
        if preset not in PRESETS:
            raise BudgetError(
                f"unknown budget preset {preset!r}; presets: {', '.join(PRESETS)} "
                f"(or give a YAML/JSON budget file)"
            )
        return PRESETS[preset]
    p = Path(path)
    try:
        text = read_text_file(p, "budget file", BudgetError)
    except BudgetError as exc:
        raise BudgetError(f"{exc}, or use a preset ({', '.join(PRESETS)})") from None
    is_json = p.suffix.lower() == ".json"
    try:
        data = json.loads(text) if is_json else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise BudgetError(f"{p}: not valid {'JSON' if is_json else 'YAML'}: {exc}") from exc
    return budget_from_dict(data, where=str(p))


def budget_from_arg(value: str | None) -> TermBudget:
    """Resolve a ``--budget`` argument: ``None`` → default, a preset name, or a file path.

    Raises:
        BudgetError: the value is neither a preset nor a readable, valid budget file.
    """
    if value is None or value in PRESETS:
        return load_budget(None, preset=value)
    return load_budget(value)


def count_overruns(overruns: Sequence[Overrun]) -> dict[str, int]:
    """How many overruns each line has, most frequent first (ties in first-seen order)."""
    counts: dict[str, int] = {}
    for o in overruns:
        counts[o.line] = counts.get(o.line, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))
