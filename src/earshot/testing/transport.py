"""A scripted caller and a fake network transport, for tests of the whole loop.

`SyntheticCaller` is a `earshot.transports.file.CallerSource` that generates its audio on the
fly (tone bursts where the caller "speaks", silence elsewhere), so a long call costs no memory.
`FakeNetworkTransport` behaves like a client transport: frames arrive ``uplink_ms`` after
capture, the client receives output ``downlink_ms`` after the server sent it, plays it
``client_playout_ms`` later and reports what it played; it can vanish mid-call.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, ms_to_samples, samples_per_frame
from earshot.audio.frames import samples_to_ms as _s2ms
from earshot.clock import Clock
from earshot.transports.base import InputFrame, PlayoutReport, SessionPort


class SyntheticCaller:
    """A caller who "speaks" a 220 Hz tone (amplitude ``level``) during ``speech_ms`` spans.

    Args:
        speech_ms: (start, end) spans in ms from the start of the call.
        duration_ms: length of the call (ms).
        level: tone amplitude (int16 units).
    """

    def __init__(
        self, speech_ms: Sequence[tuple[float, float]], duration_ms: float, level: int = 6000
    ) -> None:
        self.spans = [(ms_to_samples(a), ms_to_samples(b)) for a, b in speech_ms]
        self.num_samples = ms_to_samples(duration_ms)
        self.level = level
        self._pos = 0

    @property
    def exhausted(self) -> bool:
        return self._pos >= self.num_samples

    def read(self, num_samples: int) -> Pcm16:
        start = self._pos
        end = min(self.num_samples, start + num_samples)
        self._pos = end
        out = np.zeros(end - start, dtype=np.int16)
        for a, b in self.spans:
            lo, hi = max(a, start), min(b, end)
            if lo < hi:
                t = np.arange(lo, hi) / SAMPLE_RATE_HZ
                out[lo - start : hi - start] = (self.level * np.sin(2 * np.pi * 220.0 * t)).astype(
                    np.int16
                )
        return out

    def close(self) -> None:
        pass


@dataclass(slots=True)
class _Played:
    response_id: int
    played_samples: int
    at_ms: float
    first_sample_ms: float | None
    first_received_ms: float | None


@dataclass(slots=True)
class FakeNetworkTransport:
    """A client over a network with fixed one-way delays (see the module docstring).

    Attributes:
        clock: the session clock.
        caller: the caller's audio.
        uplink_ms: capture end → arrival at the server (ms).
        downlink_ms: server send → client receive (ms).
        client_playout_ms: client receive → played (ms).
        vanish_at_ms: session time at which the client disappears (run returns), or None.
        tail_ms: after the input ends, how long to wait for replies before hanging up.
        sync_error_ms: the clock-sync error bound it reports.
        reports_device_playout: True (it reports what the "device" played).
    """

    clock: Clock
    caller: SyntheticCaller
    uplink_ms: float = 0.0
    downlink_ms: float = 0.0
    client_playout_ms: float = 0.0
    vanish_at_ms: float | None = None
    tail_ms: float = 10_000.0
    sync_error_ms: float = 0.0
    name: str = "fake network"
    reports_device_playout: bool = True
    cleared: list[tuple[int, float]] = field(default_factory=list)
    """(response id, session time) of every clear."""
    played_audio_ms: list[tuple[float, int]] = field(default_factory=list)
    """(session time played, response id) of every output frame with agent audio the client
    played (after clears)."""
    events: list[object] = field(default_factory=list)
    """Every session event it was sent (it is a `earshot.session.events.SessionEventSink`)."""
    _pending: deque[tuple[float, int, int, int, float]] = field(default_factory=deque)
    _played: dict[int, _Played] = field(default_factory=dict)

    def on_session_event(self, event: object) -> None:
        self.events.append(event)

    def clear(self, response_id: int) -> None:
        self.cleared.append((response_id, self.clock.now_ms()))
        self._pending = deque(p for p in self._pending if p[1] != response_id)

    async def run(self, port: SessionPort) -> None:
        frame_ms = port.frame_ms
        n = samples_per_frame(frame_ms)
        captured = 0
        k = 0
        end_tick: int | None = None
        while True:
            now = float(k * frame_ms)
            await self.clock.sleep_until_ms(now)
            if self.vanish_at_ms is not None and now >= self.vanish_at_ms:
                return  # the client is gone
            # Input: every frame whose last sample has arrived by now.
            while not self.caller.exhausted:
                capture_ms = captured * frame_ms
                arrival = capture_ms + frame_ms + self.uplink_ms
                if arrival > now + 1e-9:
                    break
                pcm = self.caller.read(n)
                if len(pcm) < n:
                    pcm = np.concatenate([pcm, np.zeros(n - len(pcm), dtype=np.int16)])
                port.push_input(
                    InputFrame(
                        pcm,
                        float(capture_ms),
                        None,
                        arrival_ms=arrival,
                        release_ms=now,
                        sync_error_ms=self.sync_error_ms,
                    )
                )
                captured += 1
            if self.caller.exhausted and end_tick is None:
                end_tick = k
            if end_tick is not None and k > end_tick and port.idle:
                return
            if end_tick is not None and (k - end_tick) * frame_ms > self.tail_ms:
                return
            out = port.pull_output(n, now)
            if out.response_id is not None and out.agent_samples:
                play_at = now + self.downlink_ms + self.client_playout_ms
                self._pending.append(
                    (play_at, out.response_id, out.response_samples, out.agent_samples, now)
                )
            self._play_due(port, now)
            k += 1

    def _play_due(self, port: SessionPort, now: float) -> None:
        while self._pending and self._pending[0][0] + _s2ms(self._pending[0][3]) <= now + 1e-9:
            play_at, rid, offset, count, _sent = self._pending.popleft()
            self.played_audio_ms.append((play_at, rid))
            prev = self._played.get(rid)
            first = play_at if prev is None else prev.first_sample_ms
            received = play_at - self.client_playout_ms if prev is None else prev.first_received_ms
            state = _Played(rid, offset + count, play_at + _s2ms(count), first, received)
            self._played[rid] = state
            port.report_playout(
                PlayoutReport(
                    rid,
                    state.played_samples,
                    state.at_ms,
                    first_sample_ms=state.first_sample_ms,
                    first_received_ms=state.first_received_ms,
                    client_ms=state.at_ms + 12_345.0,
                    sync_error_ms=self.sync_error_ms,
                )
            )
