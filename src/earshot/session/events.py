"""What a session tells the outside world as a call goes: typed, in order, on the event loop.

A transport that implements `SessionEventSink` receives them (a web
page shows live transcripts and latency bars from them; an OpenAI-Realtime or Twilio endpoint
maps them onto its protocol's messages); ``Session(on_event=...)`` receives them too. Handlers
must not block and must not raise (an exception is logged and dropped).

All times are ms on the session clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from earshot.metrics.turn import BargeInRecord, TurnRecord
from earshot.session.response import ResponseFailed


@dataclass(frozen=True, slots=True)
class UserSpeechStarted:
    """The caller began a turn; ``start_ms`` is the capture time of its first voiced frame."""

    start_ms: float


@dataclass(frozen=True, slots=True)
class UserTranscriptPartial:
    """The STT's partial hypothesis of the open turn changed."""

    text: str
    now_ms: float


@dataclass(frozen=True, slots=True)
class UserTurnEnded:
    """End of the caller's turn decided; its transcript and reply follow (``response_id``)."""

    response_id: int
    speech_end_ms: float
    now_ms: float


@dataclass(frozen=True, slots=True)
class UserTranscriptFinal:
    """The final transcript of a turn, as answered (``turn`` is its 1-based number)."""

    response_id: int
    turn: int
    text: str
    now_ms: float


@dataclass(frozen=True, slots=True)
class ResponseText:
    """A chunk of the reply handed to TTS (what the caller is about to hear)."""

    response_id: int
    text: str
    now_ms: float


@dataclass(frozen=True, slots=True)
class ResponseInterrupted:
    """A barge-in stopped the reply; ``played_samples`` of it were played (16 kHz)."""

    response_id: int
    played_samples: int
    record: BargeInRecord


@dataclass(frozen=True, slots=True)
class TurnCompleted:
    """A turn is over (its reply finished, was cut off, or the run ended: see ``unfinished``);
    ``record`` is the same object written to ``turns.jsonl``."""

    record: TurnRecord


SessionEvent = (
    UserSpeechStarted
    | UserTranscriptPartial
    | UserTurnEnded
    | UserTranscriptFinal
    | ResponseText
    | ResponseInterrupted
    | ResponseFailed
    | TurnCompleted
)


@runtime_checkable
class SessionEventSink(Protocol):
    """Optional, for a transport that wants the session's events (transcripts, reply text,
    barge-ins, failures, finished turns), e.g. to show them on a page or map them onto a
    protocol's messages. The session checks its transport with ``isinstance``."""

    def on_session_event(self, event: SessionEvent) -> None:
        """Called on the event loop, in order; must not block. An exception is logged and
        dropped (it never ends the call)."""
        ...
