"""A real `earshot serve` app on 127.0.0.1 for the protocol tests, and bundled speech."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import soxr

from earshot.audio.frames import Pcm16
from earshot.audio.io import read_audio
from earshot.server.app import build_app
from earshot.server.config import ServerConfig
from earshot.server.run import serving

SPEECH = Path(__file__).parents[2] / "src" / "earshot" / "data" / "speech"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def running_server(out_dir: Path) -> AsyncIterator[int]:
    """Start the real app (page, call and protocol routes) and yield its port."""
    config = ServerConfig(port=free_port(), out_dir=out_dir)
    async with serving(config, build_app(config)):
        yield config.port


def speech(name: str, rate_hz: int = 16_000) -> Pcm16:
    """A bundled recording as int16 mono at ``rate_hz``."""
    pcm = read_audio(SPEECH / name, 16_000)
    if rate_hz == 16_000:
        return pcm
    return np.asarray(soxr.resample(pcm, 16_000, rate_hz), dtype=np.int16)
