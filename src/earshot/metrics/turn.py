"""The per-turn latency record: marks on the session clock and the TTFAT terms.

TTFAT (time to first audible token, the end of the user's speech to the first agent sample
played; "Audio Token Budget and Latency Engineering" §39.4.2) is split into consecutive
differences of the marks on the critical path, so the terms sum to it exactly. Network terms
are reported by the transport (zero for files) and extend the span on both ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

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

Client transports add ``heard_start`` (`HEARD_MARK`), outside this tuple because a file run
never has it: the first sample of the reply actually played by the caller's device.
"""

HEARD_MARK = "heard_start"
"""Mark (ms, session clock) of the first reply sample played by the caller's device, where the
transport reports device playout; TTFAT then ends there instead of at ``playout_start``."""

TERMS: tuple[str, ...] = (
    "network_in",
    "uplink_jitter_buffer",
    "endpointing",
    "stt_finalization",
    "llm_ttft",
    "sentence_aggregation",
    "tts_first_audio",
    "jitter_buffer",
    "network_out",
    "client_playout",
    "engine_overhead",
)
"""TTFAT terms in ms (names without the ``_ms`` suffix; JSON keys carry them as is).

* ``network_in`` — last user audio to the engine (transport-reported; 0 for files).
* ``uplink_jitter_buffer`` — time the server's uplink jitter buffer held that audio
  (transport-reported; 0 for files).
* ``endpointing`` — end_of_turn − speech_end (the endpointing delay; with measured network
  terms, less ``network_in`` and ``uplink_jitter_buffer``, which delayed the decision).
* ``stt_finalization`` — stt_final − end_of_turn.
* ``llm_ttft`` — llm_first_token − llm_request.
* ``sentence_aggregation`` — first_sentence − llm_first_token.
* ``tts_first_audio`` — tts_first_audio − first_sentence (TTS time to first byte).
* ``jitter_buffer`` — playout_start − playout_queued (hold + frame-tick alignment).
* ``network_out`` — first agent audio to the listener (transport-reported; 0 for files; with
  ``heard_start``: heard_start − playout_start − client_playout).
* ``client_playout`` — the client's own playout delay: first audio received → first sample
  played (transport-reported; 0 for files).
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


@dataclass(slots=True)
class NetworkTiming:
    """Network terms of one turn as a client transport measured them (ms; None = unknown).

    The server transports fill this per turn (`earshot.transports.base.InputFrame` carries the
    uplink times, `earshot.transports.base.PlayoutReport` the downlink ones); the file transport
    leaves `TurnRecord.network` None, so every network term is 0 as before.

    Attributes:
        network_in_ms: one-way delay of the audio that closed the turn: its arrival at the
            server − (its capture time + one frame).
        uplink_jitter_buffer_ms: how long the uplink jitter buffer held that audio.
        network_out_ms: first reply audio leaving the server → received by the client. When
            ``heard_start`` is known it is derived (heard_start − playout_start − client_playout)
            so the terms sum exactly; the measured value is kept in ``network_out_measured_ms``.
        network_out_measured_ms: the directly measured downlink delay, for the record.
        client_playout_ms: first reply audio received by the client → first sample played.
        sync_error_ms: bound on the client↔server clock mapping error behind these numbers.
    """

    network_in_ms: float | None = None
    uplink_jitter_buffer_ms: float | None = None
    network_out_ms: float | None = None
    network_out_measured_ms: float | None = None
    client_playout_ms: float | None = None
    sync_error_ms: float | None = None

    def measured_terms(self) -> tuple[str, ...]:
        """The network terms with a measured value, in `TERMS` order."""
        values = {
            "network_in": self.network_in_ms,
            "uplink_jitter_buffer": self.uplink_jitter_buffer_ms,
            "network_out": self.network_out_ms,
            "client_playout": self.client_playout_ms,
        }
        return tuple(k for k, v in values.items() if v is not None)


TOOL_TERM = "tool"
"""An extra term, present in a turn's terms only when a tool ran before the first token: the
``tool_start`` → ``tool_end`` marks, cut at ``llm_first_token`` (a filler line spoken
meanwhile takes the rest of the tool's time off the critical path). It is taken out of
``llm_ttft`` (which is then llm_first_token − llm_request − tool), so the terms still sum to
TTFAT (`earshot.levers.tools`)."""


def decompose(
    marks_ms: dict[str, float],
    network_in_ms: float = 0.0,
    network_out_ms: float = 0.0,
    network: NetworkTiming | None = None,
) -> dict[str, float]:
    """TTFAT terms from a complete set of `MARKS`; they sum to `ttfat` exactly.

    Without ``heard_start`` (file transport, or a client that reports no playout) the network
    terms are the given estimates and extend the span on both ends. With ``heard_start`` and a
    `NetworkTiming`, TTFAT = heard_start − speech_end: ``network_in`` and
    ``uplink_jitter_buffer`` are taken out of the endpointing span (the decision waited for
    that audio) and ``network_out`` is what remains after ``client_playout``.

    Raises:
        KeyError: a mark is missing.
    """
    m = marks_ms
    heard = m.get(HEARD_MARK)
    uplink_jb = 0.0
    client = 0.0
    endpointing = m["end_of_turn"] - m["speech_end"]
    if heard is not None:
        net = network if network is not None else NetworkTiming()
        network_in_ms = net.network_in_ms or 0.0
        uplink_jb = net.uplink_jitter_buffer_ms or 0.0
        client = net.client_playout_ms or 0.0
        endpointing -= network_in_ms + uplink_jb
        network_out_ms = heard - m["playout_start"] - client
    tool = 0.0
    if "tool_start" in m and "tool_end" in m:
        tool = max(0.0, min(m["tool_end"], m["llm_first_token"]) - m["tool_start"])
    return {
        "network_in": network_in_ms,
        "uplink_jitter_buffer": uplink_jb,
        "endpointing": endpointing,
        "stt_finalization": m["stt_final"] - m["end_of_turn"],
        "llm_ttft": m["llm_first_token"] - m["llm_request"] - tool,
        "sentence_aggregation": m["first_sentence"] - m["llm_first_token"],
        "tts_first_audio": m["tts_first_audio"] - m["first_sentence"],
        "jitter_buffer": m["playout_start"] - m["playout_queued"],
        "network_out": network_out_ms,
        "client_playout": client,
        "engine_overhead": (m["llm_request"] - m["stt_final"])
        + (m["playout_queued"] - m["tts_first_audio"]),
    } | ({TOOL_TERM: tool} if "tool_start" in m else {})


def ttfat(
    marks_ms: dict[str, float], network_in_ms: float = 0.0, network_out_ms: float = 0.0
) -> float:
    """TTFAT in ms: heard_start − speech_end where the device reported playout, else
    playout_start − speech_end + network_in + network_out (estimates; 0 for files)."""
    heard = marks_ms.get(HEARD_MARK)
    if heard is not None:
        return heard - marks_ms["speech_end"]
    return marks_ms["playout_start"] - marks_ms["speech_end"] + network_in_ms + network_out_ms


Resolution = Literal["pending", "confirmed", "continued", "backchannel", "false_interruption"]


@dataclass(slots=True)
class BargeInRecord:
    """One barge-in detection and how it was resolved (ms on the session clock).

    Attributes:
        user_onset_ms: VAD onset of the caller's speech.
        detected_ms: when the barge-in policy fired (capture time of the deciding frame's end).
        stopped_at_ms: session time the reply was stopped.
        last_agent_sample_ms: end of the last agent sample played (from the transport's
            playout report), None if nothing had played.
        reaction_ms: last_agent_sample − user_onset (how long the agent talked over the user).
        while_state: ``"playing"`` or ``"preparing"`` (JSON key ``while``).
        heard_words: words of this reply the caller heard before the stop.
        generated_words: words the LLM had generated by then.
        resolution: what it turned out to be.
    """

    user_onset_ms: float
    detected_ms: float
    stopped_at_ms: float
    last_agent_sample_ms: float | None
    reaction_ms: float | None
    while_state: Literal["playing", "preparing"]
    heard_words: int
    generated_words: int
    resolution: Resolution = "pending"

    def to_json(self) -> dict[str, Any]:
        """The object written into ``turns.jsonl`` (keys as before the typed record)."""

        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 3)

        return {
            "user_onset_ms": r(self.user_onset_ms),
            "detected_ms": r(self.detected_ms),
            "stopped_at_ms": r(self.stopped_at_ms),
            "last_agent_sample_ms": r(self.last_agent_sample_ms),
            "reaction_ms": r(self.reaction_ms),
            "while": self.while_state,
            "heard_words": self.heard_words,
            "generated_words": self.generated_words,
            "resolution": self.resolution,
        }


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
    """Estimated network-in term (ms) when no `NetworkTiming` was measured (0 for files)."""
    network_out_ms: float = 0.0
    """Estimated network-out term (ms) when no `NetworkTiming` was measured (0 for files)."""
    network: NetworkTiming | None = None
    """Measured network terms (client transports); None for the file transport."""
    barge_ins: list[BargeInRecord] = field(default_factory=list)
    """Barge-ins detected during the reply to this turn (JSON key ``barge_ins``)."""
    unfinished: bool = False
    """The run ended (Ctrl-C, the caller hung up) while this turn's reply was still pending or
    playing: what is recorded is what had happened by then."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Additional marks or counters copied into JSON. A stage that failed this turn records why
    under ``llm_error``, ``tts_error``, ``stt_error`` or ``response_error`` (the last also for
    "no audio in time" and errors inside earshot); ``fallback`` says the fallback line was
    used; ``stt_decode_ms``/``stt_early_final`` come from the recognizer."""

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

    def set_heard_start(self, heard_start_ms: float, network: NetworkTiming) -> None:
        """Record the device-reported first played sample and the measured network terms
        (for server transports; TTFAT then ends at ``heard_start``)."""
        self.marks_ms[HEARD_MARK] = heard_start_ms
        self.network = network

    @property
    def terms_ms(self) -> dict[str, float] | None:
        if not self.complete:
            return None
        return decompose(self.marks_ms, self.network_in_ms, self.network_out_ms, self.network)

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
            "unfinished": self.unfinished,
        }
        if self.barge_ins:
            out["barge_ins"] = [b.to_json() for b in self.barge_ins]
        if self.network is not None:
            measured = self.network.measured_terms()
            out["terms_measured"] = list(measured)
            out["terms_estimated"] = [
                t
                for t in ("network_in", "uplink_jitter_buffer", "network_out", "client_playout")
                if t not in measured
            ]
            sync = self.network.sync_error_ms
            out["sync_error_ms"] = None if sync is None or not math.isfinite(sync) else sync
        out.update(self.extra)
        return out
