"""The ``/v1/realtime`` WebSocket handler: a thin shell around `RealtimeProtocol`.

Three tasks per connection in one TaskGroup: the reader (client frames → the protocol), the
engine (models), and the writer (server events → the socket, in order). A bad client event
becomes an ``error`` event; only the client closing (or the server stopping) ends the call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from aiohttp import WSMsgType, web

from earshot.audio.io import write_text_atomic
from earshot.clock import Clock, SystemClock, run_blocking
from earshot.protocols.engine import EngineComponents, ProtocolEngine
from earshot.protocols.engine_types import EngineEvent
from earshot.protocols.realtime.events import EarshotLatencyEvent, ServerEvent
from earshot.protocols.realtime.machine import Output, RealtimeProtocol
from earshot.session.config import SessionConfig

log = logging.getLogger(__name__)

ComponentsFactory = Callable[[Clock], EngineComponents]
"""Builds one connection's backends on its clock (models load here, per connection)."""

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest client frame accepted: the API allows appends of up to 15 MiB of audio."""


class RealtimeConnection:
    """One Realtime client connection (usable without aiohttp: feed `client_text`)."""

    def __init__(
        self,
        model: str,
        components: EngineComponents,
        clock: Clock,
        frame_ms: int = 20,
        config: SessionConfig | None = None,
    ) -> None:
        self.clock = clock
        self.protocol = RealtimeProtocol(model)
        self.engine = ProtocolEngine(
            components, clock, self._on_engine_event, frame_ms, config=config
        )
        self.outbox: asyncio.Queue[str] = asyncio.Queue()
        self.latency: list[EarshotLatencyEvent] = []

    def open(self) -> None:
        self._dispatch(self.protocol.open(self.clock.now_ms()))

    def client_text(self, data: str | bytes) -> None:
        self._dispatch(self.protocol.client_event(data, self.clock.now_ms()))

    def _on_engine_event(self, event: EngineEvent) -> None:
        self._dispatch(self.protocol.engine_event(event, self.clock.now_ms()))

    def _dispatch(self, outputs: Sequence[Output]) -> None:
        for out in outputs:
            if isinstance(out, ServerEvent):
                if isinstance(out, EarshotLatencyEvent):
                    self.latency.append(out)
                self.outbox.put_nowait(out.model_dump_json())
            else:
                self.engine.submit(out)


async def serve_realtime(
    request: web.Request,
    factory: ComponentsFactory,
    out_dir: Path | None = None,
    frame_ms: int = 20,
    config: SessionConfig | None = None,
) -> web.WebSocketResponse:
    """Accept a Realtime WebSocket and run the call until the client closes it; then write
    each response's latency record (the ``earshot.latency`` events) to
    ``out_dir/turns.jsonl`` if ``out_dir`` is given. ``config`` is the server's session
    settings (see `ProtocolEngine`)."""
    model = request.query.get("model", "")
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, heartbeat=None)
    await ws.prepare(request)
    clock = SystemClock()
    try:
        components = await asyncio.get_running_loop().run_in_executor(None, factory, clock)
    except Exception as exc:
        log.exception("realtime: could not load the models")
        await ws.send_json(
            {
                "type": "error",
                "event_id": "event_0",
                "error": {
                    "type": "server_error",
                    "code": "models_unavailable",
                    "message": f"earshot could not load its models: {exc}",
                },
            }
        )
        await ws.close()
        return ws
    conn = RealtimeConnection(model or "earshot", components, clock, frame_ms, config)
    conn.open()

    async def reader() -> None:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT or msg.type == WSMsgType.BINARY:
                conn.client_text(msg.data)
            elif msg.type == WSMsgType.ERROR:
                break

    async def writer() -> None:
        while True:
            text = await conn.outbox.get()
            if ws.closed:
                return
            await ws.send_str(text)

    class _Closed(Exception):
        pass

    async def until_closed() -> None:
        await reader()
        raise _Closed

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(conn.engine.run())
            tg.create_task(writer())
            tg.create_task(until_closed())
    except* _Closed:
        pass
    except* (ConnectionResetError, ConnectionError):
        log.info("realtime: client went away")
    finally:
        if not ws.closed:
            await ws.close()
        for close in components.closers:
            try:
                await run_blocking(close)
            except Exception:  # a backend that fails to close must not hide the call's outputs
                log.exception("realtime: closing a backend failed")
        if out_dir is not None and conn.latency:
            out_dir.mkdir(parents=True, exist_ok=True)
            lines = "".join(record.model_dump_json() + "\n" for record in conn.latency)
            write_text_atomic(out_dir / "turns.jsonl", lines)
    return ws
