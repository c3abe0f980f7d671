"""The TTFAT budget model: a breakdown of named terms whose critical-path contributions add up.

TTFAT (end of the user's speech to the first audible agent sample) is modelled as a sum of terms
in one of two published forms:

* native speech-to-speech: ``TTFAT = t_vad + t_net,in + t_prompt + t_first_token +
  t_codec_decode + t_net,out + t_jitter_buf`` ("Audio Token Budget and Latency Engineering"
  §39.4.2) — `NATIVE_TERMS`;
* cascaded pipeline: VAD, codec, network, ASR finalization, LLM time to first token, TTS time to
  first byte, jitter buffer ("Streaming Audio Architectures" §39.2.2 Table 39.2.2) —
  `PIPELINE_TERMS`.

A `Budget` is data: every term has a published value (a point, or a published range ``lo–hi``),
the source's wording and a citation. Budgets ship as YAML presets under
``earshot/data/budget/presets/`` and users can write their own in the same schema (see
`budget_from_mapping`).

Values are evaluated as arrays so the same lever code serves two modes: *bounds* (shape ``(2,)``,
``[best case, worst case]`` — a point value has both ends equal) and *samples* (shape ``(n,)``,
Monte Carlo). Overlap (preemptive generation) hides part of one chain of terms behind another;
`critical_path` turns term durations into critical-path contributions that still add up to TTFAT
sample by sample.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import yaml

from earshot.metrics.turn import TERMS as RUNTIME_TERMS

FloatArray = npt.NDArray[np.float64]

MEASURED_TERM_MEANINGS: dict[str, str] = {
    "network_in": "last user audio to the engine (one way; 0 for files)",
    "uplink_jitter_buffer": "the server's uplink jitter buffer before the frames reach the VAD",
    "endpointing": "end-of-turn detection after the last voiced frame (VAD silence / end-pointer)",
    "stt_finalization": "final transcript after end-of-turn",
    "llm_ttft": "LLM time to first token (prefill included)",
    "sentence_aggregation": "first LLM token to the first chunk handed to TTS",
    "tts_first_audio": "TTS time to first audio (TTFB)",
    "jitter_buffer": "playout buffering before the first sample leaves the server",
    "network_out": "first agent audio to the client (one way; 0 for files)",
    "client_playout": "the client's playout delay until the first sample is heard",
    "engine_overhead": "the engine's own time between stages",
}
"""What each runtime term means in the budget (a term the runtime adds without a line here is
still in `TERMS`, as "measured by the runtime")."""

PUBLISHED_TERMS: dict[str, str] = {
    "codec": "audio encoding and frame accumulation on the way in",
    "network": "network round trip (sources that do not split in and out)",
    "transport": "transport latency as one figure (e.g. WebRTC)",
    "prompt": "context (prompt) processing, i.e. prefill",
    "first_token": "native model: time to the first audio token",
    "codec_decode": "decoding the first audio tokens into samples",
    "stt": "speech recognition not overlapped with speech (batch STT)",
    "llm": "LLM full response before TTS starts (batch)",
    "tts": "TTS full synthesis before playout (batch)",
    "margin": "unallocated network / buffer jitter margin",
}
"""Terms that published breakdowns use and the runtime does not measure on its own."""

TERMS: dict[str, str] = {
    **{name: MEASURED_TERM_MEANINGS.get(name, "measured by the runtime") for name in RUNTIME_TERMS},
    **PUBLISHED_TERMS,
}
"""The one term vocabulary: the runtime's TTFAT terms (`earshot.metrics.turn.TERMS`, the names
in every ``turns.jsonl``), in critical-path order, then the published-only ones. A measured run
and a preset name the same stage the same way; levers find their targets by these names;
unknown names in a user's breakdown pass through."""

NATIVE_TERMS: tuple[str, ...] = (
    "endpointing",
    "network_in",
    "prompt",
    "first_token",
    "codec_decode",
    "network_out",
    "jitter_buffer",
)
"""The seven terms of the native TTFAT equation, §39.4.2."""

PIPELINE_TERMS: tuple[str, ...] = (
    "endpointing",
    "codec",
    "network",
    "stt_finalization",
    "llm_ttft",
    "tts_first_audio",
    "jitter_buffer",
)
"""The pipeline stages of Table 39.2.2, §39.2.2."""

Form = Literal["native", "pipeline", "breakdown", "measured"]
FORMS: tuple[str, ...] = ("native", "pipeline", "breakdown", "measured")
"""``native`` and ``pipeline`` are the two published forms; ``breakdown`` is anything else;
``measured`` is a run's ``turns.jsonl`` (`earshot.budget.measured.load_turns`)."""

