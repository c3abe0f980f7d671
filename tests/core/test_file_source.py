"""The file transport's streamed input and recording (real soundfile + soxr, small files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earshot.audio.io import AudioFileError, read_audio
from earshot.transports.file import SoundFileSource, WavRecorder


def _drain(src: SoundFileSource, block: int = 320) -> np.ndarray:
    out = []
    while not src.exhausted:
        out.append(src.read(block))
    src.close()
    return np.concatenate(out)


def test_a_48_khz_stereo_file_streams_to_what_reading_it_whole_gives(tmp_path: Path) -> None:
    t = np.arange(48_000 * 3) / 48_000
    audio = np.stack([0.3 * np.sin(2 * np.pi * 300 * t), 0.2 * np.sin(2 * np.pi * 500 * t)], 1)
    path = tmp_path / "a.wav"
    sf.write(path, audio.astype(np.float32), 48_000, subtype="FLOAT")
    src = SoundFileSource(path)
    assert src.duration_ms == pytest.approx(3000.0)
    streamed = _drain(src)
    whole = read_audio(path)
    assert len(streamed) == len(whole) == 48_000
    assert np.abs(streamed.astype(np.int32) - whole).max() <= 1


def test_a_16_khz_pcm16_mono_file_passes_through_bit_exact(tmp_path: Path) -> None:
    pcm = np.random.default_rng(0).integers(-30_000, 30_000, 16_123).astype(np.int16)
    path = tmp_path / "b.wav"
    sf.write(path, pcm, 16_000, subtype="PCM_16")
    assert np.array_equal(_drain(SoundFileSource(path), 320), pcm)


def test_non_finite_samples_are_read_as_silence(tmp_path: Path) -> None:
    audio = np.full(16_000, 0.25, dtype=np.float32)
    audio[100:200] = np.nan
    audio[300] = np.inf
    path = tmp_path / "nan.wav"
    sf.write(path, audio, 16_000, subtype="FLOAT")
    out = _drain(SoundFileSource(path))
    assert not out[100:200].any() and out[300] == 0 and out[0] == round(0.25 * 32767)


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="is a folder; give the path of one recording"):
        SoundFileSource(tmp_path)
    with pytest.raises(AudioFileError, match="no such file"):
        SoundFileSource(tmp_path / "missing.wav")
    (tmp_path / "x.wav").write_text("not audio")
    with pytest.raises(AudioFileError, match="cannot read it as audio"):
        SoundFileSource(tmp_path / "x.wav")


def test_the_recorder_streams_a_stereo_file_renamed_on_close(tmp_path: Path) -> None:
    rec = WavRecorder(tmp_path / "conversation.wav", tmp_path / "mic.wav")
    user = np.arange(320, dtype=np.int16)
    agent = -user
    for _ in range(3):
        rec.write(user, agent, user // 2)
    assert not (tmp_path / "conversation.wav").exists()  # only the temporary file so far
    rec.close()
    rec.close()  # idempotent
    stereo, rate = sf.read(tmp_path / "conversation.wav", dtype="int16")
    assert rate == 16_000 and stereo.shape == (960, 2)
    assert np.array_equal(stereo[:320, 0], user) and np.array_equal(stereo[:320, 1], agent)
    mic, _ = sf.read(tmp_path / "mic.wav", dtype="int16")
    assert np.array_equal(mic[:320], user // 2)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
