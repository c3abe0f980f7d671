"""The `earshot serve` HTTP application: one aiohttp app for the page, WebSocket and WebRTC.

`build_app` returns an `aiohttp.web.Application` that already has

* ``GET /`` — the call page (static HTML/JS in ``earshot/server/static``, no build step);
* ``GET /static/...`` — the page's assets;
* ``GET /healthz`` — JSON: active calls, capacity, refused calls so far;
* the call endpoints registered by `earshot.server.calls` (``GET /ws`` WebSocket,
  ``POST /rtc/offer`` WebRTC), added through the same hook other endpoints use.

Adding endpoints (the OpenAI-Realtime ``/v1/realtime`` and Twilio Media Streams endpoints do
this): pass ``setups=[fn]`` where ``fn(app)`` adds routes with ``app.router.add_get(...)`` /
``app.router.add_post(...)``, or call those on the returned app before it starts. A handler
reads the shared objects through the typed app keys: ``request.app[CONFIG_KEY]`` (the
`ServerConfig`) and ``request.app[CALLS_KEY]`` (the `CallRegistry`: admission control with
backpressure, the per-call output folders and the inference pool). Every route that starts a
call must go through ``registry.admit(...)`` so that a full server refuses the new call with a
clear message instead of degrading every call, and must check `check_access` (token and
origin) — `access_middleware` already does that for every path in `CALL_PATH_PREFIXES` and
for paths a setup adds with `protect_path`.

A new endpoint, in full (its transport implements `earshot.transports.base.Transport`, and
`earshot.session.events.SessionEventSink` if it wants transcripts and turns)::

    from earshot.clock import SystemClock
    from earshot.server.app import build_app
    from earshot.server.config import CALLS_KEY
    from earshot.server.registry import ServerFullError
    from earshot.server.stack_choice import stack_of

    async def realtime(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(); await ws.prepare(request)
        try:
            with request.app[CALLS_KEY].admit("realtime") as admission:
                clock = SystemClock()
                transport = RealtimeTransport(ws, clock)      # yours
                await stack_of(request.app).run_call(transport, clock, admission, notify)
        except ServerFullError as exc:
            ...  # tell the client exc's message in your protocol, then close
        return ws

    app = build_app(config, setups=[lambda app: app.router.add_get("/v1/realtime", realtime)])

``run_call`` builds the call's own components in the inference pool, runs the session on the
transport and writes the call's folder; ``notify`` receives the `earshot.server.protocol`
page messages (pass ``lambda msg: None`` if the protocol has no use for them).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from aiohttp import web

from earshot.server.config import CALLS_KEY, CONFIG_KEY, ServerConfig, is_loopback
from earshot.server.registry import CallRegistry

STATIC_DIR = Path(__file__).with_name("static")

CALL_PATH_PREFIXES: tuple[str, ...] = ("/ws", "/rtc/", "/v1/realtime", "/twilio")
"""Paths that start or carry a call: token and origin are checked on every request to them."""


_PROTECTED_KEY = web.AppKey("earshot_protected", list[str])

Setup = Callable[[web.Application], None]


def protect_path(app: web.Application, prefix: str) -> None:
    """Make `access_middleware` check token and origin on every path starting with
    ``prefix`` (for endpoints added by a setup outside `CALL_PATH_PREFIXES`)."""
    app[_PROTECTED_KEY].append(prefix)


def check_access(config: ServerConfig, request: web.Request) -> str | None:
    """Why this request may not open a call, or None if it may.

    The token is compared in constant time. A request with an ``Origin`` header (every
    browser request) must come from an allowed origin or, on loopback, from the server's own
    origin; a request without one (a server-to-server client) needs only the token.
    """
    if config.token is not None:
        presented = request.query.get("token") or ""
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            presented = auth.removeprefix("Bearer ")
        if not hmac.compare_digest(presented.encode(), config.token.encode()):
            return "missing or wrong token: pass ?token=... or 'Authorization: Bearer ...'"
    origin = request.headers.get("Origin")
    if origin is not None:
        own = f"{request.scheme}://{request.host}"
        allowed = set(config.allowed_origins)
        if is_loopback(config.host):
            allowed.add(own)
        if origin not in allowed:
            return f"origin {origin} is not allowed: add it to --allowed-origins"
    return None


@web.middleware
async def access_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """403 with a one-line reason for call paths the token/origin check refuses."""
    prefixes = (*CALL_PATH_PREFIXES, *request.app[_PROTECTED_KEY])
    if request.path.startswith(prefixes):
        reason = check_access(request.app[CONFIG_KEY], request)
        if reason is not None:
            raise web.HTTPForbidden(text=reason)
    return await handler(request)


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def _health(request: web.Request) -> web.Response:
    registry = request.app[CALLS_KEY]
    return web.json_response(registry.status().model_dump())


def build_app(
    config: ServerConfig,
    *,
    registry: CallRegistry | None = None,
    setups: Sequence[Setup] = (),
    call_routes: bool = True,
) -> web.Application:
    """The application for `earshot serve`.

    Args:
        config: the server settings.
        registry: admission control and call bookkeeping (default: one sized by
            ``config.max_calls``, writing into ``config.out_dir``).
        setups: functions called with the app to add routes (see the module docstring).
        call_routes: register the WebSocket and WebRTC call endpoints (False: page and
            health only, e.g. for a test of another endpoint).

    Returns:
        The application; run it with ``aiohttp.web.run_app`` or an ``AppRunner``.
    """
    app = web.Application(middlewares=[access_middleware], client_max_size=1024**2)
    app[CONFIG_KEY] = config
    app[CALLS_KEY] = registry or CallRegistry(max_calls=config.max_calls, out_dir=config.out_dir)
    app[_PROTECTED_KEY] = []
    app.router.add_get("/", _index)
    app.router.add_get("/healthz", _health)
    app.router.add_static("/static/", STATIC_DIR, show_index=False)
    all_setups: list[Setup] = []
    if call_routes:
        from earshot.protocols.routes import add_protocol_routes
        from earshot.server.routes import add_call_routes

        all_setups.extend((add_call_routes, add_protocol_routes))
    all_setups.extend(setups)
    for setup in all_setups:
        setup(app)
    return app
