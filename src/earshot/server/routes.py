"""The call endpoints of `earshot serve`: WebSocket ``GET /ws`` and WebRTC ``POST /rtc/offer``.

Both go through the same steps: token/origin check (`earshot.server.app.access_middleware`),
admission (`CallRegistry.admit`, refused with ``server_full`` when the process is full), one
fresh session clock and one fresh set of stage components per call (`CallStack`), and the
per-call outputs. A call that fails for any reason is logged and closed with an ``error``
message; it never touches another call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import WSMsgType, web

from earshot.clock import SystemClock
from earshot.server import protocol as proto
from earshot.server.config import CALLS_KEY, CONFIG_KEY
from earshot.server.registry import ServerFullError
from earshot.server.stack_choice import ensure_stack, stack_of
from earshot.transports.websocket import WebSocketTransport

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10.0


def add_call_routes(app: web.Application) -> None:
    """Register the call endpoints on ``app`` (a `earshot.server.app.Setup`)."""
    app.router.add_get("/ws", ws_call)
    app.on_startup.append(ensure_stack)
    from earshot.server.rtc import add_rtc_routes

    add_rtc_routes(app)


async def _refuse(ws: web.WebSocketResponse, code: str, message: str) -> web.WebSocketResponse:
    await ws.send_str(proto.dump(proto.ErrorMsg(code=code, message=message)))
    await ws.close()
    return ws


async def ws_call(request: web.Request) -> web.WebSocketResponse:
    """One WebSocket call: hello, admission, clock sync, the session, outputs, bye."""
    config = request.app[CONFIG_KEY]
    registry = request.app[CALLS_KEY]
    # aiohttp's own limit is kept well above ours so that the transport can say why it closes.
    ws = web.WebSocketResponse(max_msg_size=4 * config.max_message_bytes, heartbeat=None)
    await ws.prepare(request)
    try:
        first = await ws.receive(timeout=HELLO_TIMEOUT_S)
    except TimeoutError:
        return await _refuse(ws, "bad_message", "no hello within 10 s")
    if first.type != WSMsgType.TEXT:
        return await _refuse(ws, "bad_message", "the first message must be a JSON hello")
    try:
        hello = proto.parse_client(first.data)
    except proto.ProtocolError as exc:
        return await _refuse(ws, "bad_message", str(exc))
    if not isinstance(hello, proto.Hello):
        return await _refuse(ws, "bad_message", "the first message must be a hello")
    if hello.protocol != proto.PROTOCOL_VERSION:
        return await _refuse(
            ws, "bad_message", f"protocol {hello.protocol} unsupported; this server speaks 1"
        )
    stack = stack_of(request.app)
    try:
        with registry.admit("ws") as admission:
            clock = SystemClock()
            transport = WebSocketTransport(
                ws, clock, hello, admission.call_id, max_message_bytes=config.max_message_bytes
            )
            try:
                summary = await stack.run_call(transport, clock, admission, transport.send)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken call ends itself, never the server
                log.exception("call %s failed", admission.call_id)
                if not ws.closed:
                    await _refuse(ws, "internal", f"the call failed: {exc}")
                return ws
            finally:
                registry.record_lateness(transport.tick_lateness)
            if not ws.closed:
                bye = proto.Bye(
                    call_id=admission.call_id, out_dir=str(admission.out_dir), turns=summary.turns
                )
                # A client that vanished (reset, no close frame) leaves ``ws.closed`` False
                # while its transport is closing: the bye has no one to go to.
                with contextlib.suppress(ConnectionResetError):
                    await ws.send_str(proto.dump(bye))
                    await ws.close()
    except ServerFullError as exc:
        return await _refuse(ws, "server_full", str(exc))
    return ws
