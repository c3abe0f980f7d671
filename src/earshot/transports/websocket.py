"""The WebSocket transport: a live caller's frames over a socket, playout reported back.

One `WebSocketTransport` per call, on an open aiohttp WebSocket (``earshot serve``'s ``/ws``;
the client side is `earshot.server.client`). The wire protocol is `earshot.server.protocol`
(``docs/websocket.md``). What it does each call:

* **Clock sync.** Before audio flows, and every ``sync_interval_ms`` after, it sends ``sync``
  probes and feeds the replies to `earshot.transports.clocksync.ClockSync`; every client time
  (capture stamps, playback reports) is mapped onto the session clock with the current
  estimate and carries its error bound.
* **Uplink.** Binary audio frames go through the `AdaptiveJitterBuffer`; once per frame tick
  the frames due are decoded (PCM16, or Opus with libopus PLC for lost packets; lost PCM frames
  are concealed with `conceal_pcm`) and pushed to the session as `InputFrame` with
  ``capture_ms`` (client stamp through sync), ``arrival_ms`` and ``release_ms``.
* **Downlink.** Once per frame tick it pulls one output frame from the session; frames that
  carry agent audio are sent (silence is not), tagged with response id and sample position.
* **Playout truth.** ``playback`` messages become `PlayoutReport` (heard start, first
  receipt, played samples); `clear` sends ``clear`` so the client stops a reply at once.

A malformed, oversized or out-of-order message ends this call with an ``error`` message naming
the problem; a client that vanishes ends it quietly. Neither raises out of `run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from aiohttp import WSMsgType, web
from pydantic import BaseModel

from earshot.audio.frames import Pcm16, samples_per_frame
from earshot.clock import Clock
from earshot.server import protocol as proto
from earshot.server.recording import TimelineRecorder
from earshot.transports.base import InputFrame, PlayoutReport, SessionPort
from earshot.transports.clocksync import ClockEstimate, ClockSync, ClockSyncError, ProbeBook
from earshot.transports.opus import OpusDecoder, OpusEncoder
from earshot.transports.uplink import AdaptiveJitterBuffer, UplinkStats, conceal_pcm

log = logging.getLogger(__name__)

INITIAL_SYNC_PROBES = 5
OUTGOING_QUEUE_LIMIT = 2_000
"""Control + audio messages waiting to be written; a client this far behind is not reading."""


@dataclass(slots=True)
class _Packet:
    payload: bytes
    capture_client_ms: float


class LatenessStats:
    """Frame-tick lateness (ms) in a fixed histogram: bounded memory for any call length.

    Bins are 1 ms wide up to 1 s (later ticks go in the last bin), enough for p50/p99.
    """

    def __init__(self, max_ms: int = 1000) -> None:
        self.counts = np.zeros(max_ms + 1, dtype=np.int64)
        self.n = 0
        self.max_ms = 0.0

    def add(self, lateness_ms: float) -> None:
        v = max(0.0, lateness_ms)
        self.counts[min(int(v), len(self.counts) - 1)] += 1
        self.n += 1
        self.max_ms = max(self.max_ms, v)

    def merge(self, other: LatenessStats) -> None:
        self.counts += other.counts
        self.n += other.n
        self.max_ms = max(self.max_ms, other.max_ms)

    def quantile_ms(self, q: float) -> float:
        """Upper edge of the bin holding quantile ``q`` (0–1); 0 with no ticks."""
        if self.n == 0:
            return 0.0
        idx = int(np.searchsorted(np.cumsum(self.counts), q * self.n))
        return float(idx + 1)


@dataclass(frozen=True, slots=True)
class CallEnd:
    """Why `WebSocketTransport.run` returned.

    Attributes:
        reason: ``"end"`` (the caller said so), ``"closed"`` (the socket closed or vanished),
            ``"error"`` (a protocol violation; ``message`` says which), ``"stalled"``.
    """

    reason: str
    message: str = ""
    code: str = "bad_message"


class WebSocketTransport:
    """See the module docstring.

    Args:
        ws: a prepared ``aiohttp.web.WebSocketResponse`` whose ``hello`` has been read.
        clock: the call's session clock.
        hello: the client's hello.
        call_id: sent in ``ready``.
        sync_interval_ms: clock-sync period after the initial burst.
        stall_timeout_ms: no audio for this long ends the call.
        end_tail_ms: after ``end``, how long to keep playing pending replies.
        on_ready: called once the call is ready (clock synced), with the first estimate.
        max_message_bytes: a larger message ends the call with ``too_large``.
    """

    name = "websocket"
    reports_device_playout = True

    def __init__(
        self,
        ws: web.WebSocketResponse,
        clock: Clock,
        hello: proto.Hello,
        call_id: str,
        *,
        sync_interval_ms: float = 2_000.0,
        stall_timeout_ms: float = 10_000.0,
        end_tail_ms: float = 20_000.0,
        on_ready: Callable[[ClockEstimate], None] | None = None,
        max_message_bytes: int = 64 * 1024,
    ) -> None:
        self.ws = ws
        self.clock = clock
        self.hello = hello
        self.call_id = call_id
        self.frame_ms = hello.frame_ms
        self.frame_samples = samples_per_frame(hello.frame_ms)
        self.codec = proto.CODECS[hello.codec]
        self.sync = ClockSync()
        self.uplink: AdaptiveJitterBuffer[_Packet] = AdaptiveJitterBuffer(float(hello.frame_ms))
        self.sync_interval_ms = sync_interval_ms
        self.stall_timeout_ms = stall_timeout_ms
        self.end_tail_ms = end_tail_ms
        self.on_ready = on_ready
        self.max_message_bytes = max_message_bytes
        self.ended: CallEnd | None = None
        self.recorder: TimelineRecorder | None = None
        """Set by the call to record both tracks (``conversation.wav``)."""
        self.tick_lateness = LatenessStats()
        """How late each frame tick ran (ms): the server's own contribution to frame timing."""
        self._out: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self._probes = ProbeBook(self.sync)
        self._synced = asyncio.Event()
        self._end = asyncio.Event()
        self._input_done = False
        self._last_audio_ms = 0.0
        self._last_pcm: Pcm16 | None = None
        self._lost_run = 0
        self._last_capture_ms: float | None = None
        self._down_seq = 0
        self._cleared: set[int] = set()
        self._first_sent_ms: dict[int, float] = {}
        self._decoder = OpusDecoder(hello.frame_ms) if self.codec == proto.CODEC_OPUS else None
        self._encoder = OpusEncoder(hello.frame_ms) if self.codec == proto.CODEC_OPUS else None

    # -- Transport -------------------------------------------------------------------------

    @property
    def uplink_stats(self) -> UplinkStats:
        return self.uplink.stats

    def estimate(self) -> ClockEstimate | None:
        """The current clock-sync estimate (None before the first reply)."""
        return self.sync.estimate(self.clock.now_ms())

    def clear(self, response_id: int) -> None:
        if response_id in self._cleared:
            return
        self._cleared.add(response_id)
        self.send(proto.Clear(response_id=response_id))

    def send(self, msg: BaseModel) -> None:
        """Queue a control message for the client (non-blocking; dropped after the call)."""
        if self.ended is None or self.ended.reason == "end":
            self._enqueue(proto.dump(msg))

    def _enqueue(self, item: str | bytes) -> None:
        if self._out.qsize() >= OUTGOING_QUEUE_LIMIT:
            self._finish(CallEnd("error", "client is not reading: outgoing queue full"))
            return
        self._out.put_nowait(item)

    async def run(self, port: SessionPort) -> None:
        """Pump the call until the caller ends, hangs up, breaks the protocol, or stalls."""
        async with asyncio.TaskGroup() as tg:
            writer = tg.create_task(self._writer())
            syncer = tg.create_task(self._syncer())
            ticker = tg.create_task(self._ticker(port))
            reader = tg.create_task(self._reader(port))
            try:
                await self._end.wait()
                if self.ended is not None and self.ended.reason == "end":
                    await self._drain(port)  # the reader goes on taking playback reports
            finally:
                for task in (syncer, ticker, reader):
                    task.cancel()
                if self.ended is not None and self.ended.reason == "error":
                    self._out.put_nowait(
                        proto.dump(proto.ErrorMsg(code=self.ended.code, message=self.ended.message))
                    )
                self._out.put_nowait(None)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(writer), 2.0)
                writer.cancel()

    async def _drain(self, port: SessionPort) -> None:
        """After ``end``: flush the uplink, then let pending replies play and be reported."""
        deadline = self.clock.now_ms() + self.end_tail_ms
        for r in self.uplink.flush(self.clock.now_ms()):
            self._push(port, r.payload, r.arrival_ms, r.release_ms, r.seq)
        self._input_done = True
        while not port.idle and self.clock.now_ms() < deadline and not self.ws.closed:
            await self.clock.sleep_ms(self.frame_ms)

    def _finish(self, end: CallEnd) -> None:
        self._end.set()
        if self.ended is None:
            self.ended = end
            if end.reason == "error":
                log.info("call %s: %s", self.call_id, end.message)

    # -- reading ---------------------------------------------------------------------------

    async def _reader(self, port: SessionPort) -> None:
        pcm_bytes = self.frame_samples * 2
        async for msg in self.ws:
            now = self.clock.now_ms()
            if msg.type in (WSMsgType.BINARY, WSMsgType.TEXT) and (
                len(msg.data) > self.max_message_bytes
            ):
                self._finish(
                    CallEnd(
                        "error",
                        f"message of {len(msg.data)} bytes is over this server's limit of "
                        f"{self.max_message_bytes} bytes (one audio frame is under 1 KiB)",
                        "too_large",
                    )
                )
                return
            try:
                if msg.type == WSMsgType.BINARY:
                    self._on_audio(proto.unpack_uplink(msg.data, self.codec, pcm_bytes), now)
                elif msg.type == WSMsgType.TEXT:
                    self._on_control(port, proto.parse_client(msg.data), now)
                elif msg.type == WSMsgType.ERROR:
                    self._finish(
                        CallEnd("error", f"message refused: {self.ws.exception()}", "too_large")
                    )
                    return
            except proto.ProtocolError as exc:
                self._finish(CallEnd("error", str(exc)))
                return
            if self.ended is not None and self.ended.reason != "end":
                return
        close = self.ws.close_code
        if close == 1009:  # aiohttp closed it: message too big
            self._finish(CallEnd("error", "message larger than the server accepts", "too_large"))
        self._finish(CallEnd("closed"))

    def _on_audio(self, audio: proto.UplinkAudio, now_ms: float) -> None:
        if not self._synced.is_set():
            raise proto.ProtocolError("audio before 'ready': wait for the ready message")
        if self._input_done:
            raise proto.ProtocolError("audio after 'end'")
        self._last_audio_ms = now_ms
        self.uplink.push(audio.seq, _Packet(audio.payload, audio.capture_ms), now_ms)

    def _on_control(
        self,
        port: SessionPort,
        msg: proto.Hello | proto.SyncReply | proto.Playback | proto.End,
        now_ms: float,
    ) -> None:
        match msg:
            case proto.SyncReply():
                try:
                    self._probes.reply(msg.id, msg.t0_ms, msg.t1_ms, msg.t2_ms, now_ms)
                except ClockSyncError as exc:
                    raise proto.ProtocolError(str(exc)) from None
            case proto.Playback():
                est = self.estimate()
                if est is None:
                    raise proto.ProtocolError("playback before 'ready'")
                port.report_playout(
                    playout_report(msg, est, self._first_sent_ms.get(msg.response_id))
                )
            case proto.End():
                self._finish(CallEnd("end"))
            case proto.Hello():
                raise proto.ProtocolError("a second hello in one call")

    # -- periodic work ---------------------------------------------------------------------

    async def _syncer(self) -> None:
        for _ in range(INITIAL_SYNC_PROBES):
            self._probe()
            await self.clock.sleep_ms(30.0)
        while self.sync.estimate(self.clock.now_ms()) is None:
            await self.clock.sleep_ms(10.0)
        self._synced.set()
        est = self.estimate()
        assert est is not None
        if self.on_ready is not None:
            self.on_ready(est)
        self.send(proto.Ready(call_id=self.call_id, codec=self.hello.codec, frame_ms=self.frame_ms))
        self._last_audio_ms = self.clock.now_ms()
        while True:
            await self.clock.sleep_ms(self.sync_interval_ms)
            self._probe()

    def _probe(self) -> None:
        probe_id, t0 = self._probes.probe(self.clock.now_ms())
        self._enqueue(proto.dump(proto.Sync(id=probe_id, t0_ms=t0)))

    async def _ticker(self, port: SessionPort) -> None:
        await self._synced.wait()
        start = self.clock.now_ms()
        k = 0
        while True:
            k += 1
            due = start + k * self.frame_ms
            await self.clock.sleep_until_ms(due)
            now = self.clock.now_ms()
            self.tick_lateness.add(now - due)
            if not self._input_done:
                for r in self.uplink.pop_due(now):
                    self._push(port, r.payload, r.arrival_ms, r.release_ms, r.seq)
                if now - self._last_audio_ms > self.stall_timeout_ms:
                    self._finish(CallEnd("stalled", f"no audio for {self.stall_timeout_ms:.0f} ms"))
                    await self.ws.close()
                    return
            out = port.pull_output(self.frame_samples, now)
            if self.recorder is not None:
                self.recorder.agent(out.sent_ms, out.pcm)
            if out.response_id is not None and out.agent_samples > 0:
                self._send_audio(out.pcm, out.response_id, out.response_samples, out.sent_ms)

    def _push(
        self,
        port: SessionPort,
        packet: _Packet | None,
        arrival_ms: float | None,
        release_ms: float,
        seq: int = 0,
    ) -> None:
        est = self.estimate()
        assert est is not None
        if packet is None:
            self._lost_run += 1
            pcm = (
                self._decoder.decode(None)
                if self._decoder is not None
                else conceal_pcm(self._last_pcm, self.frame_samples, self._lost_run)
            )
            base = self._last_capture_ms
            capture = (base + self.frame_ms) if base is not None else release_ms - self.frame_ms
            nominal = self.uplink.nominal_arrival_ms(seq)
            arrival = min(release_ms, nominal) if nominal is not None else release_ms
            arrival = max(arrival, capture + self.frame_ms)
        else:
            self._lost_run = 0
            if self._decoder is not None:
                try:
                    pcm = self._decoder.decode(packet.payload)
                except ValueError as exc:
                    self._finish(CallEnd("error", str(exc)))
                    return
            else:
                pcm = np.frombuffer(packet.payload, dtype="<i2").astype(np.int16)
            arrival = arrival_ms if arrival_ms is not None else release_ms
            # Causality: a frame cannot arrive before it was captured; a mapped capture time
            # past that is sync error, and the bound is the nearer value to the truth.
            capture = min(est.to_session_ms(packet.capture_client_ms), arrival - self.frame_ms)
        self._last_pcm = pcm
        self._last_capture_ms = capture
        if self.recorder is not None:
            self.recorder.user(capture, pcm)
        port.push_input(
            InputFrame(
                pcm=pcm,
                capture_ms=capture,
                arrival_ms=arrival,
                release_ms=release_ms,
                concealed=packet is None,
                sync_error_ms=est.error_bound_ms,
            )
        )

    def _send_audio(self, pcm: Pcm16, response_id: int, position: int, sent_ms: float) -> None:
        if response_id in self._cleared:
            return
        self._first_sent_ms.setdefault(response_id, sent_ms)
        payload = self._encoder.encode(pcm) if self._encoder is not None else pcm.tobytes()
        self._enqueue(
            proto.pack_downlink(
                self.codec, position == 0, self._down_seq, response_id, position, sent_ms, payload
            )
        )
        self._down_seq += 1

    async def _writer(self) -> None:
        while (item := await self._out.get()) is not None:
            if self.ws.closed:
                continue
            try:
                if isinstance(item, bytes):
                    await self.ws.send_bytes(item)
                else:
                    await self.ws.send_str(item)
            except (ConnectionResetError, RuntimeError):
                self._finish(CallEnd("closed"))


def playout_report(
    msg: proto.Playback, est: ClockEstimate, first_sent_ms: float | None
) -> PlayoutReport:
    """A client's ``playback`` message on the session clock.

    Client times are mapped with the clock-sync estimate, then held to causality: the first
    audio cannot be received before the server sent it, nor played before it was received.
    When sync error would put a mapped time on the wrong side of such a bound, the bound is
    closer to the truth (the true time satisfies it and the mapping is within the error).
    """
    received = None if msg.first_received_ms is None else est.to_session_ms(msg.first_received_ms)
    if received is not None and first_sent_ms is not None:
        received = max(received, first_sent_ms)
    first = None if msg.first_sample_ms is None else est.to_session_ms(msg.first_sample_ms)
    if first is not None and received is not None:
        first = max(first, received)
    return PlayoutReport(
        response_id=msg.response_id,
        played_samples=msg.played_samples,
        at_ms=est.to_session_ms(msg.at_ms),
        first_sample_ms=first,
        first_received_ms=received,
        client_ms=msg.at_ms,
        sync_error_ms=est.error_bound_ms,
    )
