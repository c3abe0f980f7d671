"""Clock sync between a client's clock and the session clock: an NTP-style exchange.

The server sends a probe stamped ``t0`` (session clock); the client stamps its receipt ``t1``
and its reply ``t2`` on its own clock; the server stamps the reply's arrival ``t3``. Then
(RFC 5905 §8, the on-wire protocol)::

    offset = ((t1 − t0) + (t2 − t3)) / 2        # client clock − session clock
    rtt    = (t3 − t0) − (t2 − t1)              # round trip, without the client's turnaround

and the true offset lies within ``offset ± rtt / 2`` whatever the split of the round trip
between the two directions (both one-way delays are ≥ 0). The estimator keeps the last
``window`` samples and uses the one with the smallest round trip (NTP's clock filter, RFC 5905
§10: the least-delayed sample has the tightest bound), and widens its bound with age at
``drift_ppm`` (RFC 5905's PHI = 15 ppm frequency tolerance), so a stale estimate says so.

Pure: fed samples and ``now_ms``; no clock, no I/O. Tested on synthetic timelines.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

PHI_PPM = 15.0
"""Frequency tolerance of a computer clock assumed by NTP (RFC 5905 §7.3: PHI = 15 ppm)."""


@dataclass(frozen=True, slots=True)
class SyncSample:
    """One probe/reply exchange.

    Attributes:
        t0_ms: session clock when the probe left the server.
        t1_ms: client clock when the client received it.
        t2_ms: client clock when the client sent its reply.
        t3_ms: session clock when the reply reached the server.
    """

    t0_ms: float
    t1_ms: float
    t2_ms: float
    t3_ms: float

    @property
    def offset_ms(self) -> float:
        """Client clock minus session clock (ms)."""
        return ((self.t1_ms - self.t0_ms) + (self.t2_ms - self.t3_ms)) / 2.0

    @property
    def rtt_ms(self) -> float:
        """Network round trip (ms), the client's turnaround excluded."""
        return (self.t3_ms - self.t0_ms) - (self.t2_ms - self.t1_ms)


@dataclass(frozen=True, slots=True)
class ClockEstimate:
    """The current mapping between the client clock and the session clock.

    Attributes:
        offset_ms: client clock − session clock (ms).
        rtt_ms: round trip of the sample it came from (ms).
        error_bound_ms: the true offset is within ``offset_ms ± error_bound_ms``.
        measured_at_ms: session time of that sample's reply.
        num_samples: samples seen so far.
    """

    offset_ms: float
    rtt_ms: float
    error_bound_ms: float
    measured_at_ms: float
    num_samples: int

    def to_session_ms(self, client_ms: float) -> float:
        """A client-clock time on the session clock."""
        return client_ms - self.offset_ms

    def to_client_ms(self, session_ms: float) -> float:
        """A session-clock time on the client clock."""
        return session_ms + self.offset_ms


class ClockSyncError(ValueError):
    """A sync reply that cannot be right (negative round trip, replies out of order)."""


class ClockSync:
    """Keeps the best recent offset estimate.

    Args:
        window: samples kept; the least-delayed one is used.
        drift_ppm: clock-rate tolerance used to widen the bound with the estimate's age.

    Raises:
        ValueError: ``window`` < 1 or negative ``drift_ppm``.
    """

    def __init__(self, window: int = 8, drift_ppm: float = PHI_PPM) -> None:
        if window < 1:
            raise ValueError(f"clock sync window must be >= 1 sample, got {window}")
        if drift_ppm < 0:
            raise ValueError(f"drift tolerance must be >= 0 ppm, got {drift_ppm}")
        self.drift_ppm = drift_ppm
        self._samples: deque[SyncSample] = deque(maxlen=window)
        self._count = 0

    def add(self, sample: SyncSample) -> ClockEstimate:
        """Take one exchange and return the estimate after it.

        Raises:
            ClockSyncError: the sample's round trip is negative, or ``t3 < t0``: the reply was
                forged or matched to the wrong probe.
        """
        if sample.t3_ms < sample.t0_ms or sample.rtt_ms < 0:
            raise ClockSyncError(
                f"impossible sync reply: round trip {sample.rtt_ms:.3f} ms "
                f"(t0={sample.t0_ms}, t3={sample.t3_ms}); the reply does not match its probe"
            )
        self._samples.append(sample)
        self._count += 1
        estimate = self.estimate(sample.t3_ms)
        assert estimate is not None
        return estimate

    def estimate(self, now_ms: float) -> ClockEstimate | None:
        """The estimate at session time ``now_ms``, or None before the first sample."""
        if not self._samples:
            return None
        best = min(self._samples, key=lambda s: s.rtt_ms)
        age_ms = max(0.0, now_ms - best.t3_ms)
        return ClockEstimate(
            offset_ms=best.offset_ms,
            rtt_ms=best.rtt_ms,
            error_bound_ms=best.rtt_ms / 2.0 + age_ms * self.drift_ppm * 1e-6,
            measured_at_ms=best.t3_ms,
            num_samples=self._count,
        )


class ProbeBook:
    """The server side of the exchange: numbers probes, matches replies, feeds `ClockSync`.

    Args:
        sync: the estimator the matched samples go to.
        max_outstanding: unanswered probes remembered (the oldest is forgotten first).
    """

    def __init__(self, sync: ClockSync, max_outstanding: int = 50) -> None:
        self.sync = sync
        self.max_outstanding = max_outstanding
        self._sent: dict[int, float] = {}
        self._next_id = 0

    def probe(self, now_ms: float) -> tuple[int, float]:
        """A new probe: its id and ``t0`` (= ``now_ms``) to send."""
        self._next_id += 1
        self._sent[self._next_id] = now_ms
        while len(self._sent) > self.max_outstanding:
            self._sent.pop(next(iter(self._sent)))
        return self._next_id, now_ms

    def reply(
        self, probe_id: int, t0_ms: float, t1_ms: float, t2_ms: float, now_ms: float
    ) -> ClockEstimate:
        """Match a reply arriving at ``now_ms`` to its probe.

        Raises:
            ClockSyncError: it answers no outstanding probe, echoes a different ``t0``, or its
                times are impossible.
        """
        sent = self._sent.pop(probe_id, None)
        if sent is None or sent != t0_ms:
            raise ClockSyncError(f"sync reply {probe_id} answers no probe this server sent")
        return self.sync.add(SyncSample(sent, t1_ms, t2_ms, now_ms))
