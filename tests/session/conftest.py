"""Shared fixtures: real components loaded once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from earshot.data_files import bundled_data
from earshot.stt import make_stt
from earshot.stt.base import StreamingRecognizer
from earshot.tts import make_tts
from earshot.tts.base import Synthesizer


@pytest.fixture(scope="session")
def stt() -> StreamingRecognizer:
    return make_stt("pocketsphinx")


@pytest.fixture(scope="session")
def tts() -> Synthesizer:
    return make_tts("espeak")


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    return bundled_data("speech")
