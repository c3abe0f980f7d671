"""G.711 µ-law and A-law codecs for 16-bit linear PCM, bit-exact with the ITU-T tables.

Telephone audio (Twilio Media Streams, the OpenAI Realtime ``audio/pcmu`` / ``audio/pcma``
formats) is 8-bit G.711 at 8 kHz. Encoding follows ITU-T Recommendation G.711 (11/1988) as
published in the reference C implementation of its companding (segment search on the 14-bit
µ-law / 13-bit A-law magnitude, bias 0x84 for µ-law, even-bit inversion 0x55 for A-law).
Decoding returns the 16-bit value of each code's reconstruction level. Both directions equal
CPython's former ``audioop.lin2ulaw`` / ``ulaw2lin`` / ``lin2alaw`` / ``alaw2lin`` for sample
width 2 on every input; the tests check all 65 536 samples and all 256 codes against them.

The codec is a table lookup built once at import with numpy: 256 entries per decoder and
65 536 per encoder, so encoding or decoding a 20 ms frame is one indexing operation.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from earshot.audio.frames import Pcm16

Codes = npt.NDArray[np.uint8]
"""1-D uint8 G.711 codes, one per sample."""

_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159  # largest 14-bit magnitude before the bias is added


def _segment(magnitude: npt.NDArray[np.int64], ends: tuple[int, ...]) -> npt.NDArray[np.int64]:
    """Index of the first segment whose upper end is >= ``magnitude`` (8 past the last)."""
    return np.searchsorted(np.asarray(ends, dtype=np.int64), magnitude, side="left").astype(
        np.int64
    )


def _build_ulaw_encoder() -> Codes:
    linear = np.arange(-32768, 32768, dtype=np.int64)
    value = linear >> 2  # 14-bit
    mask = np.where(value < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(value), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = _segment(magnitude, (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF))
    code = (np.minimum(seg, 7) << 4) | ((magnitude >> (np.minimum(seg, 7) + 1)) & 0xF)
    packed = np.where(seg >= 8, 0x7F, code) ^ mask
    # Index by the int16 bit pattern viewed as uint16: 0..32767, then -32768..-1.
    return np.roll(packed.astype(np.uint8), -32768)


def _build_ulaw_decoder() -> npt.NDArray[np.int16]:
    code = ~np.arange(256, dtype=np.int64) & 0xFF
    t = (((code & 0x0F) << 3) + _ULAW_BIAS) << ((code & 0x70) >> 4)
    return np.where((code & 0x80) != 0, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def _build_alaw_encoder() -> Codes:
    linear = np.arange(-32768, 32768, dtype=np.int64)
    value = linear >> 3  # 13-bit
    mask = np.where(value >= 0, 0xD5, 0x55)
    magnitude = np.where(value >= 0, value, -value - 1)
    seg = _segment(magnitude, (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF))
    shift = np.where(seg < 2, 1, np.minimum(seg, 7))
    code = (np.minimum(seg, 7) << 4) | ((magnitude >> shift) & 0xF)
    packed = np.where(seg >= 8, 0x7F, code) ^ mask
    return np.roll(packed.astype(np.uint8), -32768)


def _build_alaw_decoder() -> npt.NDArray[np.int16]:
    code = np.arange(256, dtype=np.int64) ^ 0x55
    t = (code & 0x0F) << 4
    seg = (code & 0x70) >> 4
    level = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where((code & 0x80) != 0, level, -level).astype(np.int16)


_ULAW_ENCODE = _build_ulaw_encoder()
_ULAW_DECODE = _build_ulaw_decoder()
_ALAW_ENCODE = _build_alaw_encoder()
_ALAW_DECODE = _build_alaw_decoder()


def _check_linear(pcm: Pcm16) -> None:
    if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
        got = f"{pcm.dtype} {pcm.shape}" if isinstance(pcm, np.ndarray) else type(pcm).__name__
        raise ValueError(f"G.711 encodes 1-D int16 PCM, got {got}; convert with to_int16 first")


def lin2ulaw(pcm: Pcm16) -> bytes:
    """Encode 16-bit linear PCM to G.711 µ-law, one byte per sample (any sample rate).

    Args:
        pcm: 1-D int16 samples.

    Returns:
        The µ-law bytes, ``len(pcm)`` long.

    Raises:
        ValueError: ``pcm`` is not 1-D int16.
    """
    _check_linear(pcm)
    return _ULAW_ENCODE[pcm.view(np.uint16)].tobytes()


def ulaw2lin(data: bytes) -> Pcm16:
    """Decode G.711 µ-law bytes to 16-bit linear PCM: 1-D int16, one sample per byte."""
    return _ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def lin2alaw(pcm: Pcm16) -> bytes:
    """Encode 16-bit linear PCM to G.711 A-law, one byte per sample (any sample rate).

    Raises:
        ValueError: ``pcm`` is not 1-D int16.
    """
    _check_linear(pcm)
    return _ALAW_ENCODE[pcm.view(np.uint16)].tobytes()


def alaw2lin(data: bytes) -> Pcm16:
    """Decode G.711 A-law bytes to 16-bit linear PCM: 1-D int16, one sample per byte."""
    return _ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]
