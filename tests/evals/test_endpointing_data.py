"""Synthetic end-pointing turns: pause insertion, ground truth, SNR mixing on real recordings."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from earshot.audio.io import read_audio
from earshot.evals.endpointing_data import (
    InsertedPause,
    active_mask,
    build_turn,
    insert_pause,
    mix_at_snr,
    with_noise,
)

DATA = Path(str(resources.files("earshot").joinpath("data")))


def test_insert_pause_exact() -> None:
    pcm = np.arange(1, 11, dtype=np.int16)
    out = insert_pause(pcm, 4, 0.25)  # 0.25 ms = 4 samples at 16 kHz
    assert out.tolist() == [1, 2, 3, 4, 0, 0, 0, 0, 5, 6, 7, 8, 9, 10]
    assert out.dtype == np.int16
    assert insert_pause(pcm, 10, 0.125).tolist()[-2:] == [0, 0]
    with pytest.raises(ValueError, match="outside the audio"):
        insert_pause(pcm, 11, 10)
    with pytest.raises(ValueError, match=">= 0 ms"):
        insert_pause(pcm, 2, -1)


def test_build_turn_tracks_ground_truth_through_pauses() -> None:
    speech = np.full(16000, 1000, dtype=np.int16)  # 1 s
    turn = build_turn(speech, [(12000, 300.0), (4000, 500.0)], lead_ms=100, tail_ms=1000)
    lead = 1600
    assert turn.pauses == (
        InsertedPause(lead + 4000, 8000),
        InsertedPause(lead + 12000 + 8000, 4800),
    )
    assert turn.turn_end_sample == lead + 16000 + 8000 + 4800
    assert turn.turn_end_ms == 1000 * turn.turn_end_sample / 16000
    assert len(turn.pcm) == turn.turn_end_sample + 16000
    for p in turn.pauses:
        assert not turn.pcm[p.start_sample : p.end_sample].any()
        assert turn.pcm[p.start_sample - 1] == 1000 and turn.pcm[p.end_sample] == 1000
    assert turn.pauses[0].duration_ms == 500.0
    assert turn.pause_at(lead + 4000) == turn.pauses[0]
    assert turn.pause_at(lead + 3999) is None
    assert not turn.pcm[turn.turn_end_sample :].any()
    assert turn.pcm[turn.turn_end_sample - 1] == 1000


def test_build_turn_rejects_bad_pauses() -> None:
    speech = np.ones(1000, dtype=np.int16)
    with pytest.raises(ValueError, match="not inside the speech"):
        build_turn(speech, [(1000, 200.0)])
    with pytest.raises(ValueError, match="not inside the speech"):
        build_turn(speech, [(600, 200.0)], speech_end_sample=500)
    with pytest.raises(ValueError, match="same point"):
        build_turn(speech, [(300, 200.0), (300, 100.0)])


def test_mix_at_snr_hits_the_target_over_active_speech() -> None:
    speech = read_audio(DATA / "speech" / "realtimestt_ljspeech_LJ001-0002.wav")
    noise = read_audio(DATA / "noise" / "speechbrain_noise2.wav")
    turn = build_turn(speech, [(len(speech) // 2, 400.0)], source="LJ001-0002")
    mask = active_mask(turn.pcm)
    pause = turn.pauses[0]
    assert not mask[:8000].any()  # the 500 ms lead silence
    # the pause is inactive, up to the 20 ms frame straddling each edge
    assert not mask[pause.start_sample + 320 : pause.end_sample - 320].any()
    assert mask[pause.start_sample - 320] and mask[pause.end_sample + 320]
    for snr_db in (0.0, 10.0, 20.0):
        noisy = with_noise(turn, noise, snr_db, np.random.default_rng(7), "noise2")
        assert noisy.turn_end_sample == turn.turn_end_sample and noisy.snr_db == snr_db
        residual = noisy.pcm.astype(np.float64) - turn.pcm
        s = turn.pcm.astype(np.float64)[mask]
        measured = 10 * np.log10(np.mean(s**2) / np.mean(residual**2))
        assert measured == pytest.approx(snr_db, abs=0.1)
        # the inserted pause now holds noise
        assert noisy.pcm[turn.pauses[0].start_sample : turn.pauses[0].end_sample].any()


def test_mix_loops_short_noise_and_is_seeded() -> None:
    speech = np.full(5000, 3000, dtype=np.int16)
    noise = np.array([100, -100, 200], dtype=np.int16)
    a = mix_at_snr(speech, noise, 10.0, np.random.default_rng(1))
    b = mix_at_snr(speech, noise, 10.0, np.random.default_rng(1))
    assert np.array_equal(a, b) and len(a) == 5000
    residual = a.astype(np.int64) - speech
    assert np.array_equal(residual[3:], residual[:-3])  # period of the looped noise


def test_mix_rejects_unusable_input() -> None:
    rng = np.random.default_rng(0)
    speech = np.full(1000, 3000, dtype=np.int16)
    with pytest.raises(ValueError, match="empty or silent"):
        mix_at_snr(speech, np.zeros(100, np.int16), 10, rng)
    with pytest.raises(ValueError, match="no active samples"):
        mix_at_snr(np.zeros(1000, np.int16), np.ones(100, np.int16), 10, rng)
    with pytest.raises(ValueError, match="shape"):
        mix_at_snr(speech, np.ones(100, np.int16), 10, rng, np.ones(10, bool))
