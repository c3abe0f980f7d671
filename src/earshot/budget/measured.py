"""Measured TTFAT terms from ``earshot converse`` runs (``turns.jsonl``) as a `Budget`.

The runtime writes one JSON object per user turn (contract: `earshot.metrics.turn`), with
``terms_ms`` holding consecutive differences of its critical-path marks. Those names are the
budget's own vocabulary (`earshot.budget.model.TERMS` starts with `earshot.metrics.turn.TERMS`),
so a run is read as a `Budget` of form ``measured`` — the same kind of object as a published
preset — whose terms carry the observed range and whose ``measured`` field holds every
complete turn, and the lever rules apply to it unchanged.

There is no codec term: input framing is already inside the measured ``speech_end`` and
``network_in``; the ``codec`` lever therefore acts on ``network_in``. Turns whose ``terms_ms``
is null (incomplete: barge-in before playout, errors) are skipped and counted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from earshot.budget.model import TERMS, Budget, Measurements, Term
from earshot.metrics.turn import TERMS as RUNTIME_TERMS

MAX_TERM_MS = 3_600_000.0
"""The largest value a measured term or TTFAT may hold (one hour, in ms); anything larger is a
corrupt file, not a turn (and would overflow the statistics)."""


OPTIONAL_TERMS = frozenset({"uplink_jitter_buffer", "client_playout"})
"""Runtime terms that files written before client transports existed lack; read as 0."""


class TurnsFileError(ValueError):
    """A ``turns.jsonl`` cannot be used; the message names the file, the line and the fix."""


def _resolve(path: Path) -> Path:
    if path.is_dir():
        path = path / "turns.jsonl"
    if not path.is_file():
        raise TurnsFileError(
            f"{path}: no such file; give a turns.jsonl or the run directory holding it"
        )
    return path


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise TurnsFileError(
            f"{path}: not UTF-8 text ({exc.reason}); is this a turns.jsonl?"
        ) from None
    except OSError as exc:
        raise TurnsFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def load_turns(paths: list[str | Path]) -> Budget:
    """Read ``turns.jsonl`` files (or run directories containing one) as a measured `Budget`.

    Returns:
        A `Budget` of form ``measured`` over the runtime's terms (in critical-path order),
        each term's ``low_ms``/``high_ms`` the smallest and largest value measured, and
        ``measured`` holding every complete turn.

    Raises:
        TurnsFileError: a file is missing or unreadable, a line is not a JSON object,
            ``terms_ms`` is not an object, a term is missing, not a number or out of range
            (negative or over `MAX_TERM_MS`), or no turn is complete.
    """
    rows: list[list[float]] = []
    stated: list[float] = []
    sources: list[str] = []
    skipped = 0
    for given in paths:
        path = _resolve(Path(given))
        sources.append(str(path))
        for line_no, line in enumerate(_read_lines(path), start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TurnsFileError(f"{where}: not JSON ({exc}); is this a turns.jsonl?") from None
            if not isinstance(record, dict):
                raise TurnsFileError(
                    f"{where}: expected a JSON object per line, got {type(record).__name__}; "
                    "is this a turns.jsonl?"
                )
            terms = record.get("terms_ms")
            if terms is None or record.get("ttfat_ms") is None:
                skipped += 1
                continue
            if not isinstance(terms, dict):
                raise TurnsFileError(
                    f"{where}: terms_ms is {type(terms).__name__} {_short(terms)}, expected an "
                    "object of term → ms (the contract is earshot.metrics.turn.TurnRecord.to_json)"
                )
            rows.append(
                [
                    0.0 if name in OPTIONAL_TERMS and name not in terms else _ms(terms, name, where)
                    for name in RUNTIME_TERMS
                ]
            )
            if "tool" in terms:
                # The tool term (present only where a tool ran) is budgeted with the LLM's.
                rows[-1][RUNTIME_TERMS.index("llm_ttft")] += _ms(terms, "tool", where)
            stated.append(_ms(record, "ttfat_ms", where))
    if not rows:
        raise TurnsFileError(
            f"{', '.join(sources)}: no complete turn ({skipped} without terms_ms); "
            "run `earshot converse` long enough for the agent to answer"
        )
    rows_ms = np.array(rows, dtype=np.float64)
    return Budget(
        name="measured",
        title=f"measured turns ({len(rows)} complete)",
        form="measured",
        source=", ".join(sources),
        terms=tuple(
            Term(
                name,
                float(rows_ms[:, i].min()),
                float(rows_ms[:, i].max()),
                label=TERMS[name],
                cite="measured (min–max over the turns)",
            )
            for i, name in enumerate(RUNTIME_TERMS)
        ),
        measured=Measurements(
            rows_ms=rows_ms,
            ttfat_ms=np.array(stated, dtype=np.float64),
            sources=tuple(sources),
            skipped=skipped,
        ),
    )


def _short(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _ms(mapping: Mapping[str, object], key: str, where: str) -> float:
    value = mapping.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TurnsFileError(
            f"{where}: {key} is {value!r}, expected a number of ms (the contract is "
            "earshot.metrics.turn.TurnRecord.to_json)"
        )
    if not 0.0 <= value <= MAX_TERM_MS:
        raise TurnsFileError(
            f"{where}: {key} is {value!r} ms, outside 0–{MAX_TERM_MS:.0f} ms; the file is "
            "corrupt or not a turns.jsonl"
        )
    return float(value)