PRESET_DIR: Traversable = files("earshot") / "data" / "budget" / "presets"


class BudgetFileError(ValueError):
    """A budget or breakdown file cannot be used; the message names the problem and the fix."""


@dataclass(frozen=True, slots=True)
class Term:
    """One published term of a breakdown.

    Attributes:
        name: vocabulary name (see `TERMS`), or any identifier for a free-form breakdown.
        low_ms: best-case value in ms (equal to ``high_ms`` for a point value).
        high_ms: worst-case value in ms.
        label: the source's own wording.
        cite: where the number comes from.
        covers: for a term outside the runtime's vocabulary (e.g. ``margin``), the runtime
            terms it budgets for, so a run can be checked against the preset
            (`earshot.metrics.budget.term_budget`); empty otherwise.
    """

    name: str
    low_ms: float
    high_ms: float
    label: str = ""
    cite: str = ""
    covers: tuple[str, ...] = ()

    @property
    def is_range(self) -> bool:
        return self.low_ms != self.high_ms

    @property
    def bounds_ms(self) -> FloatArray:
        """``[low_ms, high_ms]`` as float64, shape ``(2,)``."""
        return np.array([self.low_ms, self.high_ms], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Measurements:
    """The per-turn values behind a measured `Budget` (one row per complete turn).

    Attributes:
        rows_ms: float64, shape ``(num_turns, num_terms)``, ms per term per turn, columns in the
            budget's term order.
        ttfat_ms: float64, shape ``(num_turns,)``, the ``ttfat_ms`` each turn states.
        sources: the files read.
        skipped: turns without terms (incomplete), not in ``rows_ms``.
    """

    rows_ms: FloatArray
    ttfat_ms: FloatArray
    sources: tuple[str, ...]
    skipped: int

    @property
    def num_turns(self) -> int:
        return int(self.rows_ms.shape[0])


SUM_TOLERANCE_MS = 0.01
"""Measured terms are rounded to 0.001 ms when written: nine of them may be 0.0045 ms off."""


@dataclass(frozen=True, slots=True)
class Budget:
    """A TTFAT breakdown: ordered terms, an optional stated total and an optional target.

    A published preset and a measured run are both a `Budget` over the same vocabulary
    (`TERMS`): a preset's terms carry published values (points or ranges); a measured one's
    carry the observed range (min–max over its turns) and, in ``measured``, every turn's values.

    Attributes:
        stated_total_ms: the total as the source prints it, ``(low, high)``; ``None`` if none.
        stated_precision_ms: how exact the stated total is (±; 50 for a total printed in tenths
            of a second).
        budget_ms: a target the terms should fit in (e.g. the 300 ms budget), if any.
        measured: the per-turn values of a measured budget; ``None`` for a published one.
    """

    name: str
    title: str
    form: Form
    source: str
    terms: tuple[Term, ...]
    stated_total_ms: tuple[float, float] | None = None
    stated_total_cite: str = ""
    stated_precision_ms: float = 0.0
    budget_ms: float | None = None
    budget_cite: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    measured: Measurements | None = None

    @property
    def term_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.terms)

    def _measurements(self) -> Measurements:
        if self.measured is None:
            raise ValueError(f"budget {self.name!r} is published, not measured: it has no turns")
        return self.measured

    def sum_mismatches(self) -> list[int]:
        """Indices of measured turns whose terms do not add up to their stated ``ttfat_ms``.

        Raises:
            ValueError: the budget is not measured.
        """
        m = self._measurements()
        error = np.abs(m.rows_ms.sum(axis=1) - m.ttfat_ms)
        return [int(i) for i in np.flatnonzero(error > SUM_TOLERANCE_MS)]

    def bootstrap(self, rng: np.random.Generator, size: int) -> dict[str, FloatArray]:
        """``size`` whole measured turns drawn with replacement (keeps the terms' correlation).

        Returns:
            term → float64 samples in ms, shape ``(size,)``.

        Raises:
            ValueError: the budget is not measured.
        """
        m = self._measurements()
        picks = m.rows_ms[rng.integers(0, m.num_turns, size)]
        return {t: picks[:, i].copy() for i, t in enumerate(self.term_names)}

    def bounds(self) -> dict[str, FloatArray]:
        """Term name → ``[best, worst]`` in ms, shape ``(2,)``, in budget order."""
        return {t.name: t.bounds_ms for t in self.terms}

    def sum_ms(self) -> tuple[float, float]:
        """Sum of the terms' best and worst cases, ms (terms are all on the critical path)."""
        return (
            math.fsum(t.low_ms for t in self.terms),
            math.fsum(t.high_ms for t in self.terms),
        )


