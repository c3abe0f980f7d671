"""Terminal tables (rich) and JSON documents for budget projections, simulations and audits.

Bounds values print as ``400`` (a point) or ``200–500`` (best–worst); deltas carry a sign.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
from rich.table import Table

from earshot.budget.audit import Audit
from earshot.budget.levers import LEVERS
from earshot.budget.model import TERMS, Budget, FloatArray
from earshot.budget.montecarlo import PERCENTILES, Summary
from earshot.budget.tokens import ConversationTokens
from earshot.budget.whatif import Step, deltas

RANGE_ASSUMPTION = (
    "Simulated terms: a published range lo–hi is drawn as a lognormal with p50 = lo and "
    "p99 = hi (an assumption; override with --dist TERM=P50:P99); point values are constants."
)


def _num(x: float) -> str:
    return f"{x:.0f}" if abs(x - round(x)) < 0.05 else f"{x:.1f}"


def fmt_ms(values: FloatArray, *, signed: bool = False) -> str:
    """Best/worst ms as text: ``400``, ``200–500``; signed deltas ``+20``, ``-200 / 0``."""
    low, high = float(values[0]), float(values[-1])

    def one(x: float) -> str:
        if signed and abs(x) < 0.05:
            return "0"
        return ("+" if signed and x > 0 else "") + _num(x)

    if abs(high - low) < 0.05:
        return one(low)
    return f"{one(low)} / {one(high)}" if signed else f"{one(low)}–{one(high)}"


def _pair(values: FloatArray) -> list[float]:
    return [round(float(values[0]), 3), round(float(values[-1]), 3)]


def bounds_table(budget: Budget, steps: Sequence[Step]) -> Table:
    """Baseline, each lever's delta per term, and the what-if, in ``[best, worst]`` ms."""
    labels = {t.name: t.label for t in budget.terms}
    table = Table(title=f"{budget.title}  [{budget.name}]", caption=budget.source)
    table.add_column("term")
    table.add_column("as published", overflow="fold", max_width=34)
    table.add_column("baseline ms", justify="right")
    for step in steps[1:]:
        table.add_column(f"Δ {step.label}", justify="right", overflow="fold", max_width=26)
    if len(steps) > 1:
        table.add_column("what-if ms", justify="right")
    per_lever = deltas(steps)
    for name, base in steps[0].contributions_ms.items():
        row = [name, labels.get(name, ""), fmt_ms(base)]
        row += [fmt_ms(d[name], signed=True) for d in per_lever]
        row += [fmt_ms(steps[-1].contributions_ms[name])] if len(steps) > 1 else []
        table.add_row(*row)
    table.add_section()
    totals = [s.total_ms() for s in steps]
    row = ["TTFAT", "sum of terms", fmt_ms(totals[0])]
    row += [fmt_ms(b - a, signed=True) for a, b in itertools.pairwise(totals)]
    row += [fmt_ms(totals[-1])] if len(steps) > 1 else []
    table.add_row(*row, style="bold")
    if budget.stated_total_ms is not None:
        table.add_row(
            "stated total", budget.stated_total_cite, fmt_ms(np.array(budget.stated_total_ms))
        )
    if budget.budget_ms is not None:
        table.add_row("budget", budget.budget_cite or budget.source, _num(budget.budget_ms))
    return table


def bounds_json(budget: Budget, steps: Sequence[Step], check: Audit) -> dict[str, Any]:
    """The bounds projection as JSON-ready data (ms as ``[best, worst]`` pairs)."""
    per_lever = deltas(steps)
    return {
        "budget": budget_json(budget),
        "audit": audit_json(check),
        "baseline": {
            "terms_ms": {k: _pair(v) for k, v in steps[0].contributions_ms.items()},
            "ttfat_ms": _pair(steps[0].total_ms()),
        },
        "levers": [
            {
                "lever": step.label,
                "cite": step.cite,
                "delta_ms": {k: _pair(v) for k, v in d.items()},
                "ttfat_delta_ms": _pair(step.total_ms() - before.total_ms()),
                "notes": list(step.notes),
            }
            for before, step, d in zip(steps, steps[1:], per_lever, strict=False)
        ],
        "what_if": {
            "terms_ms": {k: _pair(v) for k, v in steps[-1].contributions_ms.items()},
            "ttfat_ms": _pair(steps[-1].total_ms()),
        },
    }


def budget_json(budget: Budget) -> dict[str, Any]:
    """A budget's published content."""
    return {
        "name": budget.name,
        "title": budget.title,
        "form": budget.form,
        "source": budget.source,
        "terms": [
            {"name": t.name, "ms": [t.low_ms, t.high_ms], "label": t.label, "cite": t.cite}
            for t in budget.terms
        ],
        "stated_total_ms": None if budget.stated_total_ms is None else list(budget.stated_total_ms),
        "stated_total_cite": budget.stated_total_cite,
        "stated_precision_ms": budget.stated_precision_ms,
        "budget_ms": budget.budget_ms,
        "notes": list(budget.notes),
    }


def audit_json(check: Audit) -> dict[str, Any]:
    """An audit's numbers and verdict."""
    return {
        "name": check.budget.name,
        "source": check.budget.source,
        "sum_ms": list(check.sum_ms),
        "stated_total_ms": (
            None if check.budget.stated_total_ms is None else list(check.budget.stated_total_ms)
        ),
        "difference_ms": None if check.difference_ms is None else list(check.difference_ms),
        "tolerance_ms": check.tolerance_ms,
        "adds_up": check.adds_up,
        "budget_ms": check.budget.budget_ms,
        "over_budget_ms": None if check.over_budget_ms is None else list(check.over_budget_ms),
        "verdict": check.verdict(),
    }


