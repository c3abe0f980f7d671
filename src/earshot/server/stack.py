"""What a server call runs: a `CallStack` builds one session per call on a transport.

`earshot serve --stack embedded` (the default: Silero VAD, pocketsphinx, the scripted LLM,
espeak-ng — `earshot.server.embedded`) and ``--stack fake`` (the shipped fakes of
`earshot.testing`, orchestration only) are the two stacks; a test or an embedding application
may pass its own to `earshot.server.routes.configure_stack`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from pydantic import BaseModel

from earshot.clock import Clock
from earshot.server.registry import Admission
from earshot.transports.base import Transport

Notify = Callable[[BaseModel], None]
"""Sends one `earshot.server.protocol` control message to the caller (non-blocking)."""


@dataclass(frozen=True, slots=True)
class CallSummary:
    """What a finished call reports back to its endpoint.

    Attributes:
        turns: user turns recorded.
        out_dir: the folder its outputs were written into.
    """

    turns: int
    out_dir: str


class CallStack(Protocol):
    """Builds and runs one call's session."""

    name: str

    async def run_call(
        self, transport: Transport, clock: Clock, admission: Admission, notify: Notify
    ) -> CallSummary:
        """Run one call on ``transport`` until it ends and write its outputs into
        ``admission.out_dir``. ``notify`` sends the page its live messages (transcripts,
        agent text, finished turns).

        Raises:
            Exception: anything the call's components raise; the endpoint logs it and ends
                this call only.
        """
        ...


STACK_KEY = web.AppKey("earshot_stack", CallStack)


def default_stack() -> CallStack:
    """The embedded stack with its default settings."""
    return make_stack("embedded")


def make_stack(
    name: str, *, frame_ms: int = 20, eot_silence_ms: float = 500.0, quiet: bool = False
) -> CallStack:
    """``embedded`` or ``fake`` with these settings (``earshot serve --stack``).

    Raises:
        ValueError: an unknown stack name.
    """
    from earshot.server.embedded import EmbeddedStack, FakeStack
    from earshot.session.config import SessionConfig

    config = SessionConfig(frame_ms=frame_ms)
    del quiet
    if name == "embedded":
        return EmbeddedStack(config, eot_silence_ms=eot_silence_ms)
    if name == "fake":
        return FakeStack(config)
    raise ValueError(f"unknown stack {name!r}: use embedded or fake")
