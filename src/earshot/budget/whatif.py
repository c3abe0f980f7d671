"""What-if projection: apply levers one after another and record every step's contributions.

Step 0 is the baseline; step k is the state after the first k levers. A lever's effect on a term
is the difference between consecutive steps' critical-path contributions, so the per-lever deltas
add up to the change in TTFAT exactly (in bounds mode per end, in samples mode per draw).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from earshot.budget.levers import (
    LEVERS,
    BoundsMode,
    LeverSpec,
    Mode,
    PathState,
    apply_lever,
)
from earshot.budget.model import Budget, FloatArray, critical_path


@dataclass(frozen=True, slots=True)
class Step:
    """Critical-path contributions after one more lever (or the baseline).

    Attributes:
        label: ``"baseline"`` or the lever as typed.
        contributions_ms: term → ms, arrays of one shape; they add up to TTFAT.
        notes: the lever's trade-offs, assumptions and sources.
        cite: the lever's source.
    """

    label: str
    contributions_ms: dict[str, FloatArray]
    notes: tuple[str, ...] = ()
    cite: str = ""

    def total_ms(self) -> FloatArray:
        """TTFAT per element, ms."""
        total: FloatArray = np.sum(np.stack(list(self.contributions_ms.values())), axis=0)
        return total


def project(
    durations_ms: Mapping[str, FloatArray], levers: Sequence[LeverSpec], mode: Mode
) -> list[Step]:
    """Baseline plus one `Step` per lever, applied cumulatively in the given order.

    Args:
        durations_ms: term → durations in ms (one shape for all terms), in budget order.
        levers: parsed levers.
        mode: `BoundsMode` or a samples mode.

    Raises:
        LeverError: a lever does not fit these terms.
    """
    state = PathState({k: np.asarray(v, dtype=np.float64) for k, v in durations_ms.items()})
    steps = [Step("baseline", critical_path(state.durations))]
    for spec in levers:
        notes = apply_lever(spec, state, mode)
        contributions = critical_path(state.durations, state.overlaps)
        steps.append(Step(spec.text, contributions, tuple(notes), LEVERS[spec.name].cite))
    return steps


def project_bounds(budget: Budget, levers: Sequence[LeverSpec]) -> list[Step]:
    """`project` on the budget's published ``[best, worst]`` values (arrays of shape ``(2,)``)."""
    return project(budget.bounds(), levers, BoundsMode())


def deltas(steps: Sequence[Step]) -> list[dict[str, FloatArray]]:
    """Per lever, term → change in contribution (ms) from the step before; one per lever."""
    return [
        {k: after.contributions_ms[k] - before.contributions_ms[k] for k in after.contributions_ms}
        for before, after in itertools.pairwise(steps)
    ]
