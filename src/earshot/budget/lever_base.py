"""The parts every budget lever is built from: a parsed lever, the evaluation modes, the
path state a lever changes, and the checks and moves the rules share (`earshot.budget.levers`
holds the rules themselves and the table of levers)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any, Protocol

import numpy as np
import yaml

from earshot.budget.dists import speculative_speedup
from earshot.budget.model import FloatArray, Overlap


class LeverError(ValueError):
    """A lever is unknown, malformed, or does not fit the budget; the message says the fix."""


@dataclass(frozen=True, slots=True)
class LeverSpec:
    """A parsed ``--lever`` argument."""

    name: str
    value: str | None
    params: tuple[tuple[str, str], ...]
    text: str

    def get(self, key: str) -> str | None:
        return dict(self.params).get(key)


class Mode(Protocol):
    """How a lever's rule is evaluated: on ``[best, worst]`` bounds or on Monte Carlo draws."""

    def reference(self, x: FloatArray) -> FloatArray:
        """The baseline value a 'set to' lever moves away from (the value, or the median)."""
        ...

    def bound(self, low: float, high: float, *, saving: bool = False) -> FloatArray:
        """A published range as this mode reads it (see the module docstring)."""
        ...

    def restart(self, probability: float) -> FloatArray:
        """Weight of 'the early start was wasted' for an `Overlap`."""
        ...

    def hedge(self, x: FloatArray, num_requests: int, delay_ms: float = 0.0) -> FloatArray:
        """The first token of ``num_requests`` requests, each distributed like ``x``, request k
        sent ``k × delay_ms`` after the first."""
        ...

    def speculative(
        self, x: FloatArray, alpha: float, gamma: int, draft_cost_ratio: float, tokens: int | None
    ) -> FloatArray:
        """A decode-bound term under speculative decoding."""
        ...


class BoundsMode:
    """Deterministic evaluation on ``[best case, worst case]`` arrays of shape ``(2,)``."""

    def reference(self, x: FloatArray) -> FloatArray:
        return x

    def bound(self, low: float, high: float, *, saving: bool = False) -> FloatArray:
        return np.array([high, low] if saving else [low, high], dtype=np.float64)

    def restart(self, probability: float) -> FloatArray:
        # Best case: the partial held; worst case: it did not (if it can fail at all).
        worst = 1.0 if probability > 0 else 0.0
        return np.array([1.0 if probability >= 1 else 0.0, worst])

    def hedge(self, x: FloatArray, num_requests: int, delay_ms: float = 0.0) -> FloatArray:
        return x  # the minimum of N equal values (later ones start late); acts on a distribution

    def speculative(
        self, x: FloatArray, alpha: float, gamma: int, draft_cost_ratio: float, tokens: int | None
    ) -> FloatArray:
        return x / speculative_speedup(alpha, gamma, draft_cost_ratio)


@dataclass(slots=True)
class PathState:
    """Term durations (ms, all one shape) and the overlap rules in force."""

    durations: dict[str, FloatArray]
    overlaps: list[Overlap] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LeverDef:
    """One lever: its usage line, what it does, and the source of its numbers."""

    name: str
    usage: str
    summary: str
    cite: str
    params: tuple[str, ...]
    apply: Callable[[LeverSpec, PathState, Mode], list[str]]

    @property
    def needs_value(self) -> bool:
        """``NAME=VALUE`` levers need their value; ``NAME[,KEY=VALUE]`` ones do not."""
        return self.usage.startswith(f"{self.name}=")


@cache
def lever_data() -> dict[str, Any]:
    """The published figures in ``earshot/data/budget/levers.yaml``."""
    text = (files("earshot") / "data" / "budget" / "levers.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def range_of(value: Any) -> tuple[float, float]:
    """A published figure as ``(low, high)`` ms: ``[a, b]`` → ``(a, b)``, ``a`` → ``(a, a)``."""
    if isinstance(value, list):
        return float(value[0]), float(value[1])
    return float(value), float(value)


def as_number(spec: LeverSpec, text: str | None, what: str, *, minimum: float = 0.0) -> float:
    """A lever parameter as a number ≥ ``minimum``.

    Raises:
        LeverError: missing, not a number, or below ``minimum`` (names the parameter).
    """
    try:
        number = float(text) if text is not None else float("nan")
    except ValueError:
        number = float("nan")
    if not number >= minimum:
        raise LeverError(f"{spec.text!r}: {what} must be a number ≥ {minimum:g}, got {text!r}")
    return number


def as_integer(spec: LeverSpec, text: str | None, what: str, *, minimum: int) -> int:
    """A lever parameter as a whole number ≥ ``minimum``.

    Raises:
        LeverError: as `as_number`, or not whole.
    """
    number = as_number(spec, text, what, minimum=minimum)
    if number != int(number):
        raise LeverError(f"{spec.text!r}: {what} must be a whole number, got {text!r}")
    return int(number)


def targets(spec: LeverSpec, state: PathState, candidates: Sequence[str]) -> str:
    """The first candidate term present, or the one named by ``term=``."""
    chosen = spec.get("term")
    if chosen is not None:
        if chosen not in state.durations:
            raise LeverError(f"{spec.text!r}: term={chosen} is not in this budget ({have(state)})")
        return chosen
    for name in candidates:
        if name in state.durations:
            return name
    raise LeverError(
        f"{spec.text!r} acts on {' or '.join(candidates)}, and this budget has none of them "
        f"({have(state)}); name a term with term=NAME"
    )


def have(state: PathState) -> str:
    """The budget's terms, for an error message."""
    return "terms: " + ", ".join(state.durations)


def shift_to(state: PathState, term: str, target: FloatArray, mode: Mode) -> None:
    """Set an additive term: shift it by ``target`` minus its reference (never below 0 ms)."""
    x = state.durations[term]
    state.durations[term] = np.maximum(0.0, x + (target - mode.reference(x)))


def scale_to(state: PathState, term: str, target: FloatArray, mode: Mode) -> None:
    """Set a service time: scale it by ``target`` over its reference (its tail's shape kept)."""
    x = state.durations[term]
    ref = mode.reference(x)
    safe = np.where(ref > 0, ref, 1.0)
    state.durations[term] = np.where(ref > 0, x * (target / safe), target)
