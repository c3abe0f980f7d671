"""The Twilio Media Streams transport: a phone call's audio over Twilio's WebSocket.

Twilio connects to earshot (TwiML ``<Connect><Stream url="wss://.../twilio/media"/>``) and
exchanges JSON text frames, each with an ``event``:

* inbound (Twilio → earshot): ``connected``; ``start`` (``streamSid``, ``callSid``,
  ``mediaFormat`` = ``audio/x-mulaw``, 8000 Hz, mono); ``media`` (``payload``: base64 G.711
  µ-law at 8 kHz, 20 ms a message); ``mark`` (a mark earshot sent, echoed once the audio before
  it has played); ``dtmf`` (ignored); ``stop`` (the call ended);
* outbound (earshot → Twilio): ``media`` (base64 µ-law 8 kHz), ``mark`` (a name), ``clear``
  (drop the audio Twilio has buffered and not yet played).

What `TwilioTransport.run` does: inbound media is decoded (`earshot.audio.g711`, bit-exact),
resampled 8 → 16 kHz (soxr) and pushed to the session in frames; once per frame tick it pulls
one output frame and, if it carries agent audio, sends it (16 → 8 kHz, µ-law) followed by a
mark named ``<response id>:<samples>`` (how far into that reply the frame reaches). Twilio's
echo of a mark is the played position: it becomes a `PlayoutReport`, so heard words follow
what the phone line got. `TwilioTransport.clear` (barge-in) sends ``clear``; marks of that
reply echoed afterwards are not counted as played (Twilio returns queued marks on clear).
Both resamplers use soxr's quick (cubic) quality, frame by frame: its higher qualities hold up
to 100 ms in blocks, which would delay the reply and put each mark ahead of its audio.

Timing: a media message's capture time is its place in the stream (20 ms each) from the
first one's arrival, so ``network_in`` is only the jitter of later arrivals; the first sample
of a reply played is its first mark's echo minus that frame's duration (±1 frame). The PSTN
leg between Twilio and the handset is invisible here; `TwilioTransport.description` states
the labelled assumption (`PSTN_RANGE_MS`), which is never added to the measured terms.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
from aiohttp import WSMessage, WSMsgType, web
from pydantic import BaseModel, ConfigDict, ValidationError

from earshot.audio import g711
from earshot.audio.frames import samples_per_frame, samples_to_ms
from earshot.clock import Clock
from earshot.transports.base import InputFrame, PlayoutReport, SessionPort
from earshot.transports.phone_network import PSTN_RANGE_MS

log = logging.getLogger(__name__)

BACKLOG_GAP_MS = 5.0
"""Messages closer together than this when the transport starts were waiting in the socket."""
MAX_BACKLOG_MESSAGES = 3000
"""At most this many waiting messages (60 s of 20 ms media) are counted as backlog."""


@dataclass(frozen=True, slots=True)
class TwilioOptions:
    """Settings of the Twilio endpoint.

    Attributes:
        pstn_assumed_ms: assumed one-way latency of the PSTN leg (Twilio ↔ handset), stated in
            the report beside the measured terms and never added to them. Default 150 ms, the
            low end of the published 150–700 ms.
        stall_timeout_ms: no media for this long ends the call.
    """

    pstn_assumed_ms: float = PSTN_RANGE_MS[0]
    stall_timeout_ms: float = 10_000.0


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class MediaFormat(_Lenient):
    encoding: str
    sampleRate: int
    channels: int = 1


class StartInfo(_Lenient):
    streamSid: str
    callSid: str = ""
    mediaFormat: MediaFormat


class MediaInfo(_Lenient):
    payload: str
    track: str = "inbound"


class MarkInfo(_Lenient):
    name: str


class TwilioMessageError(ValueError):
    """An inbound message that is not Media Streams; the message says what is wrong."""


def parse_inbound(raw: str | bytes) -> tuple[str, StartInfo | MediaInfo | MarkInfo | None]:
    """One inbound text frame → (event name, its payload model; None for events without one).

    Raises:
        TwilioMessageError: not JSON, no known ``event``, or a payload of the wrong shape.
    """
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise TwilioMessageError(f"not JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise TwilioMessageError("a Media Streams message is a JSON object")
    kind = data.get("event")
    models: dict[str, type[StartInfo] | type[MediaInfo] | type[MarkInfo]] = {
        "start": StartInfo,
        "media": MediaInfo,
        "mark": MarkInfo,
    }
    if kind in ("connected", "stop", "dtmf"):
        return kind, None
    if kind not in models:
        raise TwilioMessageError(f"unknown event {kind!r}")
    try:
        return kind, models[kind].model_validate(data.get(kind))
    except ValidationError as exc:
        raise TwilioMessageError(f"bad {kind!r} message: {exc.errors()[0]['msg']}") from None


@dataclass(slots=True)
class MarkBook:
    """Which reply audio Twilio has confirmed played, from the marks sent and echoed (pure).

    ``first_sample_ms`` per reply: the first echo's time minus the audio its mark covered,
    never before the reply's first audio was sent.
    """

    sent: dict[int, int] = field(default_factory=dict)
    first_sent_ms: dict[int, float] = field(default_factory=dict)
    played: dict[int, int] = field(default_factory=dict)
    first_sample_ms: dict[int, float] = field(default_factory=dict)
    cleared: set[int] = field(default_factory=set)

    def name(self, response_id: int, end_samples: int, sent_ms: float) -> str:
        """A mark's name after a frame reaching ``end_samples`` into the reply, sent at
        ``sent_ms``."""
        self.first_sent_ms.setdefault(response_id, sent_ms)
        self.sent[response_id] = max(self.sent.get(response_id, 0), end_samples)
        return f"{response_id}:{end_samples}"

    def echo(self, name: str, now_ms: float) -> PlayoutReport | None:
        """A mark came back at ``now_ms``: the report it means (None if it means nothing).

        Raises:
            TwilioMessageError: a mark earshot did not send.
        """
        rid_text, _, samples_text = name.partition(":")
        if not (rid_text.isdigit() and samples_text.isdigit()):
            raise TwilioMessageError(f"mark {name!r} was not sent by earshot")
        rid, samples = int(rid_text), int(samples_text)
        if rid not in self.sent or samples > self.sent[rid]:
            raise TwilioMessageError(f"mark {name!r} was not sent by earshot")
        if rid in self.cleared:
            return None  # echoed after our clear: that audio was dropped, not played
        if rid not in self.first_sample_ms:
            estimate = now_ms - samples_to_ms(samples)
            self.first_sample_ms[rid] = max(estimate, self.first_sent_ms[rid])
        if samples <= self.played.get(rid, 0):
            return None
        self.played[rid] = samples
        return PlayoutReport(rid, samples, now_ms, first_sample_ms=self.first_sample_ms[rid])

    def outstanding(self, response_id: int) -> bool:
        """Audio of this reply was sent and not yet confirmed played."""
        return self.played.get(response_id, 0) < self.sent.get(response_id, 0)


class TwilioTransport:
    """One Twilio Media Stream as a `earshot.transports.base.Transport` (see module docstring).

    Args:
        ws: the prepared aiohttp WebSocket Twilio connected.
        clock: the call's session clock.
        frame_ms: the session's frame size.
        options: PSTN assumption and stall time-out.
    """

    name = "twilio"
    reports_device_playout = True

    def __init__(
        self,
        ws: web.WebSocketResponse,
        clock: Clock,
        frame_ms: int = 20,
        options: TwilioOptions | None = None,
    ) -> None:
        import soxr

        self.ws = ws
        self.clock = clock
        self.frame_ms = frame_ms
        self.frame_samples = samples_per_frame(frame_ms)
        self.options = options or TwilioOptions()
        self.marks = MarkBook()
        self.stream_sid: str | None = None
        self.call_sid = ""
        self.bad_messages = 0
        self.media_in = 0
        self._soxr = soxr
        self._up = soxr.ResampleStream(8000, 16000, 1, dtype="int16", quality="QQ")
        self._down = soxr.ResampleStream(16000, 8000, 1, dtype="int16", quality="QQ")
        self._carry = np.zeros(0, dtype=np.int16)
        self._base_ms: float | None = None
        self._run_ms: float | None = None
        self._backlog_ms = 0.0
        self._frames_in = 0
        self._late_ms = 0.0
        self._last_media_ms = 0.0
        self._started = asyncio.Event()
        self._out: asyncio.Queue[str | None] = asyncio.Queue()

    @property
    def description(self) -> str:
        """The report's line for this transport: what is measured and what is assumed."""
        low, high = PSTN_RANGE_MS
        return (
            "Twilio Media Streams (G.711 µ-law 8 kHz): heard position and heard_start from "
            "Twilio's mark echoes (Twilio's media edge, ±1 frame); network_in = arrival jitter "
            "against the stream's 20 ms schedule. NOT measured: the PSTN leg between Twilio and "
            f"the handset, ASSUMED {self.options.pstn_assumed_ms:.0f} ms each way (published "
            f"range {low:.0f}–{high:.0f} ms, T. Pan, 'Voice AI in Production'), not included in "
            "any term or TTFAT"
        )

    def report_facts(self) -> dict[str, str]:
        """Per-call facts for the report."""
        assumed = self.options.pstn_assumed_ms
        return {
            "Twilio stream": f"{self.stream_sid} (call {self.call_sid or '?'}), "
            f"{self.media_in} media messages in, {self.bad_messages} malformed ignored",
            "PSTN assumption": f"{assumed:.0f} ms each way, labelled, not added: TTFAT at the "
            f"handset ≈ reported TTFAT + {2 * assumed:.0f} ms",
        }

    # -- Transport -------------------------------------------------------------------------

    def clear(self, response_id: int) -> None:
        if response_id in self.marks.cleared:
            return
        self.marks.cleared.add(response_id)
        if self.marks.sent.get(response_id):
            self._send({"event": "clear"})
        self._down = self._soxr.ResampleStream(16000, 8000, 1, dtype="int16", quality="QQ")

    async def run(self, port: SessionPort) -> None:
        """Pump the stream until ``stop``, a disconnect or a stall (never raises for them)."""
        async with asyncio.TaskGroup() as tg:
            writer = tg.create_task(self._writer())
            ticker = tg.create_task(self._ticker(port))
            try:
                await self._reader(port)
            finally:
                ticker.cancel()
                self._out.put_nowait(None)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(writer), 2.0)
                writer.cancel()

    # -- inbound ---------------------------------------------------------------------------

    async def _reader(self, port: SessionPort) -> None:
        waiting = await self._drain_backlog()
        self._run_ms = self.clock.now_ms()

        async def messages() -> AsyncIterator[WSMessage]:
            for msg in waiting:
                yield msg
            async for msg in self.ws:
                yield msg

        async for msg in messages():
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                return
            now = self.clock.now_ms()
            try:
                kind, body = parse_inbound(msg.data)
                match body:
                    case StartInfo():
                        self._start(body)
                    case MediaInfo():
                        self._media(port, body, now)
                    case MarkInfo():
                        report = self.marks.echo(body.name, now)
                        if report is not None:
                            port.report_playout(report)
                    case None if kind == "stop":
                        return
            except (TwilioMessageError, ValueError) as exc:
                self.bad_messages += 1
                log.warning("twilio %s: ignored a message: %s", self.stream_sid, exc)

    def _start(self, start: StartInfo) -> None:
        fmt = start.mediaFormat
        if (fmt.encoding, fmt.sampleRate, fmt.channels) != ("audio/x-mulaw", 8000, 1):
            raise TwilioMessageError(
                f"media format {fmt.encoding} {fmt.sampleRate} Hz x{fmt.channels} unsupported; "
                "Media Streams sends audio/x-mulaw 8000 Hz mono"
            )
        self.stream_sid, self.call_sid = start.streamSid, start.callSid
        self._last_media_ms = self.clock.now_ms()
        self._started.set()

    def _media(self, port: SessionPort, media: MediaInfo, now_ms: float) -> None:
        if self.stream_sid is None:
            raise TwilioMessageError("media before start")
        if media.track not in ("inbound", "inbound_track"):
            return
        ulaw = base64.b64decode(media.payload, validate=True)
        self.media_in += 1
        self._last_media_ms = now_ms
        pcm = np.asarray(self._up.resample_chunk(g711.ulaw2lin(ulaw)), dtype=np.int16)
        audio = np.concatenate([self._carry, pcm]) if self._carry.size else pcm
        n = self.frame_samples
        whole = len(audio) // n * n
        self._carry = audio[whole:].copy()
        for start in range(0, whole, n):
            if self._base_ms is None:
                self._base_ms = self._capture_base(now_ms)
            capture = self._base_ms + self._frames_in * self.frame_ms
            self._frames_in += 1
            self._late_ms = max(self._late_ms, now_ms - (capture + self.frame_ms))
            port.push_input(
                InputFrame(
                    pcm=audio[start : start + n],
                    capture_ms=capture,
                    arrival_ms=max(now_ms, capture + self.frame_ms),
                    sync_error_ms=self._late_ms,
                )
            )

    def _capture_base(self, first_arrival_ms: float) -> float:
        """Session time of the stream's first sample: the audio that was waiting in the
        socket when the transport started (`_drain_backlog`) ends now; with no backlog the
        first frame was captured one frame before it arrived."""
        if self._backlog_ms > 0.0 and self._run_ms is not None:
            return self._run_ms - self._backlog_ms
        return first_arrival_ms - self.frame_ms

    async def _drain_backlog(self) -> list[WSMessage]:
        """The messages already waiting in the socket when the transport starts.

        Twilio streams in real time from the moment the socket opens; while the call's models
        load, its media waits in the socket and then comes in a burst. Dating the stream from
        that burst would put every later frame's capture after its arrival (and speech_end
        after end_of_turn), so the waiting audio is counted first and dated into the past.
        """
        waiting: list[WSMessage] = []
        while len(waiting) < MAX_BACKLOG_MESSAGES:
            try:
                msg = await self.ws.receive(timeout=BACKLOG_GAP_MS / 1000.0)
            except TimeoutError:
                return waiting
            waiting.append(msg)
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                return waiting
            with contextlib.suppress(TwilioMessageError, ValueError):
                _kind, body = parse_inbound(msg.data)
                if isinstance(body, MediaInfo):
                    ulaw_bytes = len(body.payload) * 3 // 4 - body.payload.count("=")
                    self._backlog_ms += ulaw_bytes / 8.0  # µ-law at 8 kHz: 8 bytes per ms
        return waiting

    # -- outbound --------------------------------------------------------------------------

    async def _ticker(self, port: SessionPort) -> None:
        await self._started.wait()
        start = self.clock.now_ms()
        k = 0
        while True:
            k += 1
            await self.clock.sleep_until_ms(start + k * self.frame_ms)
            now = self.clock.now_ms()
            if now - self._last_media_ms > self.options.stall_timeout_ms:
                log.info(
                    "twilio %s: no media for %.0f ms", self.stream_sid, now - self._last_media_ms
                )
                await self.ws.close()
                return
            out = port.pull_output(self.frame_samples, now)
            rid = out.response_id
            if rid is None or out.agent_samples == 0 or rid in self.marks.cleared:
                continue
            pcm8 = np.asarray(self._down.resample_chunk(out.pcm[: out.agent_samples]), np.int16)
            if pcm8.size:
                payload = base64.b64encode(g711.lin2ulaw(pcm8)).decode("ascii")
                self._send({"event": "media", "media": {"payload": payload}})
            end = out.response_samples + out.agent_samples
            self._send({"event": "mark", "mark": {"name": self.marks.name(rid, end, now)}})

    def _send(self, body: dict[str, object]) -> None:
        self._out.put_nowait(json.dumps({**body, "streamSid": self.stream_sid}))

    async def _writer(self) -> None:
        while (text := await self._out.get()) is not None:
            if self.ws.closed:
                continue
            try:
                await self.ws.send_str(text)
            except (ConnectionResetError, RuntimeError):
                return
