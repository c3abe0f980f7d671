"""The per-turn latency record: marks on the session clock and the TTFAT terms.

TTFAT (time to first audible token, the end of the user's speech to the first agent sample
played; "Audio Token Budget and Latency Engineering" §39.4.2) is split into consecutive
differences of the marks on the critical path, so the terms sum to it exactly. Network terms
are reported by the transport (zero for files) and extend the span on both ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MARKS: tuple[str, ...] = (
    "speech_end",
    "end_of_turn",
    "stt_final",
    "llm_request",
    "llm_first_token",
    "first_sentence",
    "tts_first_audio",
    "playout_queued",
    "playout_start",
)
"""Critical-path marks in order; every value is ms since session start on the session clock.

* ``speech_end`` — end of the last voiced frame of the turn (VAD), in input-audio time.
* ``end_of_turn`` — the end-of-turn decision.
* ``stt_final`` — final transcript available.
* ``llm_request`` — LLM request sent.
* ``llm_first_token`` — first streamed text received (or the fallback line on LLM error).
* ``first_sentence`` — first chunk handed to TTS.
* ``tts_first_audio`` — first TTS audio chunk received.
* ``playout_queued`` — first chunk of that audio entered the jitter buffer.
* ``playout_start`` — first agent sample leaves the jitter buffer toward the user.
"""

TERMS: tuple[str, ...] = (
    "network_in",
    "endpointing",
    "stt_finalization",
    "llm_ttft",
    "sentence_aggregation",
    "tts_first_audio",
    "jitter_buffer",
    "network_out",
    "engine_overhead",
)
"""TTFAT terms in ms (names without the ``_ms`` suffix; JSON keys carry them as is).

* ``network_in`` — last user audio to the engine (transport-reported; 0 for files).
* ``endpointing`` — end_of_turn − speech_end (the endpointing delay).
* ``stt_finalization`` — stt_final − end_of_turn.
* ``llm_ttft`` — llm_first_token − llm_request.
* ``sentence_aggregation`` — first_sentence − llm_first_token.
* ``tts_first_audio`` — tts_first_audio − first_sentence (TTS time to first byte).
* ``jitter_buffer`` — playout_start − playout_queued (hold + frame-tick alignment).
* ``network_out`` — first agent audio to the listener (transport-reported; 0 for files).
* ``engine_overhead`` — what earshot itself adds between stages:
  (llm_request − stt_final) + (playout_queued − tts_first_audio).
"""


FAILURE_KEYS: tuple[tuple[str, str], ...] = (
    ("llm_error", "llm"),
    ("tts_error", "tts"),
    ("stt_error", "stt"),
    ("response_error", "response"),
)
"""Keys of `TurnRecord.extra` under which a stage records why it failed this turn, and the
stage each names. A turn holding one is a *failed* turn (`TurnRecord.failure`): the caller heard
a fallback line or a reply cut short, so its latency measures the failure, not a reply."""


@dataclass(frozen=True, slots=True)
class TurnFailure:
    """Why a turn failed: the stage (``"llm"``, ``"tts"``...) and its error message."""

    stage: str
    message: str


def decompose(
    marks_ms: dict[str, float], network_in_ms: float = 0.0, network_out_ms: float = 0.0
) -> dict[str, float]:
    """TTFAT terms from a complete set of `MARKS`; they sum to `ttfat` exactly.

    Raises:
        KeyError: a mark is missing.
    """
    m = marks_ms
    return {
        "network_in": network_in_ms,
        "endpointing": m["end_of_turn"] - m["speech_end"],
        "stt_finalization": m["stt_final"] - m["end_of_turn"],
        "llm_ttft": m["llm_first_token"] - m["llm_request"],
        "sentence_aggregation": m["first_sentence"] - m["llm_first_token"],
        "tts_first_audio": m["tts_first_audio"] - m["first_sentence"],
        "jitter_buffer": m["playout_start"] - m["playout_queued"],
        "network_out": network_out_ms,
        "engine_overhead": (m["llm_request"] - m["stt_final"])
        + (m["playout_queued"] - m["tts_first_audio"]),
    }


def ttfat(
    marks_ms: dict[str, float], network_in_ms: float = 0.0, network_out_ms: float = 0.0
) -> float:
    """TTFAT in ms = playout_start − speech_end + network_in + network_out."""
    return marks_ms["playout_start"] - marks_ms["speech_end"] + network_in_ms + network_out_ms


@dataclass(slots=True)
class TurnRecord:
    """Everything measured about one user turn and the agent's reply to it."""

    turn: int
    """1-based index of the user turn."""
    marks_ms: dict[str, float] = field(default_factory=dict)
    user_text: str = ""
    agent_text: str = ""
    heard_text: str = ""
    interrupted: bool = False
    network_in_ms: float = 0.0
    network_out_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    """Additional marks or counters (barge-in marks, fallback reason...) copied into JSON."""

    @property
    def complete(self) -> bool:
        return all(name in self.marks_ms for name in MARKS)

    @property
    def failure(self) -> TurnFailure | None:
        """The first failure recorded for this turn (see `FAILURE_KEYS`), or None."""
        for key, stage in FAILURE_KEYS:
            message = self.extra.get(key)
            if message:
                return TurnFailure(stage, str(message))
        return None

    @property
    def measured(self) -> bool:
        """Complete and not failed: a turn whose TTFAT is a reply's, counted in statistics."""
        return self.complete and self.failure is None

    @property
    def ttfat_ms(self) -> float | None:
        if not self.complete:
            return None
        return ttfat(self.marks_ms, self.network_in_ms, self.network_out_ms)

    @property
    def terms_ms(self) -> dict[str, float] | None:
        if not self.complete:
            return None
        return decompose(self.marks_ms, self.network_in_ms, self.network_out_ms)

    def to_json(self) -> dict[str, Any]:
        """The ``turns.jsonl`` object for this turn."""
        ttfat_ms = self.ttfat_ms
        terms = self.terms_ms
        out: dict[str, Any] = {
            "turn": self.turn,
            "marks_ms": {k: round(v, 3) for k, v in self.marks_ms.items()},
            "ttfat_ms": None if ttfat_ms is None else round(ttfat_ms, 3),
            "terms_ms": None if terms is None else {k: round(v, 3) for k, v in terms.items()},
            "user_text": self.user_text,
            "agent_text": self.agent_text,
            "heard_text": self.heard_text,
            "interrupted": self.interrupted,
        }
        out.update(self.extra)
        return out
