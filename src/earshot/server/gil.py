"""Keep GIL-holding model calls from stalling every other call in the process.

pocketsphinx's Python binding holds the GIL for the whole of ``process_raw``: fed one second of
audio (a backlog the STT worker coalesced), the event loop thread, and with it every call's
frame ticks, stops for as long (measured here: 1.19 s for 8 s of audio, the loop's 5 ms ticker
stalled for 1.19 s). `SlicedRecognizer` feeds such a recognizer in short slices and yields the
GIL between them, so the longest stall is one slice's decode (a few ms) while the total work is
unchanged. Recognizers that release the GIL themselves do not need it.
"""

from __future__ import annotations

import time

import numpy as np

from earshot.audio.frames import Pcm16
from earshot.stt.base import StreamingRecognizer, Transcript

DEFAULT_SLICE_SAMPLES = 640
"""40 ms at 16 kHz: pocketsphinx decodes it in a few ms on one core."""


class SlicedRecognizer:
    """Wraps a `StreamingRecognizer`; same behaviour, shorter GIL holds.

    Args:
        inner: the recognizer (its pause hints, if any, are passed through).
        slice_samples: most samples handed to ``inner.push_audio`` at once.
    """

    def __init__(self, inner: StreamingRecognizer, slice_samples: int = DEFAULT_SLICE_SAMPLES):
        self.inner = inner
        self.name = inner.name
        self.slice_samples = slice_samples

    def start(self) -> None:
        self.inner.start()

    def push_audio(self, pcm: Pcm16) -> str:
        partial = ""
        n = self.slice_samples
        for i in range(0, max(1, len(pcm)), n):
            partial = self.inner.push_audio(np.ascontiguousarray(pcm[i : i + n]))
            time.sleep(0)  # release the GIL: let the event loop and other calls run
        return partial

    def finish(self) -> Transcript:
        return self.inner.finish()

    def speech_paused(self, audio_ms: float) -> None:
        hint = getattr(self.inner, "speech_paused", None)
        if hint is not None:
            hint(audio_ms)

    def speech_resumed(self) -> None:
        hint = getattr(self.inner, "speech_resumed", None)
        if hint is not None:
            hint()
