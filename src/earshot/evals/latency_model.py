"""`earshot eval latency`: its options, stages, run record and the pure scorer (the model).

Imports nothing from the other latency modules; see `earshot.evals.latency` for what the
evaluation measures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earshot.evals.manifest import Recording
from earshot.metrics.turn import TERMS, TurnRecord

if TYPE_CHECKING:
    from earshot.evals.tracks import PlacedUtterance
    from earshot.stacks import Stack

DEFAULT_N = 20
"""Utterances per run when ``--n`` is not given."""

DEFAULT_GAP_MS = 1000.0
"""Silence after the utterance on its trial's track (ms); the session then keeps running until
every reply has played, so no reply is cut short or queued behind another."""

QUICK_N = 3
"""Utterances in a ``--quick`` run."""

QUICK_MAX_DURATION_S = 4.0
"""A ``--quick`` run draws only utterances at most this long (s)."""


# --------------------------------------------------------------------------- utterances


Utterance = Recording
"""An utterance of the latency eval is a manifest `Recording` (``duration_s`` always set)."""


# --------------------------------------------------------------------------- stages


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage delta: ``marks_ms[end_mark] − marks_ms[start_mark]`` in ms."""

    name: str
    start_mark: str
    end_mark: str
    description: str


STAGES: tuple[Stage, ...] = (
    Stage("endpointing", "speech_end", "end_of_turn", "end of speech → end-of-turn decision"),
    Stage("stt_finalization", "end_of_turn", "stt_final", "end-of-turn → final transcript"),
    Stage("llm_dispatch", "stt_final", "llm_request", "final transcript → LLM request (engine)"),
    Stage("llm_ttft", "llm_request", "llm_first_token", "LLM request → first token"),
    Stage(
        "sentence_aggregation",
        "llm_first_token",
        "first_sentence",
        "first token → first sentence to TTS",
    ),
    Stage("tts_first_audio", "first_sentence", "tts_first_audio", "first sentence → first audio"),
    Stage("playout", "tts_first_audio", "playout_start", "first audio → first played sample"),
)
"""Consecutive stage deltas from ``speech_end`` to ``playout_start``; they sum to TTFAT when
the network terms are 0 (file transport). Names match `TERMS` where the span is the same;
``llm_dispatch`` and ``playout`` include the two parts of ``engine_overhead`` (``playout`` also
holds the jitter buffer)."""


def stage_deltas(turn: TurnRecord) -> dict[str, float] | None:
    """Each `STAGES` delta of a complete turn in ms, or ``None`` if a mark is missing."""
    if not turn.complete:
        return None
    m = turn.marks_ms
    return {s.name: m[s.end_mark] - m[s.start_mark] for s in STAGES}


def summarize_stages(turns: Sequence[TurnRecord]) -> dict[str, Any]:
    """Percentiles of each stage, of TTFAT and of each TTFAT term, over the complete turns.

    Returns:
        ``{"stages": {name: stat}, "ttfat": stat, "terms": {term: stat}}`` where a stat is
        ``{"n", "p50_ms", "p95_ms", "mean_ms", "max_ms"}`` (values ``None`` with no turns).

    Raises:
        ValueError: a complete turn has a negative term (marks out of order: a clock bug).
    """
    from earshot.metrics.stats import stat_ms, validate_terms

    validate_terms(turns)
    complete = [t for t in turns if t.complete]
    per_stage: dict[str, list[float]] = {s.name: [] for s in STAGES}
    per_term: dict[str, list[float]] = {name: [] for name in TERMS}
    ttfats: list[float] = []
    for t in complete:
        deltas = stage_deltas(t)
        terms = t.terms_ms
        assert deltas is not None and terms is not None and t.ttfat_ms is not None
        for name, value in deltas.items():
            per_stage[name].append(value)
        for name, value in terms.items():
            per_term[name].append(value)
        ttfats.append(t.ttfat_ms)
    return {
        "stages": {name: stat_ms(values) for name, values in per_stage.items()},
        "ttfat": stat_ms(ttfats),
        "terms": {name: stat_ms(values) for name, values in per_term.items()},
    }


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True, slots=True)
class LatencyOptions:
    """Everything `earshot eval latency` takes (the CLI's flags).

    Attributes:
        n: utterances to run.
        seed: selection order and the scripted LLM's seed.
        data_dir: folder with ``manifest.jsonl``; ``None`` uses the bundled recordings.
        out_dir: where the outputs go.
        vad: VAD backend name (``earshot.vad.make_vad``).
        endpointer: end-of-turn policy name (``earshot.turns.factory.make_endpointer``).
        eot_silence_ms: the fixed end-pointer's silence threshold (ms).
        llm_profile: latency profile of the scripted LLM (``earshot.llm.PROFILES``).
        stack: model backends (`earshot.stacks.Stack`); None is the ``fast`` stack.
        real_time: pace on the system clock instead of the simulated clock.
        exact_timing: `SimulatedClock(charge_compute=False)`: model compute takes no virtual
            time, so every mark is a function of the audio alone (reproducible, and the same on
            Ray); by default compute is charged at its measured duration (realistic, varies with
            machine load).
        quick: `QUICK_N` utterances of at most `QUICK_MAX_DURATION_S` each (for tests).
        gap_ms: silence after the utterance on its trial's track (ms).
        language: manifest language of the utterances to use.
        quiet: no progress lines.
    """

    n: int = DEFAULT_N
    seed: int = 0
    data_dir: Path | None = None
    out_dir: Path = Path("out/eval-latency")
    vad: str = "silero"
    endpointer: str = "fixed"
    eot_silence_ms: float = 500.0
    llm_profile: str = "gpt-4o-mini"
    stack: Stack | None = None
    real_time: bool = False
    exact_timing: bool = False
    quick: bool = False
    gap_ms: float = DEFAULT_GAP_MS
    language: str = "en"
    quiet: bool = False


