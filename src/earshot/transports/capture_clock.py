"""Capture times for a frame stream that carries none on our clock (RTP into aiortc).

A browser's RTP packets carry timestamps on the sender's media clock, not on the session
clock, and aiortc hands decoded frames over in bursts (its jitter buffer, connection set-up).
Frame ``j`` (``frame_ms`` each, contiguous) arriving at ``arrival_j`` with an estimated one-way
delay ``d`` (RTT/2 from the data-channel clock sync) implies the stream started by
``anchor_j = arrival_j − d − (j + 1) · frame_ms``; the least of these is the least-delayed
frame's view, the best estimate (the same reasoning as NTP's least-delay filter). The anchor in
use moves down to it by at most ``slew_ms_per_frame`` per frame, so the capture axis never
jumps; every time is then held to causality (a frame cannot arrive before it was captured:
``capture ≤ arrival − frame_ms``) and to order (never earlier than the previous frame).

Pure: fed ``(arrival_ms, one_way_ms)``; tested on synthetic timelines.
"""

from __future__ import annotations


class CaptureClock:
    """See the module docstring.

    Args:
        frame_ms: frame duration (ms).
        slew_ms_per_frame: fastest downward move of the anchor (ms per frame).
    """

    def __init__(self, frame_ms: float = 20.0, slew_ms_per_frame: float = 2.0) -> None:
        self.frame_ms = frame_ms
        self.slew_ms_per_frame = slew_ms_per_frame
        self._count = 0
        self._target: float | None = None
        self._anchor: float | None = None
        self._last: float | None = None

    def stamp(self, arrival_ms: float, one_way_ms: float) -> float:
        """Capture time (session ms) of the next frame, which arrived at ``arrival_ms``."""
        j = self._count
        candidate = arrival_ms - one_way_ms - (j + 1) * self.frame_ms
        self._target = candidate if self._target is None else min(self._target, candidate)
        if self._anchor is None:
            self._anchor = candidate
        elif self._anchor > self._target:
            self._anchor = max(self._target, self._anchor - self.slew_ms_per_frame)
        capture = min(self._anchor + j * self.frame_ms, arrival_ms - self.frame_ms)
        if self._last is not None:
            capture = max(capture, self._last)
        self._last = capture
        self._count += 1
        return capture