def audit_table(checks: Sequence[Audit]) -> Table:
    """One row per breakdown: sum of terms, stated total, difference, verdict."""
    table = Table(title="Do the terms add up?")
    for column in ("breakdown", "sum of terms", "stated total", "sum − stated", "verdict"):
        table.add_column(column, overflow="fold")
    for c in checks:
        stated = c.budget.stated_total_ms
        table.add_row(
            c.budget.name,
            fmt_ms(np.array(c.sum_ms)),
            "—" if stated is None else fmt_ms(np.array(stated)),
            "—" if c.difference_ms is None else fmt_ms(np.array(c.difference_ms), signed=True),
            c.verdict(),
            style=None if c.adds_up is not False else "bold red",
        )
    return table


def simulation_table(title: str, summaries: Sequence[Summary]) -> Table:
    """Mean contribution per term, TTFAT percentiles and the tail's term, baseline → what-if."""
    table = Table(title=title)
    table.add_column("term")
    table.add_column("baseline", justify="right")
    for s in summaries[1:]:
        table.add_column(f"Δ {s.label}", justify="right", overflow="fold", max_width=26)
    if len(summaries) > 1:
        table.add_column("what-if", justify="right")

    def row(name: str, values: list[float], style: str | None = None) -> None:
        cells = [_num(values[0])]
        cells += [fmt_ms(np.array([b - a]), signed=True) for a, b in itertools.pairwise(values)]
        cells += [_num(values[-1])] if len(values) > 1 else []
        table.add_row(name, *cells, style=style)

    for term in summaries[0].mean_ms:
        row(f"{term} (mean)", [s.mean_ms[term] for s in summaries])
    table.add_section()
    row("TTFAT mean", [s.mean_total_ms for s in summaries], "bold")
    for p in PERCENTILES:
        row(f"TTFAT p{p:g}", [s.percentiles_ms[p] for s in summaries], "bold")
    tails = [s.tail_term or "—" for s in summaries]
    table.add_row("p99 tail driven by", *(tails if len(tails) == 1 else [*tails, tails[-1]]))
    return table


def simulation_json(summaries: Sequence[Summary], meta: dict[str, Any]) -> dict[str, Any]:
    """Simulation steps as JSON-ready data."""

    def one(s: Summary) -> dict[str, Any]:
        return {
            "label": s.label,
            "mean_ms": {k: round(v, 3) for k, v in s.mean_ms.items()},
            "ttfat_mean_ms": round(s.mean_total_ms, 3),
            "ttfat_percentiles_ms": {f"p{p:g}": round(v, 3) for p, v in s.percentiles_ms.items()},
            "tail_term": s.tail_term,
            "tail_excess_ms": {k: round(v, 3) for k, v in s.tail_excess_ms.items()},
            "notes": list(s.notes),
            "cite": s.cite,
        }

    return {**meta, "baseline": one(summaries[0]), "steps": [one(s) for s in summaries[1:]]}


def presets_table(budgets: Sequence[Budget]) -> Table:
    """The shipped presets with their sum and source."""
    table = Table(title="Presets (earshot budget --preset NAME)")
    for column in ("name", "form", "sum of terms ms", "stated total", "source"):
        table.add_column(column, overflow="fold")
    for b in budgets:
        stated = "—" if b.stated_total_ms is None else fmt_ms(np.array(b.stated_total_ms))
        if b.budget_ms is not None:
            stated += f" (budget {_num(b.budget_ms)})"
        table.add_row(b.name, b.form, fmt_ms(np.array(b.sum_ms())), stated, b.source)
    return table


def terms_table() -> Table:
    """The term vocabulary levers act on."""
    table = Table(title="Terms")
    table.add_column("term")
    table.add_column("meaning", overflow="fold")
    for name, meaning in TERMS.items():
        table.add_row(name, meaning)
    return table


def levers_table() -> Table:
    """Every lever: usage, what it does, source."""
    table = Table(
        title="Levers (earshot budget --preset NAME --lever SPEC ...)",
        caption="Levers that choose their target term also take term=NAME.",
    )
    for column in ("usage", "what it changes", "source"):
        table.add_column(column, overflow="fold")
    for lever in LEVERS.values():
        table.add_row(lever.usage, lever.summary, lever.cite)
    return table


def tokens_table(
    results: Sequence[ConversationTokens], prefill_ms_per_token: float | None
) -> Table:
    """Per turn: input (cached) and output tokens for each representation, cost if priced."""
    table = Table(title="Tokens per turn (input context grows with the history)")
    table.add_column("turn", justify="right")
    for r in results:
        table.add_column(f"{r.representation} in (cached)", justify="right")
        table.add_column(f"{r.representation} out", justify="right")
        if prefill_ms_per_token is not None:
            table.add_column(f"{r.representation} prefill ms", justify="right")
        if r.cost_usd is not None:
            table.add_column(f"{r.representation} USD", justify="right")
    for i in range(len(results[0].turns)):
        cells = [str(i + 1)]
        for r in results:
            t = r.turns[i]
            cells += [
                f"{t.input_total:,.0f} ({t.cached_audio + t.cached_text:,.0f})",
                f"{t.output:,.0f}",
            ]
            if prefill_ms_per_token is not None:
                cells.append(_num(t.uncached * prefill_ms_per_token))
            if t.cost_usd is not None:
                cells.append(f"{t.cost_usd:.4f}")
        table.add_row(*cells)
    table.add_section()
    cells = ["total"]
    for r in results:
        cells += [f"{r.input_total:,.0f}", f"{r.output_total:,.0f}"]
        if prefill_ms_per_token is not None:
            cells.append("")
        if r.cost_usd is not None:
            cells.append(f"{r.cost_usd:.4f}")
    table.add_row(*cells, style="bold")
    return table