@dataclass(slots=True)
class LatencyRun:
    """A finished (or interrupted) latency eval.

    Attributes:
        options: what was asked for.
        utterances: the utterances measured (one trial each), in plan order.
        placed: where each sits on its own trial's caller track (16 kHz samples).
        turns: every turn the sessions produced, complete or not, numbered across the run in
            plan order (``extra["utterance"]`` and ``extra["trial"]`` say where each is from).
        components: stage → backend description, saying which parts are real or simulated.
        interrupted: the run was stopped (Ctrl-C, SIGTERM) before every trial ran.
        summary: `summarize_stages` of ``turns``.
        planned: utterances the plan holds (``len(utterances)`` unless interrupted).
        input_ms: duration of the measured trials' caller tracks, summed (ms).
        processed_ms: caller audio the sessions consumed, summed (ms); less than ``input_ms``
            only if a session stopped early (which the report flags).
    """

    options: LatencyOptions
    utterances: list[Utterance]
    placed: list[PlacedUtterance]
    turns: list[TurnRecord] = field(default_factory=list)
    components: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    summary: dict[str, Any] = field(default_factory=dict)
    planned: int = 0
    input_ms: float = 0.0
    processed_ms: float = 0.0

    @property
    def complete_turns(self) -> list[TurnRecord]:
        return [t for t in self.turns if t.complete]

    @property
    def waited_turns(self) -> list[TurnRecord]:
        """Turns whose first audio queued behind an earlier reply (see `reply_waits_ms`)."""
        return [t for t in self.turns if "waited_for_earlier_reply_ms" in t.extra]


def reply_waits_ms(turns: Sequence[TurnRecord]) -> dict[int, float]:
    """How long each turn's first audio waited for an earlier reply to finish playing (ms).

    Replies play one after another: when the user speaks again while a reply is still playing
    and barge-in does not stop it (or is off), the next reply's audio is queued behind it, and
    its ``playout`` stage holds that wait. For each turn (in order) with ``playout_queued`` and
    ``playout_start`` marks, the wait is ``min(playout_start, end of the earlier replies) −
    playout_queued`` when positive, where a reply ends ``played_samples`` (16 kHz, from
    ``extra``) after its ``playout_start``.

    Returns:
        Turn number → wait in ms, only for turns that waited.
    """
    from earshot.audio.frames import samples_to_ms

    waits: dict[int, float] = {}
    busy_until_ms = -math.inf
    for t in turns:
        m = t.marks_ms
        if "playout_queued" not in m or "playout_start" not in m:
            continue
        wait_ms = min(m["playout_start"], busy_until_ms) - m["playout_queued"]
        if wait_ms > 0:
            waits[t.turn] = wait_ms
        played = t.extra.get("played_samples")
        if isinstance(played, int | float):
            busy_until_ms = max(busy_until_ms, m["playout_start"] + samples_to_ms(played))
    return waits


_TURN_KEYS = frozenset(
    {"turn", "marks_ms", "ttfat_ms", "terms_ms", "user_text", "agent_text", "heard_text"}
    | {"interrupted", "stages_ms"}
)


def turn_from_json(obj: dict[str, Any]) -> TurnRecord:
    """The `TurnRecord` a ``turns.jsonl`` object (``TurnRecord.to_json``) was written from.

    Network terms come back from ``terms_ms``; every key the record does not name goes back
    into ``extra``; ``stages_ms`` (derived) is dropped.
    """
    terms = obj.get("terms_ms") or {}
    return TurnRecord(
        turn=int(obj["turn"]),
        marks_ms={k: float(v) for k, v in obj["marks_ms"].items()},
        user_text=str(obj.get("user_text", "")),
        agent_text=str(obj.get("agent_text", "")),
        heard_text=str(obj.get("heard_text", "")),
        interrupted=bool(obj.get("interrupted", False)),
        network_in_ms=float(terms.get("network_in", 0.0)),
        network_out_ms=float(terms.get("network_out", 0.0)),
        extra={k: v for k, v in obj.items() if k not in _TURN_KEYS},
    )
