"""Twilio Media Streams: a phone call's audio over a WebSocket (``<Connect><Stream>``).

Inbound messages (Twilio → earshot), JSON text frames with an ``event``: ``connected``;
``start`` (``streamSid``, ``callSid``, ``mediaFormat`` = ``audio/x-mulaw`` 8000 Hz mono);
``media`` (``payload``: base64 G.711 µ-law, 8 kHz, 20 ms per message); ``mark`` (a mark we
sent, echoed once the audio before it has played); ``dtmf`` (ignored); ``stop``.
Outbound (earshot → Twilio): ``media`` (base64 µ-law 8 kHz), ``mark`` (a name), ``clear``
(drop the audio Twilio has buffered but not yet played).

The call runs the Realtime protocol machine underneath with µ-law in and out (`TwilioCall`
is pure: message + now_ms → outbound messages and engine commands). Each reply's audio goes out
in 100 ms pieces, each followed by a mark naming how far into the reply it reaches; Twilio's
mark echoes are the played position. On barge-in earshot sends ``clear`` and truncates the
reply to the last echoed mark, so the heard words follow what the caller's phone got. Marks
echoed after our ``clear`` for that reply are not counted as played.

Latency: earshot sees the call from Twilio's media edge. The record per reply has TTFAT to the
server sending the first audio and to Twilio's first mark echo (measured); the PSTN leg between
Twilio and the caller's handset is invisible to it and appears only as a labelled assumption
(``pstn_assumed_ms``, default 150 ms: the low end of the 150–700 ms that PSTN routing adds per
T. Pan, "Voice AI in Production: Engineering the 300ms Latency Budget"), never added to the
measured figures.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, ValidationError

from earshot.audio.io import write_text_atomic
from earshot.clock import Clock, SystemClock
from earshot.protocols.engine import ProtocolEngine
from earshot.protocols.engine_types import EngineCommand, EngineEvent
from earshot.protocols.realtime import events as ev
from earshot.protocols.realtime.handler import ComponentsFactory
from earshot.protocols.realtime.machine import Output, RealtimeProtocol

log = logging.getLogger(__name__)

ULAW_BYTES_PER_MS = 8
"""G.711 at 8 kHz: one byte per sample, 8 per ms."""

PIECE_MS = 100
"""Outbound audio is cut into pieces of this many ms, each followed by a mark."""

PSTN_RANGE_MS = (150.0, 700.0)
"""What PSTN carrier routing adds (T. Pan, "Voice AI in Production", REFERENCE.md)."""


@dataclass(frozen=True, slots=True)
class TwilioOptions:
    """Settings of the Twilio endpoint.

    Attributes:
        pstn_assumed_ms: assumed latency of the PSTN leg (Twilio ↔ handset) reported beside,
            never inside, the measured TTFAT. Default 150 ms, the low end of the published
            150–700 ms range.
        instructions: the system prompt of the agent.
        turn_detection: server_vad (fixed silence) or semantic_vad (smart end-pointer).
    """

    pstn_assumed_ms: float = PSTN_RANGE_MS[0]
    instructions: str | None = None
    turn_detection: ev.ServerVad | ev.SemanticVad = field(default_factory=lambda: ev.ServerVad())


class _Media(BaseModel):
    model_config = ConfigDict(extra="ignore")
    payload: str
    track: str = "inbound"


class _MediaFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")
    encoding: str
    sampleRate: int
    channels: int = 1


class _Start(BaseModel):
    model_config = ConfigDict(extra="ignore")
    streamSid: str
    callSid: str = ""
    mediaFormat: _MediaFormat


class _Mark(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str


class TwilioReply(BaseModel):
    """One reply's record (a line of ``turns.jsonl`` in the call's folder).

    Attributes:
        ttfat_ms: ``playout_start − speech_end``: to the server sending the first audio
            (measured; speech_end = arrival of the media carrying the last voiced sample).
        twilio_first_played_ms: session time Twilio reported the reply's first piece played
            (its mark echo) minus the piece's duration: the first sample's playback at
            Twilio's edge (measured), or None without an echo.
        ttfat_to_twilio_playout_ms: ``twilio_first_played − speech_end`` (measured).
        pstn_assumed_ms: the assumed PSTN leg, labelled; ``ttfat_with_pstn_assumption_ms`` =
            the Twilio-playout TTFAT + 2 × the assumption (caller's speech in, reply out).
    """

    response_id: str
    item_id: str | None
    user_text: str
    agent_text: str
    heard_text: str
    interrupted: bool
    cleared: bool
    marks_ms: dict[str, float]
    terms_ms: dict[str, float] | None
    ttfat_ms: float | None
    twilio_first_played_ms: float | None = None
    ttfat_to_twilio_playout_ms: float | None = None
    pstn_assumed_ms: float
    pstn_assumption: str = (
        "assumed, not measured: PSTN routing adds 150-700 ms (T. Pan, 'Voice AI in "
        "Production: Engineering the 300ms Latency Budget'); counted once each way"
    )
    ttfat_with_pstn_assumption_ms: float | None = None


@dataclass(slots=True)
class _Playback:
    """What was sent of one reply's audio and what Twilio has confirmed played."""

    response_id: str
    item_id: str
    sent_bytes: int = 0
    acked_bytes: int = 0
    first_ack_ms: float | None = None
    cleared: bool = False


class TwilioCall:
    """One Twilio stream's protocol state (pure: no socket, no clock).

    Args:
        options: endpoint settings.
    """

    def __init__(self, options: TwilioOptions) -> None:
        self.options = options
        self.protocol = RealtimeProtocol("twilio")
        self.stream_sid: str | None = None
        self.call_sid = ""
        self.stopped = False
        self.bad_messages = 0
        self.replies: dict[str, TwilioReply] = {}
        self._playback: dict[str, _Playback] = {}
        self._by_item: dict[str, _Playback] = {}

    # -- entry points ----------------------------------------------------------------------

    def inbound(self, raw: str | bytes, now_ms: float) -> tuple[list[str], list[EngineCommand]]:
        """One Twilio message → (messages to send Twilio, engine commands)."""
        try:
            data = json.loads(raw)
            kind = data.get("event") if isinstance(data, dict) else None
            match kind:
                case "connected" | "dtmf":
                    return [], []
                case "start":
                    return self._start(_Start.model_validate(data["start"]), now_ms)
                case "media":
                    media = _Media.model_validate(data["media"])
                    if self.stream_sid is None or media.track not in ("inbound", "inbound_track"):
                        return [], []
                    append = {"type": "input_audio_buffer.append", "audio": media.payload}
                    return self._route(
                        self.protocol.client_event(json.dumps(append), now_ms), now_ms
                    )
                case "mark":
                    self._mark(_Mark.model_validate(data["mark"]).name, now_ms)
                    return [], []
                case "stop":
                    self.stopped = True
                    return [], []
                case _:
                    raise ValueError(f"unknown event {kind!r}")
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            self.bad_messages += 1
            log.warning("twilio: ignored a malformed message (%s)", str(exc).splitlines()[0])
            return [], []

    def engine_event(
        self, event: EngineEvent, now_ms: float
    ) -> tuple[list[str], list[EngineCommand]]:
        return self._route(self.protocol.engine_event(event, now_ms), now_ms)

    # -- internals -------------------------------------------------------------------------

    def _start(self, start: _Start, now_ms: float) -> tuple[list[str], list[EngineCommand]]:
        fmt = start.mediaFormat
        if fmt.encoding != "audio/x-mulaw" or fmt.sampleRate != 8000 or fmt.channels != 1:
            raise ValueError(
                f"unsupported media format {fmt.encoding} {fmt.sampleRate} Hz x{fmt.channels}; "
                "Media Streams sends audio/x-mulaw 8000 Hz mono"
            )
        self.stream_sid = start.streamSid
        self.call_sid = start.callSid
        session: dict[str, object] = {
            "type": "realtime",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "turn_detection": self.options.turn_detection.model_dump(),
                },
                "output": {"format": {"type": "audio/pcmu"}},
            },
            "earshot": {"latency_events": True},
        }
        if self.options.instructions is not None:
            session["instructions"] = self.options.instructions
        outputs = [*self.protocol.open(now_ms)]
        update = {"type": "session.update", "session": session}
        outputs += self.protocol.client_event(json.dumps(update), now_ms)
        return self._route(outputs, now_ms)

    def _route(
        self, outputs: Sequence[Output], now_ms: float
    ) -> tuple[list[str], list[EngineCommand]]:
        to_twilio: list[str] = []
        commands: list[EngineCommand] = []
        truncate: list[_Playback] = []
        for out in outputs:
            if not isinstance(out, ev.ServerEvent):
                commands.append(out)
                continue
            match out:
                case ev.DeltaEvent(type="response.output_audio.delta"):
                    to_twilio += self._media(out)
                case ev.SpeechStartedEvent():
                    playing = [
                        p
                        for p in self._playback.values()
                        if p.acked_bytes < p.sent_bytes and not p.cleared
                    ]
                    if playing:
                        to_twilio.append(self._msg({"event": "clear"}))
                        for p in playing:
                            p.cleared = True
                            truncate.append(p)
                case ev.EarshotLatencyEvent():
                    self._record(out)
                case ev.ErrorEvent():
                    log.warning("twilio: %s", out.error.message)
                case _:
                    pass
        for p in truncate:  # the played position is the last mark Twilio echoed
            event = {
                "type": "conversation.item.truncate",
                "item_id": p.item_id,
                "content_index": 0,
                "audio_end_ms": p.acked_bytes // ULAW_BYTES_PER_MS,
            }
            more_twilio, more_commands = self._route(
                self.protocol.client_event(json.dumps(event), now_ms), now_ms
            )
            to_twilio += more_twilio
            commands += more_commands
            self._update_heard(p)
        return to_twilio, commands

    def _media(self, delta: ev.DeltaEvent) -> list[str]:
        p = self._playback.get(delta.response_id)
        if p is None:
            p = _Playback(delta.response_id, delta.item_id)
            self._playback[delta.response_id] = p
            self._by_item[delta.item_id] = p
        if p.cleared:
            return []
        data = base64.b64decode(delta.delta)
        piece = PIECE_MS * ULAW_BYTES_PER_MS
        out: list[str] = []
        for start in range(0, len(data), piece):
            chunk = data[start : start + piece]
            p.sent_bytes += len(chunk)
            payload = base64.b64encode(chunk).decode("ascii")
            out.append(self._msg({"event": "media", "media": {"payload": payload}}))
            name = f"{p.response_id}:{p.sent_bytes}"
            out.append(self._msg({"event": "mark", "mark": {"name": name}}))
        return out

    def _mark(self, name: str, now_ms: float) -> None:
        response_id, _, position = name.rpartition(":")
        p = self._playback.get(response_id)
        if p is None or not position.isdigit():
            raise ValueError(f"mark {name!r} was not sent by earshot")
        if p.cleared:
            return  # echoed after our clear: that audio was dropped, not played
        if p.first_ack_ms is None:
            first_piece_ms = min(int(position), PIECE_MS * ULAW_BYTES_PER_MS) / ULAW_BYTES_PER_MS
            p.first_ack_ms = now_ms - first_piece_ms
        p.acked_bytes = max(p.acked_bytes, int(position))
        reply = self.replies.get(response_id)
        if reply is not None:
            self._fill_twilio_terms(reply, p)
            if not reply.interrupted:
                self._update_heard(p)

    def _record(self, lat: ev.EarshotLatencyEvent) -> None:
        reply = TwilioReply(
            response_id=lat.response_id,
            item_id=lat.item_id,
            user_text=lat.user_text,
            agent_text=lat.agent_text,
            heard_text=lat.heard_text,
            interrupted=lat.interrupted,
            cleared=False,
            marks_ms=lat.marks_ms,
            terms_ms=lat.terms_ms,
            ttfat_ms=lat.ttfat_ms,
            pstn_assumed_ms=self.options.pstn_assumed_ms,
        )
        self.replies[lat.response_id] = reply
        p = self._playback.get(lat.response_id)
        if p is not None:
            self._fill_twilio_terms(reply, p)
            self._update_heard(p)

    def _fill_twilio_terms(self, reply: TwilioReply, p: _Playback) -> None:
        speech_end = reply.marks_ms.get("speech_end")
        reply.twilio_first_played_ms = p.first_ack_ms
        if p.first_ack_ms is not None and speech_end is not None:
            measured = round(p.first_ack_ms - speech_end, 3)
            reply.ttfat_to_twilio_playout_ms = measured
            reply.ttfat_with_pstn_assumption_ms = measured + 2 * self.options.pstn_assumed_ms

    def _update_heard(self, p: _Playback) -> None:
        reply = self.replies.get(p.response_id)
        if reply is None or p.item_id not in self.protocol.conversation:
            return
        state = self.protocol.conversation.get(p.item_id)
        reply.cleared = p.cleared
        reply.interrupted = state.truncated
        if state.truncated:
            reply.heard_text = state.text
        elif p.acked_bytes >= p.sent_bytes > 0:
            reply.heard_text = state.text  # every piece confirmed played

    def _msg(self, body: dict[str, object]) -> str:
        return json.dumps({**body, "streamSid": self.stream_sid})

    def turns_jsonl(self) -> str:
        return "".join(r.model_dump_json() + "\n" for r in self.replies.values())


