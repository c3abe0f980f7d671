"""What a server call runs: a `CallStack` builds one session per call on a transport.

`earshot serve` runs real models (`earshot.server.embedded.EmbeddedStack`) chosen by the same
flags as ``earshot converse`` (``--stack fast|neural|local``, ``--stt/--llm/--tts`` and their
options; default the ``fast`` stack: Silero VAD, pocketsphinx, the scripted LLM, espeak-ng),
or with ``--stack fake`` the shipped fakes of `earshot.testing` (orchestration only, for load
tests). A test or an embedding application may pass its own stack to
`earshot.server.routes.configure_stack`.
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
