"""Bridge a blocking TTS generator (run in a worker thread) to an async iterator."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

from earshot.tts.base import Synthesizer, TtsChunk


async def stream_tts(tts: Synthesizer, text: str) -> AsyncIterator[TtsChunk]:
    """Yield ``tts.synthesize(text)``'s chunks as the worker thread produces them.

    Closing the iterator early (cancellation, barge-in) tells the worker to stop after the
    chunk it is on and closes the synthesizer's generator in that thread.

    Raises:
        Exception: whatever the synthesizer raised, re-raised here.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[TtsChunk | None] = asyncio.Queue()
    stop = threading.Event()

    def work() -> None:
        gen = tts.synthesize(text)
        try:
            for chunk in gen:
                if stop.is_set():
                    break
                loop.call_soon_threadsafe(queue.put_nowait, chunk)
        finally:
            gen.close()
            loop.call_soon_threadsafe(queue.put_nowait, None)

    worker = loop.run_in_executor(None, work)
    try:
        while (chunk := await queue.get()) is not None:
            yield chunk
        await worker
    finally:
        stop.set()
        if not worker.done():
            # Let the thread wind down without blocking the caller's cancellation.
            worker.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)
