"""Fixtures for the failure-handling tests: short real recordings (cut from bundled clips).

Every CLI test runs the real command in a subprocess (``python -m earshot``, `robust_cli`), on
the simulated clock, so exit statuses, signals, the terminal and the files are a user's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earshot.data_files import bundled_data


@pytest.fixture(scope="session")
def short_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real utterance ("has never been surpassed", 1.8 s), 0.3 s lead, 3 s tail: one turn."""
    speech, rate = sf.read(
        bundled_data("speech", "realtimestt_ljspeech_LJ001-0008.wav"), dtype="int16"
    )
    assert rate == 16000
    track = np.concatenate([np.zeros(4800, np.int16), speech, np.zeros(3 * 16000, np.int16)])
    path = tmp_path_factory.mktemp("clips") / "short.wav"
    sf.write(path, track, 16000, subtype="PCM_16")
    return path


@pytest.fixture(scope="session")
def long_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Nine real utterances 4 s apart (~50 s): long enough to stop a run in the middle."""
    parts = []
    for _ in range(3):
        for name in (
            "realtimestt_ljspeech_LJ001-0008.wav",
            "realtimestt_ljspeech_LJ001-0002.wav",
            "realtimestt_ljspeech_LJ001-0013.wav",
        ):
            speech, _ = sf.read(bundled_data("speech", name), dtype="int16")
            parts += [np.zeros(4 * 16000, np.int16), speech]
    path = tmp_path_factory.mktemp("clips") / "long.wav"
    sf.write(path, np.concatenate([*parts, np.zeros(4 * 16000, np.int16)]), 16000)
    return path
