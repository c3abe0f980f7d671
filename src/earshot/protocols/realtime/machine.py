"""The OpenAI Realtime protocol as a pure state machine: (event, now_ms) → outputs.

`RealtimeProtocol` is fed client events (raw JSON text) and engine events, each with the
session-clock time, and returns what to do: server events to send and commands for the engine
(`earshot.protocols.engine_types`). It owns the session configuration, the conversation and
the response lifecycle; it does no I/O and reads no clock, so every sequence is testable
without sockets.

Interruption follows the API: with ``server_vad`` / ``semantic_vad`` and
``interrupt_response`` (default true), speech starting during a response cancels it
(``status_details.reason = "turn_detected"``) and the assistant item is truncated to the
played position. The WebSocket server cannot see the client's playback, so that position is
estimated as real-time playback from the first audio delta sent; a client that knows better
sends ``conversation.item.truncate`` with its own ``audio_end_ms``, which replaces it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence

from pydantic import ValidationError

from earshot.llm.base import ChatMessage
from earshot.protocols.audio_formats import AudioFormatError, InputDecoder
from earshot.protocols.engine_types import (
    AppendAudio,
    ClearInput,
    CommitInput,
    Configure,
    EngineEvent,
    StartResponse,
)
from earshot.protocols.realtime import events as ev
from earshot.protocols.realtime.conversation import (
    SAMPLES_PER_MS,
    Conversation,
    ConversationError,
    ItemState,
    text_part,
)
from earshot.protocols.realtime.engine_side import EngineSide, Ids, InputBuffer, Output
from earshot.protocols.realtime.responses import (
    ResponseState,
    opening_events,
)
from earshot.protocols.realtime.session_state import RealtimeSessionState, SessionUpdateError
from earshot.turns.bargein import BargeInConfig

MIN_COMMIT_MS = 100.0
"""The API refuses to commit less than 100 ms of audio (``input_audio_buffer_commit_empty``)."""


class ClientEventError(ValueError):
    """A bad client event: becomes an ``error`` server event, never a closed socket."""

    def __init__(
        self, message: str, *, code: str = "invalid_value", param: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.param = param


class RealtimeProtocol(EngineSide):
    """One Realtime connection's protocol state.

    Args:
        model: the ``model`` query parameter of the connection.
        bargein: the backchannel list for the ``false_interruption_resume`` extension
            (default: earshot's packaged list).
    """

    def __init__(self, model: str, bargein: BargeInConfig | None = None) -> None:
        self.ids = Ids()
        self.session = RealtimeSessionState(session_id=self.ids.new("sess"), model=model)
        self.conversation = Conversation()
        self.decoder = InputDecoder(self.session.input_format)
        self.buffer = InputBuffer()
        self.active: ResponseState | None = None
        self.responses: dict[str, ResponseState] = {}
        self.audio_sent = False
        self.bargein = bargein or BargeInConfig()
        self.last_audio: ResponseState | None = None
        self.auto_respond: set[str] = set()
        self._interruption = None
        self._conversation_id = self.ids.new("conv")

    # -- entry points ----------------------------------------------------------------------

    def open(self, now_ms: float) -> list[Output]:
        """The connection opened: ``session.created`` and the engine's turn detection."""
        return [
            self._event(ev.SessionEvent(type="session.created", session=self.session.to_json())),
            Configure(self.session.turn_settings()),
        ]

    def client_event(self, raw: str | bytes, now_ms: float) -> list[Output]:
        """Handle one client message (a JSON text frame). Bad input → one ``error`` event."""
        event_id: str | None = None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ClientEventError("The event must be a JSON object", code="invalid_json")
            raw_id = data.get("event_id")
            event_id = raw_id if isinstance(raw_id, str) else None
            kind = data.get("type")
            if not isinstance(kind, str):
                raise ClientEventError(
                    "Missing required parameter: 'type'.",
                    code="missing_required_parameter",
                    param="type",
                )
            if kind not in ev.CLIENT_EVENT_TYPES:
                raise ClientEventError(
                    f"Invalid value: '{kind}'. Supported values are: "
                    + ", ".join(f"'{t}'" for t in ev.CLIENT_EVENT_TYPES)
                    + ".",
                    code="invalid_value",
                    param="type",
                )
            try:
                parsed = ev.CLIENT_EVENT_ADAPTER.validate_python(data)
            except ValidationError as exc:
                raise _validation_error(exc) from None
            return self._dispatch(parsed, now_ms)
        except json.JSONDecodeError as exc:
            return [self._error(f"The message is not valid JSON: {exc.msg}", "invalid_json", None)]
        except ClientEventError as exc:
            return [self._error(str(exc), exc.code, exc.param, event_id)]
        except (ConversationError, SessionUpdateError) as exc:
            return [self._error(str(exc), exc.code, exc.param, event_id)]

    def engine_event(self, event: EngineEvent, now_ms: float) -> list[Output]:
        """Handle one engine event (speech, transcripts, response text/audio/end)."""
        return self.handle_engine_event(event, now_ms)

    # -- client events ---------------------------------------------------------------------

    def _dispatch(self, event: ev.ClientEvent, now_ms: float) -> list[Output]:
        match event:
            case ev.SessionUpdate():
                return self._session_update(event)
            case ev.InputAudioBufferAppend():
                return self._append(event, now_ms)
            case ev.InputAudioBufferCommit():
                return self._commit(event)
            case ev.InputAudioBufferClear():
                self.buffer.buffered_ms = 0.0
                self.buffer.speech_item_id = None
                return [ClearInput(), self._event(ev.ClearedEvent())]
            case ev.ConversationItemCreate():
                return self._item_create(event)
            case ev.ConversationItemTruncate():
                return self._truncate(event, now_ms)
            case ev.ConversationItemDelete():
                state = self.conversation.get(event.item_id)
                if state.item.status == "in_progress":
                    raise ClientEventError(
                        f"Item {event.item_id} is still being generated; cancel its response first",
                        param="item_id",
                    )
                self.conversation.delete(event.item_id)
                return [self._event(ev.ItemDeletedEvent(item_id=event.item_id))]
            case ev.ConversationItemRetrieve():
                state = self.conversation.get(event.item_id)
                return [
                    self._event(ev.ItemEvent(type="conversation.item.retrieved", item=state.item))
                ]
            case ev.ResponseCreate():
                return self._response_create(event)
            case ev.ResponseCancel():
                return self._response_cancel(event, now_ms)
            case ev.OutputAudioBufferClear():
                raise ClientEventError(
                    "output_audio_buffer.clear is for WebRTC and SIP connections; over "
                    "WebSocket stop playback locally and send conversation.item.truncate",
                    code="unsupported_event",
                    param="type",
                )

    def _session_update(self, event: ev.SessionUpdate) -> list[Output]:
        in_changed, turn_changed, _ = self.session.apply(event.session, self.audio_sent)
        out: list[Output] = []
        if in_changed:
            self.decoder = InputDecoder(self.session.input_format)
        if turn_changed:
            out.append(Configure(self.session.turn_settings()))
            self.buffer.speech_item_id = None
        out.append(
            self._event(ev.SessionEvent(type="session.updated", session=self.session.to_json()))
        )
        return out

    def _append(self, event: ev.InputAudioBufferAppend, now_ms: float) -> list[Output]:
        try:
            data = base64.b64decode(event.audio, validate=True)
        except (binascii.Error, ValueError):
            raise ClientEventError(
                "Invalid 'audio': not valid base64; send base64-encoded audio bytes",
                param="audio",
            ) from None
        try:
            pcm = self.decoder.decode(data)
        except AudioFormatError as exc:
            raise ClientEventError(str(exc), param="audio") from None
        duration_ms = InputDecoder.duration_ms(self.session.input_format, len(data))
        self.buffer.buffered_ms += duration_ms
        self.buffer.total_ms += duration_ms
        return [AppendAudio(pcm, now_ms, self.buffer.total_ms)] if pcm.size else []

    def _commit(self, event: ev.InputAudioBufferCommit) -> list[Output]:
        if self.buffer.buffered_ms < MIN_COMMIT_MS:
            raise ClientEventError(
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"100ms of audio, but buffer only has {self.buffer.buffered_ms:.2f}ms of audio.",
                code="input_audio_buffer_commit_empty",
            )
        item_id = self.buffer.speech_item_id or self.ids.new("item")
        self.buffer.speech_item_id = None
        return self.commit_user_audio(item_id, ItemState(_user_audio_item(item_id)))

    def commit_user_audio(self, item_id: str, state: ItemState) -> list[Output]:
        """Committed + item added + the engine's transcription of the segment."""
        self.buffer.buffered_ms = 0.0
        previous = self.conversation.add(state)
        return [
            self._event(ev.CommittedEvent(item_id=item_id, previous_item_id=previous)),
            self._event(
                ev.ItemEvent(
                    type="conversation.item.added", item=state.item, previous_item_id=previous
                )
            ),
            CommitInput(item_id),
        ]

    def _item_create(self, event: ev.ConversationItemCreate) -> list[Output]:
        item = event.item.model_copy(deep=True)
        allowed = {
            "user": ("input_text", "input_audio"),
            "system": ("input_text",),
            "assistant": ("output_text", "text", "output_audio"),
        }[item.role]
        for i, part in enumerate(item.content):
            if part.type not in allowed:
                raise ClientEventError(
                    f"content type '{part.type}' is not valid for a {item.role} message "
                    f"(use {', '.join(allowed)})",
                    param=f"item.content[{i}].type",
                )
            if part.type in ("input_audio", "output_audio") and not part.transcript:
                raise ClientEventError(
                    "earshot cannot take audio inside conversation.item.create; stream it with "
                    "input_audio_buffer.append, or give the part a 'transcript'",
                    code="unsupported_content",
                    param=f"item.content[{i}].audio",
                )
            part.audio = None
        item.id = item.id or self.ids.new("item")
        item.status = "completed"
        previous = self.conversation.add(ItemState(item), event.previous_item_id)
        return [
            self._event(
                ev.ItemEvent(type="conversation.item.added", item=item, previous_item_id=previous)
            ),
            self._event(
                ev.ItemEvent(type="conversation.item.done", item=item, previous_item_id=previous)
            ),
        ]

    def _truncate(self, event: ev.ConversationItemTruncate, now_ms: float) -> list[Output]:
        out: list[Output] = []
        active = self.active
        if active is not None and active.item_id == event.item_id:
            out += self.finish_response(active, "cancelled", "client_cancelled", now_ms)
        self.conversation.truncate(event.item_id, event.content_index, event.audio_end_ms)
        if self._interruption is not None and self._interruption.item_id == event.item_id:
            self._interruption.played_samples = event.audio_end_ms * SAMPLES_PER_MS
        out.append(
            self._event(
                ev.ItemTruncatedEvent(
                    item_id=event.item_id,
                    content_index=event.content_index,
                    audio_end_ms=event.audio_end_ms,
                )
            )
        )
        return out

    def _response_create(self, event: ev.ResponseCreate) -> list[Output]:
        params = event.response or ev.ResponseParams()
        out_of_band = params.conversation == "none"
        if not out_of_band and self.active is not None:
            raise ClientEventError(
                "Conversation already has an active response in progress: "
                f"{self.active.response_id}. Wait until the response is finished before "
                "creating a new one.",
                code="conversation_already_has_active_response",
            )
        instructions = (
            params.instructions if params.instructions is not None else (self.session.instructions)
        )
        if params.input is not None:
            messages = [ChatMessage("system", instructions)] if instructions else []
            messages += [
                ChatMessage(i.role, " ".join(p.text or p.transcript or "" for p in i.content))
                for i in params.input
            ]
        else:
            messages = self.conversation.messages(instructions)
        modalities = params.output_modalities or self.session.output_modalities
        return self.start_response(
            messages, modalities, in_conversation=not out_of_band, metadata=params.metadata
        )

    def start_response(
        self,
        messages: list[ChatMessage],
        modalities: Sequence[str],
        *,
        in_conversation: bool = True,
        metadata: dict[str, str] | None = None,
        speak_text: str | None = None,
        turn_marks: dict[str, float] | None = None,
        user_text: str = "",
    ) -> list[Output]:
        """Open a response: its created/added events and the engine's `StartResponse`."""
        response = ResponseState(
            response_id=self.ids.new("resp"),
            item_id=self.ids.new("item"),
            audio="audio" in modalities,
            in_conversation=in_conversation,
            conversation_id=self._conversation_id if in_conversation else None,
            metadata=metadata,
            encoder_format=self.session.output_format,
            marks_ms=dict(turn_marks or {}),
            user_text=user_text,
            input_words=sum(len(m.content.split()) for m in messages),
        )
        self.responses[response.response_id] = response
        if in_conversation:
            self.active = response
        out: list[Output] = []
        for event in opening_events(response):
            out.append(self._event(event))
            if isinstance(event, ev.OutputItemEvent) and in_conversation:
                previous = self.conversation.add(ItemState(response.item))
                out.append(
                    self._event(
                        ev.ItemEvent(
                            type="conversation.item.added",
                            item=response.item,
                            previous_item_id=previous,
                        )
                    )
                )
        out.append(StartResponse(response.response_id, tuple(messages), response.audio, speak_text))
        return out

    def _response_cancel(self, event: ev.ResponseCancel, now_ms: float) -> list[Output]:
        target = self.responses.get(event.response_id) if event.response_id else self.active
        if target is None or target.finished:
            raise ClientEventError(
                "Cancellation failed: no active response found",
                code="response_cancel_not_active",
                param="response_id" if event.response_id else None,
            )
        return self.finish_response(target, "cancelled", "client_cancelled", now_ms)

    def _error(
        self, message: str, code: str, param: str | None, event_id: str | None = None
    ) -> ev.ErrorEvent:
        detail = ev.ErrorDetail(message=message, code=code, param=param, event_id=event_id)
        return self._event(ev.ErrorEvent(error=detail))  # type: ignore[return-value]


def _user_audio_item(item_id: str) -> ev.Item:
    part = ev.ContentPart(type="input_audio", transcript=None)
    return ev.Item(id=item_id, role="user", content=[part], status="completed")


def _validation_error(exc: ValidationError) -> ClientEventError:
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"]]
    # Drop the union tag pydantic inserts as the first location element.
    if loc and loc[0] in ev.CLIENT_EVENT_TYPES:
        loc = loc[1:]
    param = ".".join(loc) or None
    kind = first["type"]
    if kind == "missing":
        return ClientEventError(
            f"Missing required parameter: '{param}'.",
            code="missing_required_parameter",
            param=param,
        )
    if kind == "extra_forbidden":
        return ClientEventError(
            f"Unknown parameter: '{param}'.", code="unknown_parameter", param=param
        )
    return ClientEventError(f"Invalid '{param}': {first['msg']}.", param=param)


__all__ = ["ClientEventError", "Output", "RealtimeProtocol", "text_part"]
