"""Files bundled in the package's ``data/`` folder (the demo caller, clips, model data)."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

DEMO_CALLER = "demo_caller.wav"
"""The bundled demo caller recording (16 kHz mono PCM16 WAV), under ``data/``."""


def bundled_data(*parts: str) -> Path:
    """Path of a file bundled in the package's ``data/`` folder."""
    return Path(str(importlib.resources.files("earshot").joinpath("data", *parts)))
