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
from collections.abc import Sequence
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
        r = self._by_id.get(response_id)
        dropped = 0 if r is None else r.buffered_samples
        if r is not None:
            self.cut(response_id, r.played_samples)
            self._by_id.pop(response_id)
            self._played[response_id] = r.played_samples
            self._queue.remove(r)
        self._closed.add(response_id)
        return dropped

    def cut(self, response_id: int, at_sample: int, fade_samples: int = 0) -> int:
        """Drop a response's queued audio from sample ``at_sample`` on, keeping it open.

        `clear` is this at the played position plus closing the response; a filler cut
        (`earshot.levers.filler.plan_cut`) keeps the response open, so the audio pushed after
        the cut (the real answer) follows the kept audio at once.

        Args:
            at_sample: where the response's audio is to end, in samples from its first sample
                (clipped to what has left the buffer, which is never recalled, and to what was
                pushed).
            fade_samples: linear fade-out over the kept audio just before the cut (only audio
                not yet played is faded).

        Returns:
            Where the response's audio now ends (samples from its first sample); what was
            played for a cleared or unknown id.
        """
        r = self._by_id.get(response_id)
        if r is None:
            return self._played.get(response_id, 0)
        end = min(max(at_sample, r.played_samples), r.played_samples + r.buffered_samples)
        keep = end - r.played_samples
        if keep == r.buffered_samples and fade_samples <= 0:
            return end
        queued = [r.chunks[0][r.offset :], *list(r.chunks)[1:]] if r.chunks else []
        kept = truncate_chunks(queued, keep, min(fade_samples, keep))
        r.chunks = deque(kept)
        r.offset = 0
        r.buffered_samples = keep
        return end

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


def truncate_chunks(chunks: Sequence[Pcm16], keep_samples: int, fade_samples: int) -> list[Pcm16]:
    """The first ``keep_samples`` of a run of int16 chunks, the last ``fade_samples`` of them
    ramped linearly to zero (copies where faded; the input is never written).

    Raises:
        ValueError: negative ``keep_samples`` or ``fade_samples``.
    """
    if keep_samples < 0 or fade_samples < 0:
        raise ValueError(f"keep {keep_samples} and fade {fade_samples} samples must be >= 0")
    kept: list[Pcm16] = []
    left = keep_samples
    for chunk in chunks:
        if left <= 0:
            break
        kept.append(chunk[:left])
        left -= len(kept[-1])
    fade = min(fade_samples, keep_samples - max(0, left))
    if fade > 0:
        tail = np.concatenate(kept)[-fade:] if kept else np.zeros(0, dtype=np.int16)
        ramp = np.linspace(1.0, 0.0, fade + 1)[1:]  # ends at exactly 0
        faded = np.round(tail.astype(np.float64) * ramp).astype(np.int16)
        # Re-split: drop the faded span from the kept chunks, then append it as one chunk.
        drop = fade
        while drop > 0 and kept:
            if len(kept[-1]) <= drop:
                drop -= len(kept.pop())
            else:
                kept[-1] = kept[-1][: len(kept[-1]) - drop]
                drop = 0
        kept.append(faded)
    return [c for c in kept if c.size]
