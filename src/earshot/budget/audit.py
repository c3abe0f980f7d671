"""Audit a published breakdown: do its terms add up to the total it states?

Published tables are taken as printed (REFERENCE-style: "stated totals reproduced as
published"); the audit never corrects a total, it reports by how much the terms miss it. A range
table is checked end by end (best-case terms against the stated lower total, worst-case terms
against the stated upper total). A total printed coarsely (e.g. "1.4–2.9 s") carries a stated
precision; a difference within it is reported as rounding, not as a mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass

from earshot.budget.model import Budget


@dataclass(frozen=True, slots=True)
class Audit:
    """The arithmetic check of one breakdown.

    Attributes:
        sum_ms: (best, worst) sum of the terms.
        difference_ms: (best, worst) sum minus stated total; ``None`` without a stated total.
        adds_up: every end within ``tolerance_ms``; ``None`` without a stated total.
        over_budget_ms: (best, worst) sum minus the target budget, if the source sets one.
    """

    budget: Budget
    sum_ms: tuple[float, float]
    tolerance_ms: float
    difference_ms: tuple[float, float] | None
    adds_up: bool | None
    over_budget_ms: tuple[float, float] | None

    def verdict(self) -> str:
        """One line a reader can act on."""
        parts: list[str] = []
        stated = self.budget.stated_total_ms
        if stated is None or self.difference_ms is None:
            parts.append(f"terms sum to {_span(self.sum_ms)} ms; no stated total to check")
        elif self.adds_up and not any(self.difference_ms):
            parts.append(f"terms add up to the stated {_span(stated)} ms")
        elif self.adds_up:
            parts.append(
                f"terms sum to {_span(self.sum_ms)} ms, the stated {_span(stated)} ms within "
                f"its ±{self.tolerance_ms:g} ms precision"
            )
        else:
            misses = [
                f"{end} {self.sum_ms[i]:g} vs {stated[i]:g} ({self.difference_ms[i]:+g})"
                for i, end in enumerate(("best", "worst"))
                if abs(self.difference_ms[i]) > self.tolerance_ms
            ]
            if stated[0] == stated[1] and self.sum_ms[0] == self.sum_ms[1]:
                misses = [misses[0].removeprefix("best ")]
            parts.append("MISMATCH: terms do not add up to the stated total: " + "; ".join(misses))
        if self.over_budget_ms is not None and self.budget.budget_ms is not None:
            over = self.over_budget_ms
            if over[1] > 0:
                which = "even the best case" if over[0] > 0 else "the worst case"
                parts.append(
                    f"OVER BUDGET: {which} exceeds the {self.budget.budget_ms:g} ms budget by "
                    f"{over[0] if over[0] > 0 else over[1]:g} ms"
                )
            else:
                parts.append(f"fits the {self.budget.budget_ms:g} ms budget")
        return "; ".join(parts)


def _span(pair: tuple[float, float]) -> str:
    return f"{pair[0]:g}" if pair[0] == pair[1] else f"{pair[0]:g}–{pair[1]:g}"


def audit(budget: Budget, tolerance_ms: float | None = None) -> Audit:
    """Check a breakdown's arithmetic.

    Args:
        budget: the breakdown as published.
        tolerance_ms: allowed |sum − stated| in ms; default: the budget's stated precision
            (0 for totals printed to the millisecond).

    Raises:
        ValueError: a negative tolerance.
    """
    tolerance = budget.stated_precision_ms if tolerance_ms is None else tolerance_ms
    if tolerance < 0:
        raise ValueError(f"tolerance {tolerance} ms: give 0 or more")
    total = budget.sum_ms()
    difference: tuple[float, float] | None = None
    adds_up: bool | None = None
    if budget.stated_total_ms is not None:
        difference = (
            total[0] - budget.stated_total_ms[0],
            total[1] - budget.stated_total_ms[1],
        )
        adds_up = all(abs(d) <= tolerance for d in difference)
    over = None
    if budget.budget_ms is not None:
        over = (total[0] - budget.budget_ms, total[1] - budget.budget_ms)
    return Audit(budget, total, tolerance, difference, adds_up, over)
