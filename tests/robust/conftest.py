"""Fixtures for the failure-handling tests: a short real recording and a way to run `earshot`.

Every CLI test runs the real command in a subprocess (``python -m earshot``), on the simulated
clock, so exit statuses, signals, the terminal and the files are the ones a user gets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earshot.cli import bundled_data


@pytest.fixture(scope="session")
def short_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real utterance ("has never been surpassed", 1.8 s), 0.3 s lead, 3 s tail: one turn."""
    speech, rate = sf.read(
        bundled_data("speech", "realtimestt_ljspeech_LJ001-0008.wav"), dtype="int16"
    )
    assert rate == 16000
    track = np.concatenate(
        [np.zeros(4800, np.int16), speech, np.zeros(3 * 16000, np.int16)]
    )
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


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def last_line(self) -> str:
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def earshot_env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": src + (os.pathsep + path if path else ""), "COLUMNS": "200"}


def earshot(
    *args: str | os.PathLike[str],
    timeout_s: float = 120.0,
    env_extra: dict[str, str] | None = None,
) -> Run:
    """Run ``python -m earshot ARGS`` to completion."""
    proc = subprocess.run(
        [sys.executable, "-m", "earshot", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**earshot_env(), **(env_extra or {})},
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)