@dataclass(frozen=True, slots=True)
class Overlap:
    """A chain of terms that runs in parallel with another instead of after it.

    ``hidden`` starts ``start_ms`` after the beginning of ``behind`` (capped at the end of
    ``behind``); only the part that outlasts ``behind`` stays on the critical path. With weight
    ``restart`` (a probability in bounds mode, a 0/1 mask in samples mode) the early start is
    wasted and ``hidden`` runs in full after ``behind`` (e.g. the final transcript differs from
    the partial the LLM started on).
    """

    hidden: tuple[str, ...]
    behind: tuple[str, ...]
    start_ms: float
    restart: FloatArray | float = 0.0


def critical_path(
    durations_ms: Mapping[str, FloatArray], overlaps: Sequence[Overlap] = ()
) -> dict[str, FloatArray]:
    """Each term's contribution to TTFAT once overlaps are taken off the critical path.

    Without overlaps a contribution is the term's duration. For an overlap, the part of the
    hidden chain that sticks out past ``behind`` is charged to the hidden terms from the last one
    backwards. Contributions add up to TTFAT element by element.

    Args:
        durations_ms: term → durations in ms, all the same shape.
        overlaps: overlap rules, applied in order.

    Returns:
        term → contribution in ms, same keys, order and shapes as ``durations_ms``.
    """
    out = {name: np.asarray(value, dtype=np.float64) for name, value in durations_ms.items()}
    for ov in overlaps:
        behind = sum((durations_ms[b] for b in ov.behind), np.float64(0.0))
        hidden_total = sum((durations_ms[h] for h in ov.hidden), np.float64(0.0))
        start = np.minimum(ov.start_ms, behind)
        remaining = np.maximum(0.0, start + hidden_total - behind)
        for h in reversed(ov.hidden):
            visible = np.minimum(durations_ms[h], remaining)
            remaining = remaining - visible
            out[h] = (1.0 - ov.restart) * visible + ov.restart * durations_ms[h]
    return out


def _as_bounds(value: Any, what: str, origin: str) -> tuple[float, float]:
    """``400`` → (400, 400); ``[200, 500]`` → (200, 500)."""
    if isinstance(value, bool):
        raise BudgetFileError(f"{origin}: {what} is {value!r}; give milliseconds, e.g. 400")
    if isinstance(value, int | float):
        low = high = float(value)
    elif isinstance(value, list | tuple) and len(value) == 2:
        try:
            low, high = float(value[0]), float(value[1])
        except (TypeError, ValueError) as exc:
            raise BudgetFileError(
                f"{origin}: {what} {value!r} is not a [low, high] pair of numbers"
            ) from exc
    else:
        raise BudgetFileError(
            f"{origin}: {what} is {value!r}; give ms as a number (400) or a range ([200, 500])"
        )
    if not (math.isfinite(low) and math.isfinite(high)) or low < 0 or high < low:
        raise BudgetFileError(
            f"{origin}: {what} {value!r} must be finite, ≥ 0, and [low, high] with low ≤ high"
        )
    return low, high


def _parse_terms(raw: Any, origin: str) -> tuple[Term, ...]:
    items: list[tuple[Any, Any, str, str, Any]] = []
    if isinstance(raw, Mapping):
        items = [(name, value, "", "", ()) for name, value in raw.items()]
    elif isinstance(raw, list):
        for i, entry in enumerate(raw):
            if not isinstance(entry, Mapping) or "name" not in entry or "ms" not in entry:
                raise BudgetFileError(
                    f"{origin}: terms[{i}] must be a mapping with 'name' and 'ms' "
                    f"(optional 'label', 'cite', 'covers'); got {entry!r}"
                )
            items.append(
                (
                    entry["name"],
                    entry["ms"],
                    str(entry.get("label", "")),
                    str(entry.get("cite", "")),
                    entry.get("covers", ()),
                )
            )
    else:
        raise BudgetFileError(
            f"{origin}: 'terms' must be a list of {{name, ms, label, cite}} or a mapping name → ms"
        )
    if not items:
        raise BudgetFileError(f"{origin}: 'terms' is empty; list at least one term")
    terms: list[Term] = []
    for name, value, label, cite, covers in items:
        if not isinstance(name, str) or not name.isidentifier():
            raise BudgetFileError(
                f"{origin}: term name {name!r} must be an identifier like llm_ttft"
            )
        low, high = _as_bounds(value, f"term {name!r}", origin)
        if not isinstance(covers, list | tuple) or not all(c in RUNTIME_TERMS for c in covers):
            raise BudgetFileError(
                f"{origin}: term {name!r}: 'covers' must list runtime terms "
                f"({', '.join(RUNTIME_TERMS)}); got {covers!r}"
            )
        terms.append(Term(name, low, high, label, cite, tuple(covers)))
    names = [t.name for t in terms]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BudgetFileError(f"{origin}: terms {duplicates} appear more than once; merge them")
    return tuple(terms)


