"""Silero and WebRTC VAD backends on real bundled recordings."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16
from earshot.audio.io import read_audio
from earshot.vad import VAD_NAMES, make_vad
from earshot.vad.base import VoiceActivityDetector
from earshot.vad.segmenter import SpeechEnded, SpeechStarted, VadEvent, VadSegmenter
from earshot.vad.silero import WINDOW_SAMPLES, SileroVad
from earshot.vad.webrtc import WebRtcVad

DATA = Path(str(files("earshot") / "data"))
PAD_MS = 1000


@pytest.fixture(scope="module")
def padded_speech() -> tuple[Pcm16, float]:
    """LJ001-0002 (1.9 s of read speech) between 1 s of digital silence on each side."""
    speech = read_audio(DATA / "speech" / "realtimestt_ljspeech_LJ001-0002.wav")
    silence = np.zeros(SAMPLE_RATE_HZ * PAD_MS // 1000, dtype=np.int16)
    return np.concatenate((silence, speech, silence)), speech.size * 1000 / SAMPLE_RATE_HZ


def frame_probabilities(
    vad: VoiceActivityDetector, pcm: Pcm16, frame_ms: int
) -> npt.NDArray[np.float64]:
    n = SAMPLE_RATE_HZ * frame_ms // 1000
    return np.array([vad.speech_probability(pcm[i : i + n]) for i in range(0, pcm.size, n)])


@pytest.mark.parametrize("name", VAD_NAMES)
@pytest.mark.parametrize("frame_ms", [10, 20, 40])
def test_high_inside_speech_low_in_silence(
    name: str, frame_ms: int, padded_speech: tuple[Pcm16, float]
) -> None:
    pcm, speech_ms = padded_speech
    probs = frame_probabilities(make_vad(name), pcm, frame_ms)
    starts_ms = np.arange(probs.size) * frame_ms
    lead = probs[starts_ms + frame_ms <= PAD_MS]
    # Margins cover Silero's 32 ms window lag and WebRTC's hangover.
    inside = probs[(starts_ms >= PAD_MS + 100) & (starts_ms + frame_ms <= PAD_MS + speech_ms - 100)]
    trail = probs[starts_ms >= PAD_MS + speech_ms + 150]
    assert lead.max() < 0.1
    assert trail.max() < 0.1
    assert inside.mean() > 0.9
    assert np.mean(inside >= 0.5) > 0.95


@pytest.mark.parametrize("name", VAD_NAMES)
def test_with_segmenter_finds_one_utterance_at_the_speech(
    name: str, padded_speech: tuple[Pcm16, float]
) -> None:
    pcm, speech_ms = padded_speech
    probs = frame_probabilities(make_vad(name), pcm, 20)
    seg = VadSegmenter()
    events: list[VadEvent] = []
    for i, prob in enumerate(probs):
        events += seg.push(float(prob), i * 20.0, 20.0)
    events += seg.finish()
    assert len(events) == 2
    started, ended = events
    assert isinstance(started, SpeechStarted)
    assert isinstance(ended, SpeechEnded)
    # The clip's speech fills it up to a short trailing pause.
    assert PAD_MS - 20 <= started.start_ms <= PAD_MS + 80
    assert PAD_MS + speech_ms - 150 <= ended.end_ms <= PAD_MS + speech_ms + 60


def test_silero_mostly_low_on_mains_hum() -> None:
    hum = read_audio(DATA / "noise" / "audiomentations_mains_hum.wav")
    probs = frame_probabilities(SileroVad(), hum, 20)
    assert probs.mean() < 0.05
    assert np.mean(probs >= 0.5) < 0.02


def test_silero_result_does_not_depend_on_frame_size(padded_speech: tuple[Pcm16, float]) -> None:
    pcm, _ = padded_speech
    pcm = pcm[: pcm.size // 640 * 640]
    # At every 40 ms boundary the latest complete 512-sample window is the same whatever the
    # frame size, so the reported probabilities must be identical there.
    at_40ms = {}
    for frame_ms in (10, 20, 40):
        vad = SileroVad()
        probs = frame_probabilities(vad, pcm, frame_ms)
        at_40ms[frame_ms] = probs[40 // frame_ms - 1 :: 40 // frame_ms]
        assert vad.num_windows == pcm.size // WINDOW_SAMPLES
    np.testing.assert_array_equal(at_40ms[10], at_40ms[40])
    np.testing.assert_array_equal(at_40ms[20], at_40ms[40])
    # Irregular pieces work too (the protocol allows any length).
    vad = SileroVad()
    last = 0.0
    for i in range(0, pcm.size, 100):
        last = vad.speech_probability(pcm[i : i + 100])
    assert last == at_40ms[40][-1]


def test_silero_returns_zero_before_first_window_and_holds_between_windows() -> None:
    vad = SileroVad()
    speech = read_audio(DATA / "speech" / "realtimestt_ljspeech_LJ001-0002.wav")
    assert vad.speech_probability(speech[:320]) == 0.0  # 320 < 512 samples buffered
    first = vad.speech_probability(speech[320:640])  # completes window 1
    assert vad.num_windows == 1
    assert vad.speech_probability(speech[640:800]) == first  # 288 samples pending, no window


def test_silero_reset_restores_initial_state(padded_speech: tuple[Pcm16, float]) -> None:
    pcm, _ = padded_speech
    vad = SileroVad()
    first = frame_probabilities(vad, pcm[:32000], 20)
    vad.speech_probability(pcm[16000:16100])  # leave samples pending and state warm
    vad.reset()
    assert vad.num_windows == 0
    np.testing.assert_array_equal(frame_probabilities(vad, pcm[:32000], 20), first)


def test_webrtc_value_is_fraction_of_10ms_decisions(padded_speech: tuple[Pcm16, float]) -> None:
    pcm, _ = padded_speech
    pcm = pcm[: pcm.size // 640 * 640]
    per_10ms = frame_probabilities(WebRtcVad(), pcm, 10)
    assert set(np.unique(per_10ms)) <= {0.0, 1.0}
    np.testing.assert_allclose(
        frame_probabilities(WebRtcVad(), pcm, 20), per_10ms.reshape(-1, 2).mean(axis=1)
    )
    np.testing.assert_allclose(
        frame_probabilities(WebRtcVad(), pcm, 40), per_10ms.reshape(-1, 4).mean(axis=1)
    )


def test_webrtc_reset_restores_initial_state(padded_speech: tuple[Pcm16, float]) -> None:
    pcm, _ = padded_speech
    vad = WebRtcVad(aggressiveness=1)
    first = frame_probabilities(vad, pcm, 20)
    vad.reset()
    np.testing.assert_array_equal(frame_probabilities(vad, pcm, 20), first)


@pytest.mark.parametrize("name", VAD_NAMES)
def test_rejects_frames_that_are_not_1d_int16(name: str) -> None:
    vad = make_vad(name)
    with pytest.raises(ValueError, match="int16"):
        vad.speech_probability(np.zeros(320, dtype=np.float32))
    with pytest.raises(ValueError, match="1-D"):
        vad.speech_probability(np.zeros((320, 2), dtype=np.int16))
    with pytest.raises(ValueError, match=r"numpy\.int16"):
        vad.speech_probability([0] * 320)  # type: ignore[arg-type]


def test_make_vad_names_and_errors() -> None:
    assert isinstance(make_vad("silero"), SileroVad)
    webrtc = make_vad("webrtc", aggressiveness=2)
    assert isinstance(webrtc, WebRtcVad)
    assert webrtc.aggressiveness == 2
    with pytest.raises(ValueError, match="silero, webrtc"):
        make_vad("cobra")
    with pytest.raises(ValueError, match="aggressiveness"):
        WebRtcVad(aggressiveness=4)
