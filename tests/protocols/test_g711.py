"""G.711 codec: bit-exact against CPython 3.11's audioop on every sample and every code."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from earshot.audio import g711

if sys.version_info >= (3, 13):  # audioop left the standard library in 3.13
    pytest.skip("the audioop oracle needs Python < 3.13", allow_module_level=True)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


def test_ulaw_encode_matches_audioop_on_every_sample() -> None:
    assert g711.lin2ulaw(ALL_SAMPLES) == audioop.lin2ulaw(ALL_SAMPLES.tobytes(), 2)


def test_alaw_encode_matches_audioop_on_every_sample() -> None:
    assert g711.lin2alaw(ALL_SAMPLES) == audioop.lin2alaw(ALL_SAMPLES.tobytes(), 2)


def test_ulaw_decode_matches_audioop_on_every_code() -> None:
    expected = np.frombuffer(audioop.ulaw2lin(ALL_CODES, 2), dtype=np.int16)
    np.testing.assert_array_equal(g711.ulaw2lin(ALL_CODES), expected)


def test_alaw_decode_matches_audioop_on_every_code() -> None:
    expected = np.frombuffer(audioop.alaw2lin(ALL_CODES, 2), dtype=np.int16)
    np.testing.assert_array_equal(g711.alaw2lin(ALL_CODES), expected)


def test_round_trip_is_idempotent_on_codes() -> None:
    # Decoding then encoding a code gives the same code back (µ-law has two zeros: 0x7F, 0xFF).
    for encode, decode in ((g711.lin2ulaw, g711.ulaw2lin), (g711.lin2alaw, g711.alaw2lin)):
        again = encode(decode(ALL_CODES))
        same = np.frombuffer(again, np.uint8) == np.frombuffer(ALL_CODES, np.uint8)
        assert same.sum() >= 255


def test_rejects_non_int16() -> None:
    with pytest.raises(ValueError, match="int16"):
        g711.lin2ulaw(np.zeros(10, dtype=np.float32))  # type: ignore[arg-type]
