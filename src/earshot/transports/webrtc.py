"""The WebRTC transport (aiortc): a browser's microphone over Opus/RTP, the agent back.

One `WebRtcTransport` per call, on an `aiortc.RTCPeerConnection` that the browser offered
(``POST /rtc/offer``). ICE uses host candidates only (loopback or LAN, no STUN/TURN), media is
Opus, and the browser runs its own echo cancellation (``getUserMedia`` with
``echoCancellation: true``), so input frames carry no far-end reference.

* **Uplink.** The incoming track's 48 kHz frames (aiortc decodes Opus, with its own RTP jitter
  buffer) are resampled to 16 kHz and re-framed. RTP gives no capture time on the session
  clock, so ``capture_ms`` is *estimated* (`earshot.transports.capture_clock.CaptureClock`:
  the least-delayed frame's arrival − RTT/2 from the data-channel clock sync, contiguous after
  that, never after arrival); ``network_in`` is then RTT/2 plus whatever aiortc buffered.
  buffer is inside that estimate; there is no uplink jitter buffer term of our own.
* **Downlink.** `SessionAudioTrack` is the outgoing track: aiortc's sender calls its
  ``recv()``; each call waits for the next 20 ms tick on the session clock, pulls one frame
  from the session and hands it over at 48 kHz. When a reply's first frame goes out the page is
  told on the data channel (``response_start``), and it dates the first audible sample of that
  reply itself in the audio it plays (its own playout time).
* **Control.** The data channel ``control`` carries the same JSON messages as the WebSocket
  protocol (clock sync, playback reports, clear, transcripts, turns).
* **RTCP.** Round-trip time, jitter and loss from aiortc's ``getStats()`` once a second
  (`RtcStats`), kept for the call's report.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, samples_per_frame
from earshot.clock import Clock
from earshot.server import protocol as proto
from earshot.server.recording import TimelineRecorder
from earshot.transports.base import InputFrame, SessionPort
from earshot.transports.capture_clock import CaptureClock
from earshot.transports.clocksync import ClockEstimate, ClockSync, ClockSyncError, ProbeBook
from earshot.transports.websocket import playout_report

log = logging.getLogger(__name__)

RTC_RATE_HZ = 48_000


@dataclass(slots=True)
class RtcStats:
    """RTCP statistics of one call (latest values; ``None`` until reported).

    Attributes:
        rtt_ms: round trip from RTCP receiver reports on our outgoing stream.
        downlink_jitter_ms, downlink_lost: the browser's view of our stream (RTCP RR).
        uplink_jitter_ms, uplink_lost: our view of the browser's stream.
        samples: how many times stats were read.
    """

    rtt_ms: float | None = None
    downlink_jitter_ms: float | None = None
    downlink_lost: int | None = None
    uplink_jitter_ms: float | None = None
    uplink_lost: int | None = None
    samples: int = 0
    history: list[dict[str, float | None]] = field(default_factory=list)


class _Resampler:
    """Streaming resampler with a FIFO that hands out fixed-size int16 frames."""

    def __init__(self, from_hz: int, to_hz: int) -> None:
        import soxr

        self._rs = soxr.ResampleStream(from_hz, to_hz, 1, dtype="float32")
        self._fifo = np.zeros(0, np.float32)

    def push(self, pcm: Pcm16) -> None:
        out = self._rs.resample_chunk(pcm.astype(np.float32) / 32768.0)
        self._fifo = np.concatenate([self._fifo, out])

    def pop(self, num_samples: int) -> Pcm16 | None:
        if len(self._fifo) < num_samples:
            return None
        frame, self._fifo = self._fifo[:num_samples], self._fifo[num_samples:]
        return np.clip(np.round(frame * 32767.0), -32768, 32767).astype(np.int16)

    def pop_padded(self, num_samples: int) -> Pcm16:
        frame = self.pop(num_samples)
        if frame is None:
            have = self.pop(len(self._fifo)) if len(self._fifo) else np.zeros(0, np.int16)
            assert have is not None
            frame = np.concatenate([np.zeros(num_samples - len(have), np.int16), have])
        return frame


def _track_base() -> type[Any]:
    from aiortc.mediastreams import MediaStreamTrack

    return MediaStreamTrack


def make_session_track(transport: WebRtcTransport) -> Any:
    """The outgoing aiortc audio track that plays the session's output (see module doc)."""
    base = _track_base()

    class SessionAudioTrack(base):  # type: ignore[misc, valid-type]
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self._k = 0
            self._start_ms: float | None = None
            self._up = _Resampler(SAMPLE_RATE_HZ, RTC_RATE_HZ)

        async def recv(self) -> Any:
            import av

            t = transport
            frame_ms = 20
            if self._start_ms is None:
                self._start_ms = t.clock.now_ms()
            self._k += 1
            await t.clock.sleep_until_ms(self._start_ms + self._k * frame_ms)
            pcm16 = t.pull(samples_per_frame(frame_ms))
            self._up.push(pcm16)
            out = self._up.pop_padded(RTC_RATE_HZ * frame_ms // 1000)
            frame = av.AudioFrame.from_ndarray(out[None, :], format="s16", layout="mono")
            frame.sample_rate = RTC_RATE_HZ
            frame.pts = (self._k - 1) * len(out)
            frame.time_base = fractions.Fraction(1, RTC_RATE_HZ)
            return frame

    return SessionAudioTrack()


class WebRtcTransport:
    """See the module docstring.

    Args:
        pc: the call's ``RTCPeerConnection`` (remote description not yet set).
        clock: the call's session clock.
        call_id: sent in ``ready``.
        sync_interval_ms: clock-sync period.
        connect_timeout_ms: time allowed for the media and the data channel to arrive.
    """

    name = "webrtc"
    reports_device_playout = True

    def __init__(
        self,
        pc: Any,
        clock: Clock,
        call_id: str,
        *,
        frame_ms: int = 20,
        sync_interval_ms: float = 2_000.0,
        connect_timeout_ms: float = 15_000.0,
    ) -> None:
        self.pc = pc
        self.clock = clock
        self.call_id = call_id
        self.frame_ms = frame_ms
        self.frame_samples = samples_per_frame(frame_ms)
        self.sync = ClockSync()
        self._probes = ProbeBook(self.sync)
        self.sync_interval_ms = sync_interval_ms
        self.connect_timeout_ms = connect_timeout_ms
        self.stats = RtcStats()
        self.ended = ""
        self.recorder: TimelineRecorder | None = None
        """Set by the call to record both tracks (``conversation.wav``)."""
        self._channel: Any = None
        self._incoming: Any = None
        self._connected = asyncio.Event()
        self._closed = asyncio.Event()
        self._port: SessionPort | None = None
        self._cleared: set[int] = set()
        self._first_sent_ms: dict[int, float] = {}
        self.outgoing = make_session_track(self)
        pc.addTrack(self.outgoing)

        pc.on("datachannel", self._on_channel)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_state)

    def _on_channel(self, channel: Any) -> None:
        self._channel = channel
        channel.on("message", self._on_control)
        self._maybe_connected()

    def _on_track(self, track: Any) -> None:
        if track.kind == "audio" and self._incoming is None:
            self._incoming = track
            self._maybe_connected()

    def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self._closed.set()

    def _maybe_connected(self) -> None:
        if self._channel is not None and self._incoming is not None:
            self._connected.set()

    # -- Transport -------------------------------------------------------------------------

    def estimate(self) -> ClockEstimate | None:
        return self.sync.estimate(self.clock.now_ms())

    def send(self, msg: BaseModel) -> None:
        """Send a control message on the data channel (dropped if it is not open)."""
        ch = self._channel
        if ch is not None and ch.readyState == "open":
            ch.send(proto.dump(msg))

    def clear(self, response_id: int) -> None:
        if response_id not in self._cleared:
            self._cleared.add(response_id)
            self.send(proto.Clear(response_id=response_id))

    def pull(self, num_samples: int) -> Pcm16:
        """One output frame for the outgoing track (silence before the session runs)."""
        port = self._port
        if port is None:
            return np.zeros(num_samples, np.int16)
        out = port.pull_output(num_samples, self.clock.now_ms())
        if self.recorder is not None:
            self.recorder.agent(out.sent_ms, out.pcm)
        if out.response_id is not None and out.agent_samples > 0 and out.response_samples == 0:
            self._first_sent_ms.setdefault(out.response_id, out.sent_ms)
            self.send(proto.ResponseStart(response_id=out.response_id, sent_ms=out.sent_ms))
        return out.pcm

    async def run(self, port: SessionPort) -> None:
        try:
            await asyncio.wait_for(self._connected.wait(), self.connect_timeout_ms / 1000.0)
        except TimeoutError:
            self.ended = "no media or data channel arrived"
            return
        async with asyncio.TaskGroup() as tg:
            syncer = tg.create_task(self._syncer())
            poller = tg.create_task(self._poll_stats())
            await self._synced_first()
            self._port = port
            self.send(proto.Ready(call_id=self.call_id, codec="opus", frame_ms=self.frame_ms))
            reader = tg.create_task(self._read_track(port))
            closed = tg.create_task(self._closed.wait())
            await asyncio.wait({reader, closed}, return_when=asyncio.FIRST_COMPLETED)
            # After the caller's end: let pending replies play out (the port says when).
            deadline = self.clock.now_ms() + 20_000.0
            while not self._closed.is_set() and not port.idle and self.clock.now_ms() < deadline:
                await self.clock.sleep_ms(self.frame_ms)
            for task in (syncer, poller, reader, closed):
                task.cancel()
        self._port = None

    async def _synced_first(self) -> None:
        while self.sync.estimate(self.clock.now_ms()) is None and not self._closed.is_set():
            await self.clock.sleep_ms(10.0)

    async def _syncer(self) -> None:
        for _ in range(5):
            self._probe()
            await self.clock.sleep_ms(30.0)
        while True:
            await self.clock.sleep_ms(self.sync_interval_ms)
            self._probe()

    def _probe(self) -> None:
        probe_id, t0 = self._probes.probe(self.clock.now_ms())
        self.send(proto.Sync(id=probe_id, t0_ms=t0))

    def _on_control(self, message: Any) -> None:
        now = self.clock.now_ms()
        if not isinstance(message, str):
            self.ended = "binary data channel message"
            self._closed.set()
            return
        try:
            msg = proto.parse_client(message)
        except proto.ProtocolError as exc:
            self.send(proto.ErrorMsg(code="bad_message", message=str(exc)))
            self.ended = str(exc)
            self._closed.set()
            return
        match msg:
            case proto.SyncReply():
                with contextlib.suppress(ClockSyncError):
                    self._probes.reply(msg.id, msg.t0_ms, msg.t1_ms, msg.t2_ms, now)
            case proto.Playback():
                est = self.estimate()
                if est is None or self._port is None:
                    return
                self._port.report_playout(
                    playout_report(msg, est, self._first_sent_ms.get(msg.response_id))
                )
            case proto.End():
                self.ended = "end"
                self._closed.set()
            case _:
                pass

    async def _read_track(self, port: SessionPort) -> None:
        from aiortc.mediastreams import MediaStreamError

        down = _Resampler(RTC_RATE_HZ, SAMPLE_RATE_HZ)
        stamps = CaptureClock(float(self.frame_ms))
        while True:
            try:
                frame = await self._incoming.recv()
            except MediaStreamError:
                return
            now = self.clock.now_ms()
            audio = frame.to_ndarray()
            channels = len(frame.layout.channels)
            mono = audio.reshape(-1)[::channels] if audio.shape[0] == 1 else audio[0]
            if frame.sample_rate != RTC_RATE_HZ:
                self.ended = f"unexpected RTP audio rate {frame.sample_rate} Hz"
                return
            down.push(mono.astype(np.int16))
            est = self.estimate()
            bound = est.error_bound_ms if est is not None else 0.0
            one_way = est.rtt_ms / 2.0 if est is not None else 0.0
            while (pcm := down.pop(self.frame_samples)) is not None:
                capture_ms = stamps.stamp(now, one_way)
                if self.recorder is not None:
                    self.recorder.user(capture_ms, pcm)
                port.push_input(
                    InputFrame(
                        pcm=pcm,
                        capture_ms=capture_ms,
                        arrival_ms=now,
                        release_ms=now,
                        sync_error_ms=bound,
                    )
                )

    async def _poll_stats(self) -> None:
        while True:
            await self.clock.sleep_ms(1_000.0)
            try:
                report = await self.pc.getStats()
            except Exception:  # stats are diagnostics; a failed read is skipped
                continue
            self._take_stats(report)

    def _take_stats(self, report: Any) -> None:
        s = self.stats
        for stat in report.values():
            kind = getattr(stat, "type", "")
            if kind == "remote-inbound-rtp":
                rtt = getattr(stat, "roundTripTime", None)
                s.rtt_ms = None if rtt is None else float(rtt) * 1000.0
                s.downlink_jitter_ms = float(stat.jitter) * 1000.0 / RTC_RATE_HZ
                s.downlink_lost = int(stat.packetsLost)
            elif kind == "inbound-rtp":
                s.uplink_jitter_ms = float(stat.jitter) * 1000.0 / RTC_RATE_HZ
                s.uplink_lost = int(stat.packetsLost)
        s.samples += 1
        if len(s.history) < 3600:
            s.history.append(
                {
                    "rtt_ms": s.rtt_ms,
                    "uplink_jitter_ms": s.uplink_jitter_ms,
                    "downlink_jitter_ms": s.downlink_jitter_ms,
                }
            )

    def stats_json(self) -> str:
        """The RTCP figures for the call's report (JSON)."""
        s = self.stats
        return json.dumps(
            {
                "rtt_ms": s.rtt_ms,
                "uplink_jitter_ms": s.uplink_jitter_ms,
                "uplink_lost": s.uplink_lost,
                "downlink_jitter_ms": s.downlink_jitter_ms,
                "downlink_lost": s.downlink_lost,
                "samples": s.samples,
            }
        )
