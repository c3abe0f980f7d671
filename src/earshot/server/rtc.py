"""``POST /rtc/offer``: a browser's WebRTC offer in, the answer out, the call in the background.

The browser posts ``{"sdp": ..., "type": "offer"}`` (ICE gathering complete: no trickle). The
server admits the call (HTTP 503 with the reason when full), creates an aiortc peer connection
with host candidates only, answers, and runs the call as a task in the server's call
TaskGroup (`CALL_TASKS_KEY`, set by `earshot.server.run.serving`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from earshot.clock import SystemClock
from earshot.server.config import CALLS_KEY
from earshot.server.registry import ServerFullError

log = logging.getLogger(__name__)

CALL_TASKS_KEY = web.AppKey("earshot_call_tasks", asyncio.TaskGroup)


class RunningCalls:
    """The background call tasks of one server (so shutdown can cancel them)."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()

    def cancel_all(self) -> None:
        for task in list(self.tasks):
            task.cancel()


RUNNING_CALLS_KEY = web.AppKey("earshot_running_calls", RunningCalls)


def start_call_task(app: web.Application, coro: Any) -> None:
    """Run a background call in the server's call TaskGroup (cancelled at shutdown)."""
    task: asyncio.Task[None] = app[CALL_TASKS_KEY].create_task(coro)
    running = app[RUNNING_CALLS_KEY].tasks
    running.add(task)
    task.add_done_callback(running.discard)


class Offer(BaseModel):
    """The browser's session description."""

    model_config = ConfigDict(extra="ignore")
    sdp: str
    type: str


def add_rtc_routes(app: web.Application) -> None:
    """Register ``POST /rtc/offer``."""
    app.router.add_post("/rtc/offer", rtc_offer)


async def rtc_offer(request: web.Request) -> web.Response:
    """Answer one WebRTC offer and start its call."""
    try:
        offer = Offer.model_validate_json(await request.text())
    except ValidationError as exc:
        raise web.HTTPBadRequest(text=f"bad offer: {exc.errors()[0]['msg']}") from None
    if offer.type != "offer" or len(offer.sdp) > 64 * 1024:
        raise web.HTTPBadRequest(text="bad offer: need type 'offer' and an SDP under 64 KiB")
    if CALL_TASKS_KEY not in request.app:
        raise web.HTTPServiceUnavailable(text="server is not running a call task group")
    registry = request.app[CALLS_KEY]
    from earshot.server.stack_choice import stack_of

    stack = stack_of(request.app)
    try:
        slot = registry.admit("rtc")
        admission = slot.__enter__()
    except ServerFullError as exc:
        raise web.HTTPServiceUnavailable(text=str(exc)) from None
    try:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        from earshot.transports.webrtc import WebRtcTransport

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        clock = SystemClock()
        transport = WebRtcTransport(pc, clock, admission.call_id)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
    except Exception as exc:
        slot.__exit__(None, None, None)
        raise web.HTTPBadRequest(text=f"cannot answer this offer: {exc}") from None

    async def call() -> None:
        try:
            await stack.run_call(transport, clock, admission, transport.send)
        except Exception:  # a broken call ends itself, never the server
            log.exception("call %s failed", admission.call_id)
        finally:
            slot.__exit__(None, None, None)
            with contextlib.suppress(Exception):
                await pc.close()

    start_call_task(request.app, call())
    local: Any = pc.localDescription
    return web.json_response({"sdp": local.sdp, "type": local.type, "call_id": admission.call_id})
