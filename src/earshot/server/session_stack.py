"""One server call = one `earshot.session.Session` on the call's transport, and its outputs.

`SessionStack` is the `earshot.server.stack.CallStack` both server stacks share; a subclass
only says how to build the stage backends (`SessionStack.build_parts`, run in the inference
pool because loading a model blocks). Per call it

* builds the call's backends (each call has its own VAD state, recognizer and LLM history;
  loaded models that are safe to share are shared, see `earshot.server.embedded`) and closes
  what the call owns when it ends (`SessionParts.closers`);
* runs the session on the transport with a fresh session clock;
* sends the page its live messages from the session's events (`PageEvents`: partial and final
  transcripts, the agent's text, the heard part once known, each finished turn with TTFAT
  p50/p95 so far);
* writes the same outputs as ``earshot converse`` into ``<out>/<call id>/``: ``turns.jsonl``
  (durable per turn), ``conversation.wav`` (streamed), ``report.md`` and ``latency.png``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from earshot.clock import Clock, SystemClock, run_blocking
from earshot.llm.base import LanguageModel
from earshot.metrics.budget import TermBudget, load_budget
from earshot.metrics.plot import plot_latency
from earshot.metrics.report import TurnLog, write_report_md
from earshot.metrics.stats import summarize
from earshot.metrics.turn import TurnRecord
from earshot.server import protocol as proto
from earshot.server.recording import TimelineRecorder
from earshot.server.registry import Admission
from earshot.server.stack import CallSummary, Notify
from earshot.session.config import SessionConfig
from earshot.session.events import (
    ResponseText,
    SessionEvent,
    TurnCompleted,
    UserTranscriptFinal,
    UserTranscriptPartial,
)
from earshot.session.listener import PauseTranscriptSource
from earshot.session.session import Session, SessionState
from earshot.stt.base import StreamingRecognizer
from earshot.transports.base import Transport
from earshot.transports.file import WavRecorder
from earshot.tts.base import Synthesizer
from earshot.turns.bargein import BargeInConfig
from earshot.turns.endpointer import Endpointer
from earshot.vad.base import VoiceActivityDetector


@dataclass(slots=True)
class SessionParts:
    """The stage backends of one call and how the report describes them."""

    vad: VoiceActivityDetector
    stt: StreamingRecognizer
    llm: LanguageModel
    tts: Synthesizer
    endpointer: Endpointer
    bargein: BargeInConfig | None
    components: dict[str, str]
    closers: tuple[Callable[[], None], ...] = ()
    """Stop what this call's backends own (worker threads) once the call ends; shared
    models stay loaded."""
    pause_transcript: PauseTranscriptSource | None = None
    """The text the model end-pointer reads at each pause (None: the STT's partials)."""


class SessionStack:
    """Runs a `Session` per call; subclasses implement `build_parts`.

    Args:
        config: session settings for every call.
        budget_preset: budget the report holds each call against.
    """

    name = "session"

    def __init__(self, config: SessionConfig | None = None, budget_preset: str = "1.5s") -> None:
        self.config = config or SessionConfig()
        self.budget: TermBudget = load_budget(None, preset=budget_preset)

    def build_parts(self, clock: Clock) -> SessionParts:
        """Fresh backends for one call (blocking: runs in the inference pool)."""
        raise NotImplementedError

    async def run_call(
        self, transport: Transport, clock: Clock, admission: Admission, notify: Notify
    ) -> CallSummary:
        parts = await run_blocking(self.build_parts, clock)
        out = admission.out_dir
        out.mkdir(parents=True, exist_ok=True)
        log = TurnLog(out / "turns.jsonl")
        recorder = TimelineRecorder(WavRecorder(out / "conversation.wav", None))
        if hasattr(transport, "recorder"):
            transport.recorder = recorder
        ui = PageEvents(notify)

        def on_turn(turn: TurnRecord) -> None:
            log.append(turn)

        if isinstance(clock, SystemClock):
            clock.reset_origin()
        session = Session(
            self.config,
            clock,
            parts.vad,
            parts.stt,
            parts.llm,
            parts.tts,
            parts.endpointer,
            bargein=parts.bargein,
            on_turn=on_turn,
            on_event=ui.on_event,
            pause_transcript=parts.pause_transcript,
        )
        ui.session = session
        try:
            await session.run(transport)
        finally:
            admission.release()  # the caller is gone: the report no longer holds a slot
            recorder.close()
            log.close()
            try:
                await run_blocking(
                    self._write_report, out, session.state, parts, transport, admission
                )
            finally:
                for close in parts.closers:
                    await run_blocking(close)
        return CallSummary(turns=len(session.state.turns), out_dir=str(out))

    def _write_report(
        self,
        out: Path,
        state: SessionState,
        parts: SessionParts,
        transport: Transport,
        admission: Admission,
    ) -> None:
        components = {"transport": describe_transport(transport), **parts.components}
        run_info: dict[str, Any] = {
            "call": admission.call_id,
            "transport": transport.name,
            "frame_ms": self.config.frame_ms,
            "jitter_ms": self.config.jitter_ms,
        }
        run_info.update(transport_facts(transport))
        write_report_md(
            out / "report.md",
            state.turns,
            summarize(state.turns),
            self.budget,
            components,
            run_info,
            plot_file="latency.png",
        )
        if any(t.complete for t in state.turns):
            plot_latency(out / "latency.png", state.turns, self.budget)


def describe_transport(transport: Transport) -> str:
    """The report's line for the transport: what is measured and what is estimated."""
    described = getattr(transport, "description", None)
    if isinstance(described, str):
        return described
    if transport.name == "websocket":
        return (
            "WebSocket (real network): network_in, uplink_jitter_buffer, network_out and "
            "client_playout measured per turn through NTP-style clock sync (error bound in "
            "turns.jsonl sync_error_ms)"
        )
    if transport.name == "webrtc":
        return (
            "WebRTC (aiortc, real network): network_in ESTIMATED as RTT/2 (RTP carries no "
            "capture time on our clock); network_out and client_playout from the page's own "
            "playout dating through clock sync"
        )
    return transport.name


def transport_facts(transport: Transport) -> dict[str, Any]:
    """Clock-sync, uplink and RTCP figures of a network transport for the report."""
    facts: dict[str, Any] = {}
    estimate = getattr(transport, "estimate", None)
    est = estimate() if callable(estimate) else None
    if est is not None:
        facts["clock sync"] = (
            f"offset {est.offset_ms:.1f} ms, RTT {est.rtt_ms:.1f} ms, "
            f"error bound ±{est.error_bound_ms:.1f} ms ({est.num_samples} exchanges)"
        )
    stats = getattr(transport, "uplink_stats", None)
    if stats is not None:
        facts["uplink"] = (
            f"{stats.received} frames received, {stats.concealed} concealed, "
            f"{stats.late} late, {stats.duplicate} duplicate"
        )
    report_facts = getattr(transport, "report_facts", None)
    if callable(report_facts):
        facts.update(report_facts())
    stats_json = getattr(transport, "stats_json", None)
    if callable(stats_json):
        facts["RTCP"] = stats_json()
    return facts


def _percentiles(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    arr = np.asarray(values)
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 95))


