"""The playout jitter buffer: a pure core fed ``(audio, now_ms)``, pulled one frame per tick.

Agent audio arrives in bursts (TTS chunks); the listener needs a steady stream of frames. Each
response's first audio is held for ``jitter_ms`` (a fixed playout delay, the t_jitter_buf term of
§39.4.2: typical 80 ms, best case 40 ms) so later chunks arriving late do not starve playout;
after that the buffer drains one frame per tick and fills gaps with silence (an underrun).

Responses play one after another in the order they were opened. Audio is tagged with its
response id, so a cleared (interrupted) response's late chunks are dropped by id, never by
timing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from earshot.audio.frames import Pcm16, samples_to_ms


@dataclass(slots=True)
class _Response:
    response_id: int
    first_push_ms: float | None = None
    chunks: deque[Pcm16] = field(default_factory=deque)
    offset: int = 0
    buffered_samples: int = 0
    played_samples: int = 0
    ended: bool = False
    started: bool = False


@dataclass(frozen=True, slots=True)
class PlayoutFrame:
    """One output frame.

    Attributes:
        audio: int16, exactly the requested number of samples (silence-padded).
        response_id: the response whose audio this frame carries, or None for silence.
        started: this frame holds the first sample of ``response_id``.
        finished_ids: responses whose last sample was played in this frame.
        agent_samples: how many samples of agent audio (not padding) the frame holds.
    """

    audio: Pcm16
    response_id: int | None
    started: bool
    finished_ids: tuple[int, ...]
    agent_samples: int


class JitterBuffer:
    """Fixed-delay playout buffer.

    Args:
        jitter_ms: hold applied to each response's first audio before playout (ms, ≥ 0).
        sample_rate_hz: sample rate of the audio pushed and pulled.

    Raises:
        ValueError: negative ``jitter_ms``.
    """

    def __init__(self, jitter_ms: float = 40.0, sample_rate_hz: int = 16_000) -> None:
        if jitter_ms < 0:
            raise ValueError(f"jitter buffer depth must be >= 0 ms, got {jitter_ms}")
        self.jitter_ms = jitter_ms
        self.sample_rate_hz = sample_rate_hz
        self._queue: deque[_Response] = deque()
        self._by_id: dict[int, _Response] = {}
        self._closed: set[int] = set()
        self._played: dict[int, int] = {}
        self.underrun_samples = 0

    def open(self, response_id: int) -> None:
        """Queue a response; its audio plays after every response opened before it."""
        if response_id in self._by_id or response_id in self._closed:
            raise ValueError(f"response {response_id} was already opened")
        r = _Response(response_id)
        self._queue.append(r)
        self._by_id[response_id] = r

    def push(self, response_id: int, audio: Pcm16, now_ms: float) -> bool:
        """Add audio for a response. Audio of a cleared or unknown response is dropped.

        Args:
            audio: int16, 1-D, at ``sample_rate_hz``.
            now_ms: session-clock time of arrival.

        Returns:
            True if the audio was kept.
        """
        r = self._by_id.get(response_id)
        if r is None or r.ended or audio.size == 0:
            return False
        if r.first_push_ms is None:
            r.first_push_ms = now_ms
        r.chunks.append(audio)
        r.buffered_samples += len(audio)
        return True

    def end(self, response_id: int) -> None:
        """No more audio will come for this response (it finishes once drained)."""
        r = self._by_id.get(response_id)
        if r is not None:
            r.ended = True

    def clear(self, response_id: int) -> int:
        """Drop a response at once (barge-in). Returns the number of unplayed samples dropped."""
        r = self._by_id.pop(response_id, None)
        self._closed.add(response_id)
        if r is None:
            return 0
        self._played[response_id] = r.played_samples
        self._queue.remove(r)
        return r.buffered_samples

    def played_samples(self, response_id: int) -> int:
        """Samples of this response that have left the buffer toward the listener."""
        r = self._by_id.get(response_id)
        return self._played.get(response_id, 0) if r is None else r.played_samples

    def buffered_ms_of(self, response_id: int) -> float:
        """Audio of one response waiting in the buffer (ms; 0 for an unknown or cleared id)."""
        r = self._by_id.get(response_id)
        return 0.0 if r is None else samples_to_ms(r.buffered_samples, self.sample_rate_hz)

    def buffered_ms(self) -> float:
        """Agent audio waiting in the buffer, all responses (ms)."""
        return samples_to_ms(sum(r.buffered_samples for r in self._queue), self.sample_rate_hz)

    @property
    def playing_id(self) -> int | None:
        """The response currently being played out (started, not yet finished)."""
        if self._queue and self._queue[0].started:
            return self._queue[0].response_id
        return None

    def pull(self, num_samples: int, now_ms: float) -> PlayoutFrame:
        """Take the next output frame, to be played from session time ``now_ms``."""
        out = np.zeros(num_samples, dtype=np.int16)
        filled = 0
        started = False
        first_id: int | None = None
        finished: list[int] = []
        while filled < num_samples and self._queue:
            r = self._queue[0]
            if not r.started and r.ended and not r.chunks:
                # Ended with no audio at all (a failed reply): it is over, and must not hold
                # back the responses queued behind it.
                finished.append(r.response_id)
                self._queue.popleft()
                del self._by_id[r.response_id]
                self._closed.add(r.response_id)
                self._played[r.response_id] = 0
                continue
            if not r.started:
                if r.first_push_ms is None or now_ms < r.first_push_ms + self.jitter_ms:
                    break
                if filled > 0:
                    break  # a new response starts on a frame boundary
                r.started = True
                started = True
            if first_id is None:
                first_id = r.response_id
            while filled < num_samples and r.chunks:
                chunk = r.chunks[0]
                take = min(num_samples - filled, len(chunk) - r.offset)
                out[filled : filled + take] = chunk[r.offset : r.offset + take]
                filled += take
                r.offset += take
                r.buffered_samples -= take
                r.played_samples += take
                if r.offset == len(chunk):
                    r.chunks.popleft()
                    r.offset = 0
            if r.chunks:
                break
            if r.ended:
                finished.append(r.response_id)
                self._queue.popleft()
                del self._by_id[r.response_id]
                self._closed.add(r.response_id)
                self._played[r.response_id] = r.played_samples
                if filled > 0:
                    break
                continue
            # Started, not ended, nothing buffered: an underrun for the rest of this frame.
            self.underrun_samples += num_samples - filled
            break
        return PlayoutFrame(out, first_id, started, tuple(finished), filled)
