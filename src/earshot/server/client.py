"""A WebSocket caller: streams a recording in real time, plays the agent, reports playout.

`CallClient` is the protocol's reference client (``docs/websocket.md``) and what
``earshot call`` and ``earshot loadtest`` run. It simulates the network between caller and
server with `NetConditions`: every message in both directions is held for ``delay_ms`` plus a
uniform ``[0, jitter_ms)`` extra, in order (as on one TCP connection), and each audio frame is
lost with probability ``loss`` (control messages never are). The clock-sync exchange crosses
the same simulated network, so the server measures the delay it adds.

"Playing" the agent is simulated: the client schedules each reply's frames on its own clock
(``lead_ms`` after the first one arrives, contiguous after that; this is the client playout
delay) and records them at those times, as a sound card with zero output latency would play
them. Playback reports say exactly what was played by when.

All times are ms on the client's `Clock`; ``t = 0`` is when the call connected.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, samples_per_frame
from earshot.clock import Clock
from earshot.server import protocol as proto
from earshot.transports.opus import OpusDecoder, OpusEncoder


@dataclass(frozen=True, slots=True)
class NetConditions:
    """Simulated one-way network, applied to both directions.

    Attributes:
        delay_ms: fixed one-way delay (ms).
        jitter_ms: extra uniform delay in [0, jitter_ms) per message (ms).
        loss: probability an audio frame is lost (0–1), each direction.
        seed: random seed (reproducible runs).
    """

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.delay_ms < 0 or self.jitter_ms < 0:
            raise ValueError("--net-delay-ms and --net-jitter-ms must be >= 0")
        if not 0.0 <= self.loss < 1.0:
            raise ValueError(f"--net-loss must be in [0, 1), got {self.loss}")


class _DelayLine:
    """Order-preserving delivery times: ``max(previous, now + delay + U(0, jitter))``."""

    def __init__(self, cond: NetConditions, rng: random.Random) -> None:
        self.cond = cond
        self.rng = rng
        self._last_ms = float("-inf")

    def deliver_at(self, now_ms: float) -> float:
        extra = self.rng.uniform(0.0, self.cond.jitter_ms) if self.cond.jitter_ms else 0.0
        self._last_ms = max(self._last_ms, now_ms + self.cond.delay_ms + extra)
        return self._last_ms

    def lost(self) -> bool:
        return self.cond.loss > 0 and self.rng.random() < self.cond.loss


@dataclass(slots=True)
class _Reply:
    response_id: int
    first_received_ms: float
    start_ms: float
    scheduled_samples: int = 0
    cleared_at_ms: float | None = None
    last_reported: int = -1


@dataclass(slots=True)
class ClientResult:
    """What one call produced, from the caller's side.

    Attributes:
        turns: the server's turn records (``turns.jsonl`` objects), in order.
        caller: int16 16 kHz, the caller's audio on the client clock from t = 0 (as sent).
        agent: int16 16 kHz, the agent's audio as played, same clock and origin.
        error: the server's error message, or None.
        refused: the server refused the call (``server_full``).
        call_id, out_dir: from the server's ``bye``.
        late_frames: uplink frames sent later than their real-time slot (client overload).
        lost_up, lost_down: audio frames dropped by the simulated network.
        sync_rtt_ms: round trips of the clock-sync exchanges (client view).
    """

    turns: list[dict[str, Any]] = field(default_factory=list)
    caller: Pcm16 = field(default_factory=lambda: np.zeros(0, np.int16))
    agent: Pcm16 = field(default_factory=lambda: np.zeros(0, np.int16))
    error: str | None = None
    refused: bool = False
    call_id: str = ""
    out_dir: str = ""
    late_frames: int = 0
    frame_lateness_ms: list[float] = field(default_factory=list)
    lost_up: int = 0
    lost_down: int = 0
    transcripts: list[str] = field(default_factory=list)


class CallClient:
    """One call over WebSocket.

    Args:
        url: ``ws://host:port/ws`` (a ``?token=`` query if the server needs one).
        clock: the client's clock (a fresh `SystemClock`).
        net: simulated network conditions.
        codec: ``pcm16`` or ``opus``.
        frame_ms: frame duration.
        lead_ms: client playout delay for each reply's first frame.
        tail_ms: after the recording ends, how long to wait for the server's ``bye``.
        on_event: called with every server control message (progress display).
    """

    def __init__(
        self,
        url: str,
        clock: Clock,
        net: NetConditions = NetConditions(),
        *,
        codec: proto.Codec = "pcm16",
        frame_ms: proto.FrameMs = 20,
        lead_ms: float = 40.0,
        tail_ms: float = 30_000.0,
        on_event: Callable[[Any], None] | None = None,
    ) -> None:
        self.url = url
        self.clock = clock
        self.net = net
        self.codec = codec
        self.frame_ms = frame_ms
        self.frame_samples = samples_per_frame(frame_ms)
        self.lead_ms = lead_ms
        self.tail_ms = tail_ms
        self.on_event = on_event
        rng = random.Random(net.seed)
        self._up = _DelayLine(net, rng)
        self._down = _DelayLine(net, rng)
        self._up_q: asyncio.Queue[tuple[float, str | bytes] | None] = asyncio.Queue()
        self._down_q: asyncio.Queue[tuple[float, aiohttp.WSMessage, bool] | None] = asyncio.Queue()
        self._ready = asyncio.Event()
        self._done = asyncio.Event()
        self._replies: dict[int, _Reply] = {}
        self._segments: list[tuple[int, Pcm16]] = []
        self._next_free_ms = 0.0
        self._encoder = OpusEncoder(frame_ms) if codec == "opus" else None
        self._decoder = OpusDecoder(frame_ms) if codec == "opus" else None
        self.result = ClientResult()

    async def run(self, caller: Pcm16) -> ClientResult:
        """Make the call with ``caller`` (int16 16 kHz mono) and return what happened.

        Raises:
            aiohttp.ClientError: the server cannot be reached (connection refused, HTTP error).
        """
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(self.url, max_msg_size=0, heartbeat=None) as ws,
        ):
            self._send_control(
                proto.Hello(
                    codec=self.codec,
                    frame_ms=self.frame_ms,
                    client="earshot call",
                )
            )
            async with asyncio.TaskGroup() as tg:
                sender = tg.create_task(self._sender(ws))
                receiver = tg.create_task(self._receiver(ws))
                deliverer = tg.create_task(self._deliverer())
                reporter = tg.create_task(self._reporter())
                try:
                    await self._stream(caller)
                    await asyncio.wait_for(self._done.wait(), self.tail_ms / 1000.0)
                except TimeoutError:
                    self.result.error = self.result.error or "no 'bye' from the server in time"
                finally:
                    for t in (receiver, deliverer, reporter):
                        t.cancel()
                    self._up_q.put_nowait(None)
                    await sender
                    await ws.close()
        self.result.agent = self._render_agent()
        return self.result

    # -- uplink ----------------------------------------------------------------------------

    def _send_control(self, msg: Any) -> None:
        now = self.clock.now_ms()
        self._up_q.put_nowait((self._up.deliver_at(now), proto.dump(msg)))

    async def _sender(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while (item := await self._up_q.get()) is not None:
            at_ms, data = item
            await self.clock.sleep_until_ms(at_ms)
            if ws.closed:
                continue
            try:
                if isinstance(data, bytes):
                    await ws.send_bytes(data)
                else:
                    await ws.send_str(data)
            except (ConnectionResetError, RuntimeError):
                self._done.set()

    async def _stream(self, caller: Pcm16) -> None:
        """Send the recording in real time: frame k leaves when its last sample is captured."""
        await asyncio.wait_for(self._ready.wait(), 10.0) if not self._done.is_set() else None
        if self._done.is_set():
            return
        n = self.frame_samples
        start = self.clock.now_ms()
        self.result.caller = np.concatenate(
            [np.zeros(round(start * SAMPLE_RATE_HZ / 1000), np.int16), caller]
        )
        num = -(-len(caller) // n)
        codec = proto.CODECS[self.codec]
        for k in range(num):
            if self._done.is_set():
                return
            due = start + (k + 1) * self.frame_ms
            await self.clock.sleep_until_ms(due)
            now = self.clock.now_ms()
            lateness = now - due
            self.result.frame_lateness_ms.append(lateness)
            if lateness > self.frame_ms:
                self.result.late_frames += 1
            frame = caller[k * n : (k + 1) * n]
            if len(frame) < n:
                frame = np.concatenate([frame, np.zeros(n - len(frame), np.int16)])
            payload = self._encoder.encode(frame) if self._encoder else frame.tobytes()
            if self._up.lost():
                self.result.lost_up += 1
                continue
            data = proto.pack_uplink(codec, k, start + k * self.frame_ms, payload)
            self._up_q.put_nowait((self._up.deliver_at(now), data))
        self._send_control(proto.End())

    # -- downlink --------------------------------------------------------------------------

    async def _receiver(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            now = self.clock.now_ms()
            lost = msg.type == aiohttp.WSMsgType.BINARY and self._down.lost()
            if lost:
                # A lost downlink frame: its slot plays as silence (a UDP client's concealment)
                # and the reply's played position moves on past it.
                self.result.lost_down += 1
            self._down_q.put_nowait((self._down.deliver_at(now), msg, lost))
        self._down_q.put_nowait(None)

    async def _deliverer(self) -> None:
        while (item := await self._down_q.get()) is not None:
            at_ms, msg, lost = item
            await self.clock.sleep_until_ms(at_ms)
            now = self.clock.now_ms()
            if msg.type == aiohttp.WSMsgType.BINARY:
                self._on_audio(proto.unpack_downlink(msg.data), now, lost)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                self._on_control(proto.parse_server(msg.data), now)
        self._done.set()  # the server closed the socket

    def _on_control(self, msg: Any, now_ms: float) -> None:
        if self.on_event is not None:
            self.on_event(msg)
        match msg:
            case proto.Sync():
                self._send_control(
                    proto.SyncReply(id=msg.id, t0_ms=msg.t0_ms, t1_ms=now_ms, t2_ms=now_ms)
                )
            case proto.Ready():
                self.result.call_id = msg.call_id
                self._ready.set()
            case proto.Clear():
                self._clear(msg.response_id, now_ms)
            case proto.Transcript() if msg.final:
                self.result.transcripts.append(msg.text)
            case proto.TurnDone():
                self.result.turns.append(msg.record)
            case proto.ErrorMsg():
                self.result.error = f"{msg.code}: {msg.message}"
                self.result.refused = msg.code == "server_full"
                self._ready.set()
                self._done.set()
            case proto.Bye():
                self.result.call_id = msg.call_id
                self.result.out_dir = msg.out_dir
                self._done.set()
            case _:
                pass

    def _on_audio(self, audio: proto.DownlinkAudio, now_ms: float, lost: bool = False) -> None:
        rid = audio.response_id
        reply = self._replies.get(rid)
        if reply is None:
            start = max(now_ms + self.lead_ms, self._next_free_ms)
            reply = self._replies[rid] = _Reply(rid, now_ms, start)
        if reply.cleared_at_ms is not None:
            return
        if self._decoder is not None:
            pcm = self._decoder.decode(None if lost else audio.payload)
        else:
            pcm = np.frombuffer(audio.payload, dtype="<i2").astype(np.int16)
            if lost:
                pcm = np.zeros_like(pcm)
        at_ms = reply.start_ms + audio.response_sample * 1000.0 / SAMPLE_RATE_HZ
        self._segments.append((round(at_ms * SAMPLE_RATE_HZ / 1000), pcm))
        reply.scheduled_samples = max(reply.scheduled_samples, audio.response_sample + len(pcm))
        self._next_free_ms = max(
            self._next_free_ms,
            reply.start_ms + reply.scheduled_samples * 1000.0 / SAMPLE_RATE_HZ,
        )

    def _played(self, reply: _Reply, now_ms: float) -> int:
        until = now_ms if reply.cleared_at_ms is None else min(now_ms, reply.cleared_at_ms)
        elapsed = max(0.0, until - reply.start_ms)
        return min(reply.scheduled_samples, int(elapsed * SAMPLE_RATE_HZ / 1000))

    def _clear(self, response_id: int, now_ms: float) -> None:
        reply = self._replies.get(response_id)
        if reply is None:
            reply = self._replies[response_id] = _Reply(response_id, now_ms, now_ms)
        if reply.cleared_at_ms is None:
            reply.cleared_at_ms = now_ms
            cut = round(now_ms * SAMPLE_RATE_HZ / 1000)
            kept: list[tuple[int, Pcm16]] = []
            for at, pcm in self._segments:  # drop what would have played after the clear
                if at >= cut:
                    continue
                kept.append((at, pcm[: cut - at] if at + len(pcm) > cut else pcm))
            self._segments = kept
            self._next_free_ms = min(self._next_free_ms, now_ms)
            self._report(reply, now_ms)

    async def _reporter(self) -> None:
        while True:
            await self.clock.sleep_ms(20.0)
            now = self.clock.now_ms()
            for reply in list(self._replies.values()):
                if now >= reply.start_ms and self._played(reply, now) != reply.last_reported:
                    self._report(reply, now)

    def _report(self, reply: _Reply, now_ms: float) -> None:
        played = self._played(reply, now_ms)
        reply.last_reported = played
        started = played > 0 or now_ms >= reply.start_ms
        self._send_control(
            proto.Playback(
                response_id=reply.response_id,
                played_samples=played,
                at_ms=now_ms if reply.cleared_at_ms is None else min(now_ms, reply.cleared_at_ms),
                first_sample_ms=reply.start_ms if started and played > 0 else None,
                first_received_ms=reply.first_received_ms,
            )
        )

    def _render_agent(self) -> Pcm16:
        if not self._segments:
            return np.zeros(0, np.int16)
        end = max(at + len(pcm) for at, pcm in self._segments)
        out = np.zeros(end, np.int16)
        for at, pcm in self._segments:
            out[at : at + len(pcm)] = pcm
        return out
