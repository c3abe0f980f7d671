"""The session's playout ledger: what left the jitter buffer, and what the caller's device played.

Synchronous and clock-free (times come in as arguments). It wraps the `JitterBuffer` on the
output side of a `earshot.transports.base.SessionPort`:

* `PlayoutLedger.pull` takes the next output frame, counts the samples sent per response and
  says which responses are over — at once for a transport that takes "sent" as "played" (the
  file transport), or once the device has reported the last sample played;
* `PlayoutLedger.report` keeps the latest (cumulative) `PlayoutReport` per response;
* `PlayoutLedger.played` is the played position heard words and barge-in records use: the
  transport's report, never a guess from what was sent;
* `PlayoutLedger.playing_during` says whether agent audio was going out while an input frame
  was captured (a short bounded history).

Also here: the pure functions that turn frame and report timing into a turn's `NetworkTiming`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from earshot.metrics.turn import HEARD_MARK, NetworkTiming, TurnRecord
from earshot.playout.jitter import JitterBuffer
from earshot.transports.base import InputFrame, OutputFrame, PlayoutReport

ACTIVITY_FRAMES = 512
"""Output frames remembered for `PlayoutLedger.playing_during` (10 s at 20 ms)."""


@dataclass(frozen=True, slots=True)
class Pulled:
    """One output frame and what it settled.

    Attributes:
        frame: the frame for the transport.
        started: the response whose first sample the frame carries, or None.
        completed: (response id, played samples) of every response now over.
    """

    frame: OutputFrame
    started: int | None
    completed: tuple[tuple[int, int], ...]


class PlayoutLedger:
    """Sent and played counts per response (see the module docstring).

    Args:
        jitter: the session's jitter buffer.
        frame_ms: the session's frame duration (ms).
        device_playout: completion waits for the device's report of the last sample
            (`Transport.reports_device_playout`); False completes a response when its last
            sample is sent.
    """

    def __init__(self, jitter: JitterBuffer, frame_ms: int, device_playout: bool = False) -> None:
        self.jitter = jitter
        self.frame_ms = frame_ms
        self.device_playout = device_playout
        self._activity: deque[tuple[float, bool]] = deque(maxlen=ACTIVITY_FRAMES)
        self._sent: dict[int, int] = {}
        self._awaiting: dict[int, int] = {}
        self._reports: dict[int, PlayoutReport] = {}

    def pull(self, num_samples: int, now_ms: float) -> Pulled:
        """The next output frame of ``num_samples`` samples, leaving at ``now_ms``."""
        frame = self.jitter.pull(num_samples, now_ms)
        rid = frame.response_id
        self._activity.append(
            (now_ms, frame.agent_samples > 0 or self.jitter.playing_id is not None)
        )
        offset = 0
        if rid is not None:
            offset = self._sent.get(rid, 0)
            self._sent[rid] = offset + frame.agent_samples
        completed: list[tuple[int, int]] = []
        for finished in frame.finished_ids:
            sent = self._sent.pop(finished, 0)
            reported = self._reports.get(finished)
            if sent == 0 or not self.device_playout:
                completed.append((finished, sent))
            elif reported is not None and reported.played_samples >= sent:
                completed.append((finished, reported.played_samples))
            else:
                self._awaiting[finished] = sent  # over once the device has played it
        out = OutputFrame(frame.audio, rid, frame.agent_samples, now_ms, offset)
        return Pulled(out, rid if frame.started else None, tuple(completed))

    def report(self, report: PlayoutReport) -> tuple[bool, tuple[int, int] | None]:
        """Keep a playout report.

        Returns:
            Whether it was kept (an older report arriving late is ignored), and (response id,
            played samples) if it completed a response that was waiting for it.
        """
        rid = report.response_id
        prev = self._reports.get(rid)
        if prev is not None and report.played_samples < prev.played_samples:
            return False, None
        self._reports[rid] = report
        sent = self._awaiting.get(rid)
        if sent is not None and report.played_samples >= sent:
            del self._awaiting[rid]
            return True, (rid, report.played_samples)
        return True, None

    def played(self, response_id: int) -> int:
        """Samples of the response the caller's device has played (the latest report; without
        one, what left the jitter buffer for a transport that plays as it sends, else 0)."""
        report = self._reports.get(response_id)
        if report is not None:
            return report.played_samples
        return 0 if self.device_playout else self.jitter.played_samples(response_id)

    def last_sample_ms(self, response_id: int) -> float | None:
        """Session time the last reported sample of the response finished playing, or None."""
        report = self._reports.get(response_id)
        return report.at_ms if report is not None and report.played_samples else None

    def clear(self, response_id: int) -> int:
        """Barge-in: drop the response's queued audio; returns its played position."""
        self.jitter.clear(response_id)
        self._awaiting.pop(response_id, None)
        self._sent.pop(response_id, None)
        return self.played(response_id)

    def forget(self, response_id: int) -> None:
        """The response is settled: drop its bookkeeping."""
        self._reports.pop(response_id, None)
        self._sent.pop(response_id, None)
        self._awaiting.pop(response_id, None)

    def playing_during(self, capture_ms: float) -> bool:
        """Agent audio was going out (or a started reply was underrunning) in the output
        frame that covers session time ``capture_ms``."""
        for sent_ms, active in reversed(self._activity):
            if sent_ms <= capture_ms + 1e-6:
                return active and capture_ms < sent_ms + self.frame_ms
        return False


def uplink_timing(frame: InputFrame | None, frame_ms: float) -> NetworkTiming:
    """``network_in`` and ``uplink_jitter_buffer`` of the input frame that closed a turn.

    ``network_in`` = arrival − (capture + one frame); ``uplink_jitter_buffer`` = release −
    arrival; None where the frame does not carry the times (a local source).
    """
    timing = NetworkTiming()
    if frame is None:
        return timing
    if frame.arrival_ms is not None:
        timing.network_in_ms = frame.arrival_ms - (frame.capture_ms + frame_ms)
        if frame.release_ms is not None:
            timing.uplink_jitter_buffer_ms = frame.release_ms - frame.arrival_ms
    timing.sync_error_ms = frame.sync_error_ms
    return timing


def apply_heard_start(turn: TurnRecord, report: PlayoutReport) -> bool:
    """Set ``heard_start`` and the downlink terms of ``turn`` from the first report that knows
    when the reply's first sample played. Returns whether it did.

    ``client_playout`` = first_sample − first_received; ``network_out`` = heard_start −
    playout_start − client_playout (so the terms sum exactly); the directly measured
    first_received − playout_start is kept as ``network_out_measured_ms``.
    """
    if report.first_sample_ms is None or HEARD_MARK in turn.marks_ms:
        return False
    timing = turn.network if turn.network is not None else NetworkTiming()
    start = turn.marks_ms.get("playout_start")
    if report.first_received_ms is not None:
        timing.client_playout_ms = report.first_sample_ms - report.first_received_ms
        if start is not None:
            timing.network_out_measured_ms = report.first_received_ms - start
    if start is not None:
        timing.network_out_ms = report.first_sample_ms - start - (timing.client_playout_ms or 0.0)
    timing.sync_error_ms = max(timing.sync_error_ms or 0.0, report.sync_error_ms)
    turn.set_heard_start(report.first_sample_ms, timing)
    return True
