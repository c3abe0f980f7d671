"""A Realtime connection closes what its backends own when it ends (e.g. Whisper's worker)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from serve_helpers import free_port

from earshot.clock import Clock
from earshot.protocols.engine import EngineComponents
from earshot.protocols.routes import COMPONENTS_KEY
from earshot.server.app import build_app
from earshot.server.config import ServerConfig
from earshot.server.run import serving
from earshot.testing import EnergyVad, FakeLlm, FakeStt, FakeTts


def test_a_closed_realtime_connection_runs_its_backends_closers(tmp_path: Path) -> None:
    closed: list[str] = []

    def components(clock: Clock) -> EngineComponents:
        return EngineComponents(
            vad=EnergyVad(),
            stt=FakeStt(),
            llm=FakeLlm(clock),
            tts=FakeTts(),
            closers=(lambda: closed.append("stt"), lambda: closed.append("llm")),
        )

    async def main() -> list[str]:
        config = ServerConfig(port=free_port(), out_dir=tmp_path)
        app = build_app(config)
        app[COMPONENTS_KEY] = components
        async with serving(config, app), aiohttp.ClientSession() as http:
            url = f"ws://127.0.0.1:{config.port}/v1/realtime?model=x"
            async with http.ws_connect(url) as ws:
                first = await ws.receive_json(timeout=10)
                assert first["type"] == "session.created"
                assert closed == []  # still open: nothing closed yet
            for _ in range(200):  # the server notices the close and cleans up
                if len(closed) == 2:
                    break
                await asyncio.sleep(0.05)
        return closed

    assert asyncio.run(main()) == ["stt", "llm"]
