"""The call endpoints of `earshot serve` (WebSocket ``/ws``, WebRTC ``/rtc/offer``)."""

from __future__ import annotations

from aiohttp import web


def add_call_routes(app: web.Application) -> None:
    """Register the call endpoints on ``app`` (a `earshot.server.app.Setup`)."""


def configure_stack(
    app: web.Application,
    *,
    stack: str = "embedded",
    frame_ms: int = 20,
    eot_silence_ms: float = 500.0,
    quiet: bool = False,
) -> None:
    """Choose the per-call components (``embedded`` or ``fake``) the call endpoints use."""
