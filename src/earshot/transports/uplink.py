"""The adaptive uplink jitter buffer: network packets in, a contiguous frame stream out.

A network caller's frames arrive unevenly (queueing, Wi-Fi retries, a TCP stall) and some never
arrive. The session needs every frame, in order, at a steady pace. This buffer holds packets
for a target delay that follows the measured arrival jitter, releases them in sequence order,
and conceals the ones still missing when their turn comes.

The schedule. Packet ``k`` (sequence number, one frame of ``frame_ms`` each) has relative
delay ``d_k = arrival_k − k · frame_ms``. Over the last ``window`` packets the least-delayed
one sets the base ``b = min d`` (that packet's path had no queueing), and the target delay is
the ``quantile`` of ``d − b`` (WebRTC NetEq sizes its buffer the same way, from a histogram of
inter-arrival delays; a 95 % quantile means one packet in twenty arrives after its slot). Packet
``k`` is due at ``b + k · frame_ms + delay``. The delay applied rises at once when the target
rises (protect the next frames) and falls by at most ``decay_ms_per_frame`` per frame (no
burst of releases when the network calms down).

Losses. A packet not here when it is due is concealed: the caller gets a frame flagged
``concealed`` with no payload, and the transport synthesizes it (`conceal_pcm` for PCM: the
last frame once at half gain, then silence; Opus: the decoder's own packet-loss concealment).
A packet that arrives after its slot, or twice, is dropped and counted.

Pure: fed ``(seq, payload, arrival_ms)`` and ``now_ms``; no clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from earshot.audio.frames import Pcm16

P = TypeVar("P")

RECOMPUTE_EVERY = 25
"""Packets between recomputations of the jitter quantile when no packet came late."""


@dataclass(frozen=True, slots=True)
class Released(Generic[P]):
    """One frame leaving the buffer, in sequence order.

    Attributes:
        seq: its sequence number.
        payload: what was pushed, or None when the packet was lost (conceal it).
        arrival_ms: when it arrived (None if lost).
        release_ms: when it left the buffer (the ``now_ms`` of the `pop_due` call).
    """

    seq: int
    payload: P | None
    arrival_ms: float | None
    release_ms: float

    @property
    def concealed(self) -> bool:
        return self.payload is None


@dataclass(slots=True)
class UplinkStats:
    """Counters of one call's uplink."""

    received: int = 0
    late: int = 0
    duplicate: int = 0
    concealed: int = 0
    released: int = 0