def budget_from_mapping(data: Mapping[str, Any], origin: str = "<budget>") -> Budget:
    """Build a `Budget` from parsed YAML/JSON.

    Schema: ``terms`` (required; a list of ``{name, ms, label, cite}`` or a mapping name → ms,
    where ms is a number or ``[low, high]``), and optionally ``name``, ``title``, ``form``
    (one of `FORMS`, default ``breakdown``), ``source``, ``stated_total_ms`` (number or
    ``[low, high]``), ``stated_total_cite``, ``stated_precision_ms``, ``budget_ms``,
    ``budget_cite``, ``notes`` (list of strings).

    Raises:
        BudgetFileError: a field is missing or malformed.
    """
    if not isinstance(data, Mapping):
        raise BudgetFileError(f"{origin}: the file must hold a mapping with a 'terms' key")
    if "terms" not in data:
        raise BudgetFileError(f"{origin}: no 'terms' key; list the breakdown's terms under 'terms'")
    form = str(data.get("form", "breakdown"))
    if form not in FORMS:
        raise BudgetFileError(f"{origin}: form {form!r} is not one of {', '.join(FORMS)}")
    stated = data.get("stated_total_ms")
    stated_total = None if stated is None else _as_bounds(stated, "stated_total_ms", origin)
    precision = _as_bounds(data.get("stated_precision_ms", 0.0), "stated_precision_ms", origin)[0]
    budget_raw = data.get("budget_ms")
    budget_ms = None if budget_raw is None else _as_bounds(budget_raw, "budget_ms", origin)[0]
    notes = data.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise BudgetFileError(f"{origin}: 'notes' must be a list of strings")
    name = str(data.get("name", Path(origin).stem))
    return Budget(
        name=name,
        title=str(data.get("title", name)),
        form=form,  # type: ignore[arg-type]  # checked against FORMS above
        source=str(data.get("source", "")),
        terms=_parse_terms(data["terms"], origin),
        stated_total_ms=stated_total,
        stated_total_cite=str(data.get("stated_total_cite", "")),
        stated_precision_ms=precision,
        budget_ms=budget_ms,
        budget_cite=str(data.get("budget_cite", "")),
        notes=tuple(notes),
    )


def _parse_text(text: str, origin: str) -> Any:
    try:
        if origin.endswith(".json"):
            return json.loads(text)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise BudgetFileError(f"{origin}: not valid YAML/JSON ({exc})") from exc


def preset_names() -> list[str]:
    """Names of the shipped presets, sorted."""
    return sorted(
        p.name.removesuffix(".yaml") for p in PRESET_DIR.iterdir() if p.name.endswith(".yaml")
    )


def load_preset(name: str) -> Budget:
    """A shipped preset by name (see `preset_names`).

    Raises:
        BudgetFileError: no preset has that name.
    """
    resource = PRESET_DIR / f"{name}.yaml"
    if not resource.is_file():
        raise BudgetFileError(
            f"no preset named {name!r}; choose one of: {', '.join(preset_names())} "
            "(or give the path of a budget YAML/JSON file)"
        )
    return budget_from_mapping(_parse_text(resource.read_text("utf-8"), f"{name}.yaml"), name)


def load_budget(path_or_preset: str) -> Budget:
    """A budget from a YAML/JSON file path, or a shipped preset name.

    Raises:
        BudgetFileError: neither a readable file nor a preset, or the content is malformed.
    """
    path = Path(path_or_preset)
    if path.is_file():
        return budget_from_mapping(_parse_text(path.read_text("utf-8"), str(path)), str(path))
    if path.suffix in (".yaml", ".yml", ".json"):
        raise BudgetFileError(f"{path}: no such file; check the path")
    return load_preset(path_or_preset)
