"""erle_db: the G.168 power ratio on synthetic signals with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from earshot.echo.metrics import erle_db


def _noise(num_samples: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-10_000, 10_000, num_samples).astype(np.int16)


def test_residual_at_a_tenth_of_the_amplitude_is_20_db() -> None:
    mic = np.tile(np.array([1000, -1000], dtype=np.int16), 8_000)
    out = (mic // 10).astype(np.int16)
    assert erle_db(mic, out, skip_ms=0.0) == pytest.approx(20.0, abs=1e-12)


def test_the_skip_excludes_convergence() -> None:
    mic = np.tile(np.array([1000, -1000], dtype=np.int16), 16_000)  # 2 s
    out = mic.copy()
    out[16_000:] //= 100  # converged after 1 s: 40 dB
    assert erle_db(mic, out, skip_ms=1000.0) == pytest.approx(40.0, abs=1e-12)
    assert erle_db(mic, out, skip_ms=0.0) < 4.0


def test_output_delay_aligns_the_residual() -> None:
    mic = _noise(20_000)
    out = np.zeros_like(mic)
    out[128:] = mic[:-128] // 10  # a canceller whose output lags by 128 samples
    out[:128] = 30_000  # what comes out before the lag must not count
    assert erle_db(mic, out, skip_ms=0.0, output_delay_samples=128) == pytest.approx(20.0, abs=0.1)


def test_perfect_cancellation_is_infinite() -> None:
    assert erle_db(_noise(1_000), np.zeros(1_000, dtype=np.int16), skip_ms=0.0) == math.inf


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(ValueError, match="exactly that input"):
        erle_db(_noise(1_000), _noise(999), skip_ms=0.0)
    with pytest.raises(ValueError, match="no samples"):
        erle_db(_noise(1_000), _noise(1_000), skip_ms=1000.0)
    with pytest.raises(ValueError, match="no echo"):
        erle_db(np.zeros(32_000, dtype=np.int16), _noise(32_000), skip_ms=1000.0)