class AdaptiveJitterBuffer(Generic[P]):
    """See the module docstring.

    Args:
        frame_ms: duration of one packet (ms).
        min_delay_ms, max_delay_ms: bounds of the target delay (ms).
        quantile: fraction of packets that should arrive before their slot (0.5–1).
        window: packets over which base delay and jitter are measured.
        decay_ms_per_frame: how fast the applied delay may fall (ms per frame).

    Raises:
        ValueError: a bound or parameter out of range (the message names it).
    """

    def __init__(
        self,
        frame_ms: float = 20.0,
        *,
        min_delay_ms: float = 0.0,
        max_delay_ms: float = 200.0,
        quantile: float = 0.95,
        window: int = 100,
        decay_ms_per_frame: float = 1.0,
    ) -> None:
        if frame_ms <= 0:
            raise ValueError(f"frame duration must be > 0 ms, got {frame_ms}")
        if not 0 <= min_delay_ms <= max_delay_ms:
            raise ValueError(
                f"need 0 <= min_delay_ms <= max_delay_ms, got {min_delay_ms}, {max_delay_ms}"
            )
        if not 0.5 <= quantile <= 1.0:
            raise ValueError(f"quantile must be in [0.5, 1], got {quantile}")
        if window < 2:
            raise ValueError(f"window must be >= 2 packets, got {window}")
        self.frame_ms = frame_ms
        self.min_delay_ms = min_delay_ms
        self.max_delay_ms = max_delay_ms
        self.quantile = quantile
        self.decay_ms_per_frame = decay_ms_per_frame
        self._delays: deque[float] = deque(maxlen=window)
        self._held: dict[int, tuple[P, float]] = {}
        self._next_seq = 0
        self._started = False
        self._delay_ms = min_delay_ms
        self._target: float | None = None
        self._pushes = 0
        self.stats = UplinkStats()

    @property
    def next_seq(self) -> int:
        """The sequence number the next released frame will carry."""
        return self._next_seq

    @property
    def delay_ms(self) -> float:
        """The playout delay applied now (ms beyond the least-delayed path)."""
        return self._delay_ms

    def target_delay_ms(self) -> float:
        """The delay the measured jitter asks for (ms), before smoothing.

        The quantile is recomputed at once when a packet comes later than the current target
        allows (fast attack), otherwise every `RECOMPUTE_EVERY` packets (a quantile per packet
        was the buffer's largest cost per call)."""
        if self._target is None:
            self._target = self._compute_target()
        return self._target

    def _compute_target(self) -> float:
        if not self._delays:
            return self.min_delay_ms
        base = min(self._delays)
        spread = np.quantile(np.asarray(self._delays) - base, self.quantile)
        return float(np.clip(spread, self.min_delay_ms, self.max_delay_ms))

    def _base_ms(self) -> float:
        return min(self._delays)

    def due_ms(self, seq: int) -> float | None:
        """When packet ``seq`` is due (session ms), or None before any packet arrived."""
        if not self._delays:
            return None
        return self._base_ms() + seq * self.frame_ms + self._delay_ms

    def nominal_arrival_ms(self, seq: int) -> float | None:
        """When packet ``seq`` would have arrived on the least-delayed path (session ms): the
        arrival time a concealed (lost) packet is given, so that its hold in this buffer is
        counted as buffer time and not as network delay."""
        if not self._delays:
            return None
        return self._base_ms() + seq * self.frame_ms

    def push(self, seq: int, payload: P, arrival_ms: float) -> bool:
        """Take one packet. Returns False (and counts it) if it is late or a duplicate.

        Raises:
            ValueError: a negative sequence number.
        """
        if seq < 0:
            raise ValueError(f"sequence numbers start at 0, got {seq}")
        if seq in self._held:
            self.stats.duplicate += 1
            return False
        # A late packet still measures the network: leaving it out would make the buffer
        # blind to exactly the delays it is too short for.
        delay = arrival_ms - seq * self.frame_ms
        self._delays.append(delay)
        self._pushes += 1
        if (
            self._target is None
            or self._pushes % RECOMPUTE_EVERY == 0
            or delay - min(self._delays) > self._target
        ):
            self._target = self._compute_target()
        target = self._target
        if target > self._delay_ms or not self._started:
            self._delay_ms = target
        self._started = True
        if seq < self._next_seq:
            self.stats.late += 1
            return False
        self.stats.received += 1
        self._held[seq] = (payload, arrival_ms)
        return True

    def pop_due(self, now_ms: float) -> list[Released[P]]:
        """Every frame due by ``now_ms``, in sequence order (lost ones as concealed)."""
        out: list[Released[P]] = []
        while True:
            due = self.due_ms(self._next_seq)
            if due is None or due > now_ms:
                break
            out.append(self._release(now_ms))
        return out

    def flush(self, now_ms: float) -> list[Released[P]]:
        """The input has ended: release what is held, concealing gaps up to the last packet."""
        out: list[Released[P]] = []
        last = max(self._held, default=-1)
        while self._next_seq <= last:
            out.append(self._release(now_ms))
        return out

    def _release(self, now_ms: float) -> Released[P]:
        seq = self._next_seq
        self._next_seq += 1
        held = self._held.pop(seq, None)
        self.stats.released += 1
        target = self.target_delay_ms()
        if target < self._delay_ms:
            self._delay_ms = max(target, self._delay_ms - self.decay_ms_per_frame)
        if held is None:
            self.stats.concealed += 1
            return Released(seq, None, None, now_ms)
        return Released(seq, held[0], held[1], now_ms)


def conceal_pcm(last: Pcm16 | None, num_samples: int, consecutive_lost: int) -> Pcm16:
    """A PCM16 frame in place of a lost one: the last good frame at half gain for the first
    loss in a row, silence after that (a repeated frame longer than ~20 ms turns into a buzz).

    Args:
        last: the previous frame (int16, 16 kHz), or None.
        num_samples: samples per frame.
        consecutive_lost: 1 for the first lost frame in a row, 2 for the next...
    """
    if last is None or consecutive_lost > 1 or len(last) != num_samples:
        return np.zeros(num_samples, dtype=np.int16)
    return (last.astype(np.int32) // 2).astype(np.int16)
