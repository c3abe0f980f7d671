"""The STT worker: feeds the streaming recognizer off the event loop, in stream order.

Items arrive on a queue from the listener's events; consecutive audio frames that queued up
while the recognizer was busy are coalesced into one push. A recognizer error never ends the
worker: the turn's final becomes an exception its response records, and later turns go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from earshot.audio.frames import Pcm16, samples_to_ms
from earshot.clock import run_blocking
from earshot.stt.base import StreamingRecognizer, SupportsPauseHints, Transcript

log = logging.getLogger("earshot.session")


@dataclass(frozen=True, slots=True)
class SttStart:
    """Begin a new turn."""


@dataclass(frozen=True, slots=True)
class SttAudio:
    """Audio of the open turn (int16 16 kHz)."""

    pcm: Pcm16


@dataclass(frozen=True, slots=True)
class SttPause:
    """The caller paused inside the open turn (for `SupportsPauseHints`)."""


@dataclass(frozen=True, slots=True)
class SttResume:
    """The caller spoke again inside the open turn."""


@dataclass(frozen=True, slots=True)
class SttFinish:
    """End the turn; the final goes into ``result`` (None: discard the utterance)."""

    result: asyncio.Future[Transcript] | None


SttItem = SttStart | SttAudio | SttPause | SttResume | SttFinish


class SttWorker:
    """Consumes `SttItem` from ``queue`` until it gets None.

    Args:
        stt: the recognizer (all its methods are blocking and run in the executor).
        on_partial: called on the loop with each new partial hypothesis.
    """

    def __init__(self, stt: StreamingRecognizer, on_partial: Callable[[str], None]) -> None:
        self.stt = stt
        self.on_partial = on_partial
        self.queue: asyncio.Queue[SttItem | None] = asyncio.Queue()
        self._hints = isinstance(stt, SupportsPauseHints)
        self._active = False
        self._pushed_samples = 0
        self._error: str | None = None

    @property
    def busy(self) -> bool:
        """Items are queued."""
        return not self.queue.empty()

    async def run(self) -> None:
        backlog: deque[SttItem | None] = deque()
        while True:
            if not backlog:
                backlog.append(await self.queue.get())
            while not self.queue.empty():  # catch up: take everything queued, in order
                backlog.append(self.queue.get_nowait())
            item = backlog.popleft()
            if item is None:
                return
            if isinstance(item, SttAudio):
                chunks = [item.pcm]
                while backlog and isinstance(backlog[0], SttAudio):
                    nxt = backlog.popleft()
                    assert isinstance(nxt, SttAudio)
                    chunks.append(nxt.pcm)
                item = SttAudio(chunks[0] if len(chunks) == 1 else np.concatenate(chunks))
            await self._handle(item)

    async def _handle(self, item: SttItem) -> None:
        try:
            match item:
                case SttStart():
                    self._active, self._pushed_samples, self._error = False, 0, None
                    await run_blocking(self.stt.start)
                    self._active = True
                case SttAudio() if self._active:
                    partial = await run_blocking(self.stt.push_audio, item.pcm)
                    self._pushed_samples += len(item.pcm)
                    self.on_partial(partial)
                case SttPause() if self._active and self._hints:
                    audio_ms = samples_to_ms(self._pushed_samples)
                    await run_blocking(self.stt.speech_paused, audio_ms)  # type: ignore[attr-defined]
                case SttResume() if self._active and self._hints:
                    await run_blocking(self.stt.speech_resumed)  # type: ignore[attr-defined]
                case SttFinish():
                    await self._finish(item)
                case _:
                    pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._error = f"{type(exc).__name__}: {exc}"
            log.warning("STT failed: %s", self._error)
            self._active = False
            if isinstance(item, SttFinish) and item.result is not None and not item.result.done():
                item.result.set_exception(exc)

    async def _finish(self, item: SttFinish) -> None:
        was_active, error = self._active, self._error
        self._active = False
        if was_active:
            transcript = await run_blocking(self.stt.finish)
        elif error is not None:
            raise RuntimeError(f"the recognizer failed earlier in this turn ({error})")
        else:
            transcript = Transcript("")
        if item.result is not None and not item.result.done():
            item.result.set_result(transcript)
