"""Opus for network transports, through PyAV's libopus: 20 ms frames of 16 kHz mono PCM16.

* `OpusEncoder` — one PCM16 frame in, one Opus packet out (VoIP mode).
* `OpusDecoder` — one packet in, one PCM16 frame out; ``decode(None)`` conceals a lost packet
  with libopus's own packet-loss concealment. PyAV exposes no "packet lost" call, so the decoder
  is handed the lost packet's table-of-contents byte alone: libopus decodes a frame of length
  ≤ 1 byte as a loss and runs its PLC (RFC 6716 §4.4; ``opus_decode_frame`` in libopus). FEC
  (LBRR) decoding is not reachable through PyAV's decoder API, so a lost packet is concealed,
  never recovered from the next one.

libopus decodes at 48 kHz whatever the stream's rate; the output is resampled to 16 kHz with a
streaming soxr resampler and re-framed, so every call returns exactly one frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16


def _av() -> Any:
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a dependency of the server extra
        raise ImportError("Opus needs PyAV: pip install 'earshot[server]'") from exc
    return av


class OpusEncoder:
    """PCM16 16 kHz mono frames → Opus packets.

    Args:
        frame_ms: 10, 20 or 40.
        bitrate_bps: target bitrate.
    """

    def __init__(self, frame_ms: int = 20, bitrate_bps: int = 24_000) -> None:
        av = _av()
        self._av = av
        self.frame_samples = SAMPLE_RATE_HZ * frame_ms // 1000
        ctx = av.CodecContext.create("libopus", "w")
        ctx.sample_rate = SAMPLE_RATE_HZ
        ctx.layout = "mono"
        ctx.format = "s16"
        ctx.bit_rate = bitrate_bps
        ctx.options = {"frame_duration": str(frame_ms), "application": "voip"}
        ctx.open()
        self._ctx = ctx
        self._pts = 0

    def encode(self, pcm: Pcm16) -> bytes:
        """One frame (int16, ``frame_samples`` long) → one Opus packet.

        Raises:
            ValueError: wrong frame length or dtype.
        """
        if pcm.dtype != np.int16 or pcm.shape != (self.frame_samples,):
            raise ValueError(
                f"Opus encoder takes int16 frames of {self.frame_samples} samples, "
                f"got {pcm.dtype} {pcm.shape}"
            )
        frame = self._av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE_HZ
        frame.pts = self._pts
        self._pts += self.frame_samples
        packets = list(self._ctx.encode(frame))
        return b"".join(bytes(p) for p in packets)


class OpusDecoder:
    """Opus packets → PCM16 16 kHz mono frames, with packet-loss concealment.

    Args:
        frame_ms: frame duration the stream was encoded with.
    """

    def __init__(self, frame_ms: int = 20) -> None:
        import soxr

        av = _av()
        self._av = av
        self.frame_samples = SAMPLE_RATE_HZ * frame_ms // 1000
        ctx = av.CodecContext.create("libopus", "r")
        ctx.sample_rate = 48_000
        ctx.layout = "mono"
        self._ctx = ctx
        self._resampler = soxr.ResampleStream(48_000, SAMPLE_RATE_HZ, 1, dtype="float32")
        self._fifo = np.zeros(0, dtype=np.float32)
        self._last_toc: bytes | None = None
        self.concealed = 0

    def decode(self, packet: bytes | None) -> Pcm16:
        """One packet (or None for a lost one) → one int16 frame of ``frame_samples``.

        Raises:
            ValueError: the packet is not valid Opus.
        """
        if packet is None:
            self.concealed += 1
            if self._last_toc is None:
                return np.zeros(self.frame_samples, dtype=np.int16)
            data = self._last_toc  # TOC byte alone: libopus runs its PLC for one frame
        else:
            data = packet
            self._last_toc = packet[:1]
        try:
            frames = self._ctx.decode(self._av.Packet(data))
        except self._av.error.FFmpegError as exc:
            raise ValueError(f"not a valid Opus packet ({exc})") from None
        for f in frames:
            audio = f.to_ndarray().reshape(-1)
            if audio.dtype == np.int16:
                audio = audio.astype(np.float32) / 32768.0
            out = self._resampler.resample_chunk(audio.astype(np.float32))
            self._fifo = np.concatenate([self._fifo, out])
        n = self.frame_samples
        if len(self._fifo) < n:  # resampler start-up delay: pad the first frame
            self._fifo = np.concatenate([np.zeros(n - len(self._fifo), np.float32), self._fifo])
        frame, self._fifo = self._fifo[:n], self._fifo[n:]
        return np.clip(np.round(frame * 32767.0), -32768, 32767).astype(np.int16)
