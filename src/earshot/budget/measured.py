"""Measured TTFAT terms from ``earshot converse`` runs (``turns.jsonl``) as model terms.

The runtime writes one JSON object per user turn (contract: `earshot.metrics.turn`), with
``terms_ms`` holding consecutive differences of its critical-path marks. They map onto the
pipeline form of the budget model (§39.2.2 Table 39.2.2, plus the stages the runtime names on
its own) one to one, so the lever rules apply unchanged:

=====================  ======================  ==============================================
``turns.jsonl`` term   model term              why
=====================  ======================  ==============================================
network_in             net_in                  last user audio to the engine (transport)
endpointing            vad                     end_of_turn − speech_end: the end-of-turn wait
stt_finalization       asr_finalization        stt_final − end_of_turn
llm_ttft               llm_ttft                llm_first_token − llm_request
sentence_aggregation   sentence_aggregation    first token to the first chunk sent to TTS
tts_first_audio        tts_ttfb                TTS time to first audio
jitter_buffer          jitter_buffer           playout_start − playout_queued
network_out            net_out                 first agent audio to the listener (transport)
engine_overhead        engine_overhead         the engine's own time between stages
=====================  ======================  ==============================================

There is no codec term: input framing is already inside the measured ``speech_end`` and
``network_in``; the ``codec`` lever therefore acts on ``net_in``. Turns whose ``terms_ms`` is
null (incomplete: barge-in before playout, errors) are skipped and counted.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earshot.budget.model import FloatArray

MEASURED_TO_MODEL: dict[str, str] = {
    "network_in": "net_in",
    "uplink_jitter_buffer": "jitter_buffer",
    "endpointing": "vad",
    "stt_finalization": "asr_finalization",
    "llm_ttft": "llm_ttft",
    "sentence_aggregation": "sentence_aggregation",
    "tts_first_audio": "tts_ttfb",
    "jitter_buffer": "jitter_buffer",
    "network_out": "net_out",
    "client_playout": "net_out",
    "engine_overhead": "engine_overhead",
}
"""``turns.jsonl`` term name → budget model term name, in critical-path order. Several measured
terms may fold into one model term (the server's uplink jitter buffer into the model's jitter
buffer, the client's playout delay into the downlink); their values are added."""

OPTIONAL_TERMS = frozenset({"uplink_jitter_buffer", "client_playout"})
"""Terms that files written before client transports existed lack; read as 0 when absent."""

_MODEL_TERMS = tuple(
    dict.fromkeys(v for k, v in MEASURED_TO_MODEL.items() if k not in OPTIONAL_TERMS)
)
"""The model terms measured turns fill, in critical-path order."""

SUM_TOLERANCE_MS = 0.01
"""Terms are rounded to 0.001 ms when written: nine of them may be off by 0.0045 ms in sum."""


class TurnsFileError(ValueError):
    """A ``turns.jsonl`` cannot be used; the message names the file, the line and the fix."""


@dataclass(frozen=True, slots=True)
class MeasuredTurns:
    """Complete turns from one or more runs.

    Attributes:
        terms: model term names, the columns of ``rows_ms``.
        rows_ms: float64, shape ``(num_turns, len(terms))``, ms per term per complete turn.
        ttfat_ms: float64, shape ``(num_turns,)``, the ``ttfat_ms`` each turn states.
        sources: the files read.
        skipped: turns without terms (incomplete), not in ``rows_ms``.
    """

    terms: tuple[str, ...]
    rows_ms: FloatArray
    ttfat_ms: FloatArray
    sources: tuple[str, ...]
    skipped: int

    @property
    def num_turns(self) -> int:
        return int(self.rows_ms.shape[0])

    def sum_mismatches(self) -> list[int]:
        """Indices of turns whose terms do not add up to their stated ``ttfat_ms``."""
        error = np.abs(self.rows_ms.sum(axis=1) - self.ttfat_ms)
        return [int(i) for i in np.flatnonzero(error > SUM_TOLERANCE_MS)]

    def bootstrap(self, rng: np.random.Generator, size: int) -> dict[str, FloatArray]:
        """``size`` whole turns drawn with replacement (keeps the terms' correlation)."""
        picks = self.rows_ms[rng.integers(0, self.num_turns, size)]
        return {t: picks[:, i].copy() for i, t in enumerate(self.terms)}


def _resolve(path: Path) -> Path:
    if path.is_dir():
        path = path / "turns.jsonl"
    if not path.is_file():
        raise TurnsFileError(
            f"{path}: no such file; give a turns.jsonl or the run directory holding it"
        )
    return path


def load_turns(paths: list[str | Path]) -> MeasuredTurns:
    """Read ``turns.jsonl`` files (or run directories containing one) into `MeasuredTurns`.

    Raises:
        TurnsFileError: a file is missing, a line is not JSON, a term is missing or not a
            number, or no turn is complete.
    """
    rows: list[list[float]] = []
    stated: list[float] = []
    sources: list[str] = []
    skipped = 0
    for given in paths:
        path = _resolve(Path(given))
        sources.append(str(path))
        for line_no, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TurnsFileError(f"{where}: not JSON ({exc}); is this a turns.jsonl?") from exc
            terms = record.get("terms_ms") if isinstance(record, dict) else None
            if terms is None or record.get("ttfat_ms") is None:
                skipped += 1
                continue
            row = dict.fromkeys(_MODEL_TERMS, 0.0)
            for name, model_term in MEASURED_TO_MODEL.items():
                if name in OPTIONAL_TERMS and isinstance(terms, dict) and name not in terms:
                    continue
                row[model_term] += _ms(terms, name, where)
            rows.append(list(row.values()))
            stated.append(_ms(record, "ttfat_ms", where))
    if not rows:
        raise TurnsFileError(
            f"{', '.join(sources)}: no complete turn ({skipped} without terms_ms); "
            "run `earshot converse` long enough for the agent to answer"
        )
    return MeasuredTurns(
        terms=_MODEL_TERMS,
        rows_ms=np.array(rows, dtype=np.float64),
        ttfat_ms=np.array(stated, dtype=np.float64),
        sources=tuple(sources),
        skipped=skipped,
    )


def _ms(mapping: dict[str, object], key: str, where: str) -> float:
    value = mapping.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TurnsFileError(
            f"{where}: {key} is {value!r}, expected a number of ms (the contract is "
            "earshot.metrics.turn.TurnRecord.to_json)"
        )
    return float(value)
