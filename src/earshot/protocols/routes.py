"""Mount the protocol endpoints on the `earshot serve` app.

* ``GET /v1/realtime?model=...`` — OpenAI-Realtime-compatible WebSocket (GA protocol);
* ``GET /twilio/media`` — Twilio Media Streams WebSocket (the ``<Stream url>`` of TwiML): a
  `earshot.transports.twilio.TwilioTransport` under the server's call stack, so a phone call
  runs the same session as a browser call and writes the same per-call outputs.

Both go through the server's admission control (``CALLS_KEY``) and its token/origin check
(``/v1/realtime`` and ``/twilio`` are in `earshot.server.app.CALL_PATH_PREFIXES`). The
Realtime endpoint's per-connection backends are the server call stack's (``--stack``), or
those of a factory stored under `COMPONENTS_KEY`; the Twilio settings come from
`TWILIO_OPTIONS_KEY`.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from earshot.clock import Clock, SystemClock
from earshot.protocols.engine import EngineComponents
from earshot.protocols.realtime.handler import ComponentsFactory, serve_realtime
from earshot.server.config import CALLS_KEY
from earshot.server.registry import Admission, ServerFullError
from earshot.session.config import SessionConfig
from earshot.transports.twilio import TwilioOptions, TwilioTransport

log = logging.getLogger(__name__)

COMPONENTS_KEY: web.AppKey[ComponentsFactory] = web.AppKey("earshot_protocol_components")
TWILIO_OPTIONS_KEY = web.AppKey("earshot_twilio_options", TwilioOptions)

REALTIME_PATH = "/v1/realtime"
TWILIO_PATH = "/twilio/media"


def embedded_components(clock: Clock) -> EngineComponents:
    """Silero VAD, pocketsphinx, the scripted LLM (simulated) and espeak-ng, for one call."""
    from earshot.llm import make_llm
    from earshot.stt import make_stt
    from earshot.tts import make_tts
    from earshot.vad import make_vad

    return EngineComponents(
        vad=make_vad("silero"),
        stt=make_stt("pocketsphinx"),
        llm=make_llm("scripted", clock=clock),
        tts=make_tts("espeak"),
    )


def add_protocol_routes(app: web.Application) -> None:
    """Register the Realtime and Twilio endpoints (a `earshot.server.app.Setup`)."""
    app.router.add_get(REALTIME_PATH, _realtime)
    app.router.add_get(TWILIO_PATH, _twilio)


def _factory(app: web.Application) -> ComponentsFactory:
    """The Realtime backends: `COMPONENTS_KEY` if set, else the server's own call stack's
    (``earshot serve --stack`` and its model flags), else `embedded_components`."""
    custom = app.get(COMPONENTS_KEY)
    if custom is not None:
        return custom
    from earshot.server.stack_choice import stack_of

    build = getattr(stack_of(app), "build_parts", None)
    if not callable(build):
        return embedded_components

    def from_stack(clock: Clock) -> EngineComponents:
        parts = build(clock)
        return EngineComponents(
            vad=parts.vad, stt=parts.stt, llm=parts.llm, tts=parts.tts, closers=parts.closers
        )

    return from_stack


def _session_config(app: web.Application) -> SessionConfig | None:
    """The server call stack's session settings (``earshot serve``), if it has them."""
    from earshot.server.stack_choice import stack_of

    config = getattr(stack_of(app), "config", None)
    return config if isinstance(config, SessionConfig) else None


async def _realtime(request: web.Request) -> web.StreamResponse:
    try:
        with request.app[CALLS_KEY].admit("realtime") as admission:
            config = _session_config(request.app)
            return await serve_realtime(
                request,
                _factory(request.app),
                admission.out_dir,
                config.frame_ms if config is not None else 20,
                config,
            )
    except ServerFullError as exc:
        raise web.HTTPServiceUnavailable(text=str(exc)) from None


async def _twilio(request: web.Request) -> web.StreamResponse:
    try:
        with request.app[CALLS_KEY].admit("twilio") as admission:
            return await _twilio_call(request, admission)
    except ServerFullError as exc:
        raise web.HTTPServiceUnavailable(text=str(exc)) from None


async def _twilio_call(request: web.Request, admission: Admission) -> web.WebSocketResponse:
    from earshot.server.stack_choice import stack_of

    options = request.app.get(TWILIO_OPTIONS_KEY) or TwilioOptions()
    stack = stack_of(request.app)
    ws = web.WebSocketResponse(max_msg_size=1024 * 1024, heartbeat=None)
    await ws.prepare(request)
    clock = SystemClock()
    frame_ms = getattr(getattr(stack, "config", None), "frame_ms", 20)
    transport = TwilioTransport(ws, clock, frame_ms, options)
    try:
        await stack.run_call(transport, clock, admission, lambda _msg: None)
    except asyncio.CancelledError:
        raise
    except Exception:  # a broken call ends itself, never the server
        log.exception("twilio call %s failed", admission.call_id)
    if not ws.closed:
        await ws.close()
    return ws