async def serve_twilio(
    request: web.Request, factory: ComponentsFactory, options: TwilioOptions, out_dir: Path
) -> web.WebSocketResponse:
    """Accept a Twilio Media Stream and run the call until ``stop`` or disconnect; write the
    replies' records to ``out_dir/turns.jsonl``."""
    ws = web.WebSocketResponse(max_msg_size=1024 * 1024, heartbeat=None)
    await ws.prepare(request)
    clock: Clock = SystemClock()
    components = await asyncio.get_running_loop().run_in_executor(None, factory, clock)
    call = TwilioCall(options)
    outbox: asyncio.Queue[str] = asyncio.Queue()

    def deliver(result: tuple[list[str], list[EngineCommand]]) -> None:
        for text in result[0]:
            outbox.put_nowait(text)
        for cmd in result[1]:
            engine.submit(cmd)

    engine = ProtocolEngine(
        components, clock, lambda e: deliver(call.engine_event(e, clock.now_ms()))
    )

    class _Done(Exception):
        pass

    async def reader() -> None:
        async for msg in ws:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                deliver(call.inbound(msg.data, clock.now_ms()))
                if call.stopped:
                    break
            elif msg.type == WSMsgType.ERROR:
                break
        raise _Done

    async def writer() -> None:
        while True:
            text = await outbox.get()
            if ws.closed:
                return
            await ws.send_str(text)

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(engine.run())
            tg.create_task(writer())
            tg.create_task(reader())
    except* _Done:
        pass
    except* ConnectionError:
        log.info("twilio: stream %s went away", call.stream_sid)
    finally:
        if not ws.closed:
            await ws.close()
        if call.replies:
            out_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(out_dir / "turns.jsonl", call.turns_jsonl())
    return ws