def _response_id(state: SessionState, turn: TurnRecord) -> int | None:
    for handle in reversed(state.responses):
        if handle.turn is turn:
            return handle.response_id
    return None


class PageEvents:
    """Turns the session's events into the page's control messages (see
    `earshot.server.protocol`): partial and final transcripts, the reply text as it is handed
    to TTS, and each finished turn with the part heard and TTFAT p50/p95 so far."""

    def __init__(self, notify: Notify) -> None:
        self.notify = notify
        self.session: Session | None = None
        self._texts: dict[int, str] = {}
        self._ttfats: list[float] = []

    def on_event(self, event: SessionEvent) -> None:
        match event:
            case UserTranscriptPartial():
                self.notify(proto.Transcript(text=event.text, final=False))
            case UserTranscriptFinal():
                self.notify(proto.Transcript(text=event.text, final=True))
            case ResponseText():
                text = f"{self._texts.get(event.response_id, '')} {event.text}".strip()
                self._texts[event.response_id] = text
                self.notify(proto.AgentText(response_id=event.response_id, text=text))
            case TurnCompleted():
                self._turn_done(event.record)
            case _:
                pass

    def _turn_done(self, turn: TurnRecord) -> None:
        if turn.ttfat_ms is not None:
            self._ttfats.append(turn.ttfat_ms)
        rid = _response_id(self.session.state, turn) if self.session is not None else None
        if rid is not None:
            self.notify(
                proto.AgentText(response_id=rid, text=turn.agent_text, heard_text=turn.heard_text)
            )
        p50, p95 = _percentiles(self._ttfats)
        self.notify(proto.TurnDone(record=turn.to_json(), ttfat_p50_ms=p50, ttfat_p95_ms=p95))
