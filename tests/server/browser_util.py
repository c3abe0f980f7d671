"""Headless Chromium for the call-page tests (Debian's ``chromium`` + the Playwright package;
never ``playwright install``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from earshot.data_files import bundled_data
from earshot.transports.file import load_caller

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def chromium_args(fake_audio: Path) -> list[str]:
    """Flags for a headless call: fake mic from ``fake_audio`` (played once). The profile
    directory is passed to ``launch_persistent_context`` (a fresh one per test)."""
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_audio}%noloop",
        "--autoplay-policy=no-user-gesture-required",
    ]


def two_utterance_caller(path: Path) -> tuple[float, float]:
    """Real recordings laid out as: 1 s silence, LJ001-0004 (a question-length sentence),
    2.6 s silence (the agent answers), LJ001-0013 (talks over the answer: a barge-in), 6 s of
    silence. Returns (first speech end, second speech start) in seconds."""
    first = load_caller(bundled_data("speech", "realtimestt_ljspeech_LJ001-0004.wav"))
    second = load_caller(bundled_data("speech", "realtimestt_ljspeech_LJ001-0013.wav"))
    sr = 16_000
    gap = np.zeros(int(2.6 * sr), np.int16)
    x = np.concatenate([np.zeros(sr, np.int16), first, gap, second, np.zeros(6 * sr, np.int16)])
    sf.write(path, x, sr, subtype="PCM_16")
    return (sr + len(first)) / sr, (sr + len(first) + len(gap)) / sr
