"""Which `CallStack` an `earshot serve` app runs: the choice (`make_stack`) and the app's
current one (`stack_of`, set by `configure_stack`).

Kept apart from `earshot.server.stack` (the protocol and records) because it imports the
concrete stacks, which themselves build on those records.
"""

from __future__ import annotations

from aiohttp import web

from earshot.server.embedded import EmbeddedStack, FakeStack
from earshot.server.stack import STACK_KEY, CallStack
from earshot.session.config import SessionConfig
from earshot.stacks import ModelOptions

FAKE_STACK = "fake"
"""The ``earshot serve --stack`` choice beyond `earshot.stacks.STACKS`: the shipped fakes."""


def default_stack() -> CallStack:
    """Real models of the default (``fast``) stack with their default settings."""
    return make_stack()


def make_stack(
    models: ModelOptions | None = None,
    *,
    fake: bool = False,
    frame_ms: int = 20,
    eot_silence_ms: float = 500.0,
    endpointer: str = "fixed",
) -> CallStack:
    """The stack ``earshot serve`` runs: real models per ``models`` (None: the ``fast``
    stack), or the shipped fakes if ``fake`` (``--stack fake``), whose end-pointer is the
    fixed one.

    Raises:
        ValueError: ``fake`` with an end-pointer other than ``fixed``.
    """
    config = SessionConfig(frame_ms=frame_ms)
    if fake:
        if endpointer != "fixed":
            raise ValueError(
                f"--endpointer {endpointer} needs real models; --stack fake runs the fixed one"
            )
        return FakeStack(config)
    return EmbeddedStack(
        config, models=models, eot_silence_ms=eot_silence_ms, endpointer=endpointer
    )


def configure_stack(app: web.Application, stack: CallStack) -> None:
    """Set the per-call components the call endpoints use (before the app starts)."""
    app[STACK_KEY] = stack


async def ensure_stack(app: web.Application) -> None:
    """At start-up (while the app may still change): the default stack unless one was set."""
    if STACK_KEY not in app:
        app[STACK_KEY] = default_stack()


def stack_of(app: web.Application) -> CallStack:
    """The app's `CallStack` (the default `fast` models unless `configure_stack` set another)."""
    if STACK_KEY not in app:
        app[STACK_KEY] = default_stack()
    return app[STACK_KEY]
