"""Wire audio formats ↔ the pipeline's int16 16 kHz mono, with streaming resamplers.

* ``audio/pcm``: 16-bit little-endian PCM at 24 kHz (OpenAI Realtime);
* ``audio/pcmu`` / ``audio/pcma``: G.711 µ-law / A-law at 8 kHz (Realtime telephone formats,
  Twilio Media Streams).

Resampling is soxr's streaming resampler (one per direction and stream, so chunk boundaries
leave no clicks); G.711 is `earshot.audio.g711`. Input uses soxr's quick (cubic) quality:
its higher qualities work in blocks and, measured on 20 ms chunks, hand back nothing for the
first 100 ms of 8 kHz input (24 kHz: 20 ms, then every other chunk), a delay that would add
straight to end-pointing. Output uses HQ: it resamples whole TTS chunks and is flushed at
the end of each reply, so the block delay costs only the first few ms of a reply.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from earshot.audio import g711
from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16

WireFormat = Literal["audio/pcm", "audio/pcmu", "audio/pcma"]

WIRE_RATE_HZ: dict[str, int] = {"audio/pcm": 24_000, "audio/pcmu": 8_000, "audio/pcma": 8_000}


class AudioFormatError(ValueError):
    """Bytes that cannot be audio of the declared format; the message says what is wrong."""


class _Resampler:
    """Streaming int16 resampler (soxr) between two rates; identity when they are equal."""

    def __init__(self, from_hz: int, to_hz: int, quality: str) -> None:
        self.from_hz = from_hz
        self.to_hz = to_hz
        self._stream: object | None = None
        if from_hz != to_hz:
            import soxr

            self._stream = soxr.ResampleStream(from_hz, to_hz, 1, dtype="int16", quality=quality)

    def push(self, pcm: Pcm16, last: bool = False) -> Pcm16:
        if self._stream is None:
            return pcm
        out = self._stream.resample_chunk(pcm, last=last)  # type: ignore[attr-defined]
        return np.asarray(out, dtype=np.int16).reshape(-1)


class InputDecoder:
    """Wire bytes of one format → int16 16 kHz, chunk by chunk (keeps resampler state).

    Args:
        fmt: the wire format.
    """

    def __init__(self, fmt: WireFormat) -> None:
        self.fmt = fmt
        self._resampler = _Resampler(WIRE_RATE_HZ[fmt], SAMPLE_RATE_HZ, "QQ")

    def decode(self, data: bytes) -> Pcm16:
        """Decode one chunk; returns the 16 kHz samples available so far (may lag by a few ms).

        Raises:
            AudioFormatError: ``audio/pcm`` with an odd number of bytes.
        """
        match self.fmt:
            case "audio/pcm":
                if len(data) % 2:
                    raise AudioFormatError(
                        f"audio/pcm is 16-bit samples: got {len(data)} bytes, an odd count; "
                        "send whole little-endian int16 samples"
                    )
                wire = np.frombuffer(data, dtype="<i2").astype(np.int16)
            case "audio/pcmu":
                wire = g711.ulaw2lin(data)
            case "audio/pcma":
                wire = g711.alaw2lin(data)
        return self._resampler.push(wire)

    @staticmethod
    def duration_ms(fmt: WireFormat, num_bytes: int) -> float:
        """Duration (ms) of ``num_bytes`` of ``fmt`` audio."""
        bytes_per_sample = 2 if fmt == "audio/pcm" else 1
        return num_bytes / bytes_per_sample * 1000.0 / WIRE_RATE_HZ[fmt]


class OutputEncoder:
    """int16 16 kHz → wire bytes of one format, chunk by chunk; `flush` at the end of a stream."""

    def __init__(self, fmt: WireFormat) -> None:
        self.fmt = fmt
        self._resampler = _Resampler(SAMPLE_RATE_HZ, WIRE_RATE_HZ[fmt], "HQ")

    def encode(self, pcm: Pcm16) -> bytes:
        """Encode one chunk (the resampler may hold back a few ms until the next one)."""
        return self._wire(self._resampler.push(pcm))

    def flush(self) -> bytes:
        """The samples the resampler still holds (call once when the stream ends)."""
        return self._wire(self._resampler.push(np.zeros(0, dtype=np.int16), last=True))

    def _wire(self, pcm: Pcm16) -> bytes:
        match self.fmt:
            case "audio/pcm":
                return pcm.astype("<i2").tobytes()
            case "audio/pcmu":
                return g711.lin2ulaw(pcm)
            case "audio/pcma":
                return g711.lin2alaw(pcm)
