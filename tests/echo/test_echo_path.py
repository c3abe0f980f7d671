"""EchoPath, NoiseLoop and MicMixer: exact behaviour on synthetic and bundled signals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import earshot
from earshot.echo.path import EchoPath, MicMixer, NoiseLoop, room_impulse_response

NOISE_DIR = Path(earshot.__file__).parent / "data" / "noise"


def test_impulse_comes_back_at_the_delay_with_the_gain() -> None:
    path = EchoPath(delay_ms=40.0, gain_db=-6.0, decay_ms=150.0, seed=3)
    impulse = np.zeros(16_000, dtype=np.int16)
    impulse[0] = 10_000

    echo = path.process(impulse)

    delay_samples = 640  # 40 ms at 16 kHz
    assert not echo[:delay_samples].any()
    assert echo[delay_samples] == round(10_000 * 10 ** (-6 / 20))  # 5012
    # The whole output is the impulse response, scaled: exact up to int16 rounding.
    response = path.impulse_response
    np.testing.assert_array_equal(echo[: len(response)], np.round(10_000 * response))
    assert not echo[len(response) :].any()


def test_tail_decays_by_60_db_over_decay_ms_and_holds_the_drr() -> None:
    response = room_impulse_response(
        delay_ms=10.0,
        gain_db=-6.0,
        decay_ms=200.0,
        direct_to_reverberant_db=6.0,
        sample_rate_hz=16_000,
        seed=0,
    )
    direct_index = 160
    tail = response[direct_index + 1 :]
    assert len(tail) == 3200  # 200 ms
    drr_db = 10 * np.log10(response[direct_index] ** 2 / np.sum(tail**2))
    assert drr_db == pytest.approx(6.0, abs=1e-9)

    block_energy_db = 10 * np.log10(np.sum(tail.reshape(20, 160) ** 2, axis=1))  # 10 ms blocks
    slope_db_per_ms = np.polyfit(np.arange(20) * 10.0, block_energy_db, 1)[0]
    assert slope_db_per_ms * 200.0 == pytest.approx(-60.0, rel=0.1)


def test_streaming_equals_one_shot_convolution_for_any_frame_sizes() -> None:
    rng = np.random.default_rng(1)
    signal = rng.integers(-12_000, 12_000, size=9_000).astype(np.int16)
    path = EchoPath(seed=7)
    expected = np.round(np.convolve(signal.astype(np.float64), path.impulse_response))
    expected = np.clip(expected[: len(signal)], -32768, 32767).astype(np.int16)

    sizes = [1, 7, 160, 320, 333, 640, 1000, 4000]  # shorter and longer than the response
    frames, start = [], 0
    for size in sizes * 3:
        if start >= len(signal):
            break
        frames.append(path.process(signal[start : start + size]))
        start += size

    np.testing.assert_array_equal(np.concatenate(frames), expected)


def test_same_seed_same_room_other_seed_other_tail() -> None:
    a = EchoPath(seed=11).impulse_response
    np.testing.assert_array_equal(a, EchoPath(seed=11).impulse_response)
    b = EchoPath(seed=12).impulse_response
    assert a[640] == b[640]
    assert not np.array_equal(a, b)


def test_reset_drops_reverberation_in_flight() -> None:
    path = EchoPath()
    burst = np.full(320, 8_000, dtype=np.int16)
    silence = np.zeros(1_280, dtype=np.int16)  # 80 ms: past the 40 ms delay
    path.process(burst)
    assert path.process(silence).any()
    path.process(burst)
    path.reset()
    assert not path.process(silence).any()


def test_no_tail_and_no_delay_is_a_pure_gain() -> None:
    path = EchoPath(delay_ms=0.0, decay_ms=0.0, gain_db=0.0)
    frame = np.array([1, -2, 30_000, -32768], dtype=np.int16)
    np.testing.assert_array_equal(path.process(frame), frame)


def test_bad_inputs_name_the_fix() -> None:
    with pytest.raises(ValueError, match="1-D int16"):
        EchoPath().process(np.zeros(320, dtype=np.float32))
    with pytest.raises(ValueError, match="≥ 0"):
        EchoPath(delay_ms=-1.0)
    with pytest.raises(ValueError, match="silent"):
        NoiseLoop(np.zeros(100, dtype=np.int16), level_dbfs=-40.0)


def test_noise_loop_hits_the_level_and_wraps() -> None:
    noise = NoiseLoop.from_file(NOISE_DIR / "speechbrain_noise2.wav", level_dbfs=-40.0)
    first = noise.next(80_000)  # the whole 5 s file
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(first**2)) / 32768.0)
    assert rms_dbfs == pytest.approx(-40.0, abs=1e-6)
    np.testing.assert_array_equal(noise.next(1_000), first[:1_000])


def test_mic_mixer_sums_user_echo_and_noise_and_clips() -> None:
    rng = np.random.default_rng(2)
    user = rng.integers(-5_000, 5_000, size=320).astype(np.int16)
    far = rng.integers(-5_000, 5_000, size=320).astype(np.int16)
    noise_src = rng.integers(-3_000, 3_000, size=500).astype(np.int16)

    mixer = MicMixer(EchoPath(seed=4), NoiseLoop(noise_src, level_dbfs=-30.0))
    mic = mixer.process(user, far)

    echo = EchoPath(seed=4).process(far)
    noise = NoiseLoop(noise_src, level_dbfs=-30.0).next(320)
    expected = np.round(user.astype(np.float64) + echo + noise).astype(np.int16)
    np.testing.assert_array_equal(mic, expected)

    loud = np.full(320, 30_000, dtype=np.int16)
    clipped = MicMixer(EchoPath(delay_ms=0.0, decay_ms=0.0, gain_db=0.0)).process(loud, loud)
    assert (clipped == 32767).all()

    with pytest.raises(ValueError, match="same duration"):
        mixer.process(user, far[:160])
