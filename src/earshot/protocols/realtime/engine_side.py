"""Engine events → Realtime server events (the other half of `RealtimeProtocol`).

Speech started during a response, with ``interrupt_response``, cancels it (reason
``turn_detected``) and truncates its item to the estimated played position; speech during the
client's playback of an already finished reply truncates that reply's item the same way (the
history must hold only what the caller heard). With the ``earshot.false_interruption_resume``
extension, an interruption whose speech is discarded as a noise, transcribes to nothing or is
only a backchannel ("yeah", "okay") resumes the reply from its first unheard word in a new
response, and is not answered.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from earshot.llm.base import ChatMessage
from earshot.protocols.engine_types import (
    CancelResponse,
    EngineCommand,
    EngineEvent,
    ResponseAudio,
    ResponseFinished,
    ResponseText,
    SpeechDiscarded,
    SpeechStarted,
    SpeechStopped,
    Transcribed,
)
from earshot.protocols.realtime import events as ev
from earshot.protocols.realtime.conversation import SAMPLES_PER_MS, Conversation, ItemState
from earshot.protocols.realtime.responses import ResponseState, closing_events, latency_event
from earshot.protocols.realtime.session_state import RealtimeSessionState
from earshot.tts.heard import resume_text
from earshot.turns.bargein import BargeInConfig, is_backchannel

Output = ev.ServerEvent | EngineCommand
"""What the protocol emits: a server event for the client or a command for the engine."""


@dataclass(slots=True)
class InputBuffer:
    """The input audio buffer's bookkeeping (ms buffered since the last commit, in all)."""

    buffered_ms: float = 0.0
    total_ms: float = 0.0
    speech_item_id: str | None = None


@dataclass(slots=True)
class Ids:
    """Server-side ids: ``<prefix>_<6 digits>``, one counter per connection."""

    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def new(self, prefix: str) -> str:
        return f"{prefix}_{next(self.counter):06d}"


@dataclass(slots=True)
class Interruption:
    """A reply cut off by speech, kept while it may turn out to be a false interruption."""

    item_id: str
    played_samples: int
    response: ResponseState


class EngineSide:
    """The engine-event half of `earshot.protocols.realtime.machine.RealtimeProtocol`, which
    inherits it: `handle_engine_event` and its helpers read and change the protocol state
    declared below (set by ``RealtimeProtocol.__init__``)."""

    session: RealtimeSessionState
    conversation: Conversation
    active: ResponseState | None
    responses: dict[str, ResponseState]
    audio_sent: bool
    bargein: BargeInConfig
    last_audio: ResponseState | None
    auto_respond: set[str]
    _interruption: Interruption | None
    ids: Ids
    buffer: InputBuffer

    if TYPE_CHECKING:
        # Provided by RealtimeProtocol (the client-event half).
        def commit_user_audio(self, item_id: str, state: ItemState) -> list[Output]: ...
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
        ) -> list[Output]: ...

    def handle_engine_event(self, event: EngineEvent, now_ms: float) -> list[Output]:
        """What the protocol sends and commands for one engine event at ``now_ms``."""
        match event:
            case SpeechStarted():
                return self._speech_started(event, now_ms)
            case SpeechStopped():
                return self._speech_stopped(event)
            case SpeechDiscarded():
                item_id, self.buffer.speech_item_id = self.buffer.speech_item_id, None
                out: list[Output] = []
                if item_id is not None:
                    stopped = ev.SpeechStoppedEvent(
                        audio_end_ms=round(event.audio_end_ms), item_id=item_id
                    )
                    out.append(self._event(stopped))
                return out + self._resume(now_ms)
            case Transcribed():
                return self._transcribed(event, now_ms)
            case ResponseText():
                return self._text(event)
            case ResponseAudio():
                return self._audio(event, now_ms)
            case ResponseFinished():
                response = self.responses.get(event.response_id)
                if response is None or response.finished:
                    return []  # cancelled: its late events are dropped by response id
                for name, value in event.marks_ms.items():
                    response.marks_ms.setdefault(name, value)
                response.llm_error = event.llm_error
                if response.audio and response.sent_samples:
                    self.last_audio = response
                status = "failed" if event.error else "completed"
                return self.finish_response(response, status, None, now_ms, error=event.error)

    def _speech_started(self, event: SpeechStarted, now_ms: float) -> list[Output]:
        td = self.session.turn_detection
        if td is None:
            return []
        item_id = self.ids.new("item")
        self.buffer.speech_item_id = item_id
        out: list[Output] = [
            self._event(
                ev.SpeechStartedEvent(audio_start_ms=round(event.audio_start_ms), item_id=item_id)
            )
        ]
        if not td.interrupt_response:
            return out
        active = self.active
        if active is not None:
            played = active.played_estimate_samples(now_ms)
            self._remember(active.item_id, played)
            out += self.finish_response(
                active,
                "cancelled",
                "turn_detected",
                now_ms,
                truncate_to_samples=played if active.audio and active.sent_samples else None,
            )
            return out
        last = self.last_audio
        if last is not None and last.item_id in self.conversation:
            played = last.played_estimate_samples(now_ms)
            state = self.conversation.get(last.item_id)
            if played < last.sent_samples and not state.truncated:
                self._remember(last.item_id, played)
                audio_end_ms = played // 16
                self.conversation.truncate(last.item_id, 0, audio_end_ms)
                out.append(
                    self._event(
                        ev.ItemTruncatedEvent(
                            item_id=last.item_id, content_index=0, audio_end_ms=audio_end_ms
                        )
                    )
                )
        return out

    def _remember(self, item_id: str, played: int) -> None:

        if self.session.earshot.false_interruption_resume and self.responses:
            response = next(r for r in self.responses.values() if r.item_id == item_id)
            self._interruption = Interruption(item_id, played, response)

    def _speech_stopped(self, event: SpeechStopped) -> list[Output]:
        item_id, self.buffer.speech_item_id = self.buffer.speech_item_id, None
        td = self.session.turn_detection
        if item_id is None or td is None:
            return []
        stopped = ev.SpeechStoppedEvent(audio_end_ms=round(event.audio_end_ms), item_id=item_id)
        state = ItemState(
            ev.Item(id=item_id, role="user", content=[ev.ContentPart(type="input_audio")]),
            marks_ms={"speech_end": event.speech_end_ms, "end_of_turn": event.end_of_turn_ms},
        )
        if td.create_response:
            self.auto_respond.add(item_id)
        return [self._event(stopped), *self.commit_user_audio(item_id, state)]

    def _transcribed(self, event: Transcribed, now_ms: float) -> list[Output]:
        if event.item_id not in self.conversation:
            return []  # deleted meanwhile
        state = self.conversation.get(event.item_id)
        state.item.content[0].transcript = event.text
        state.marks_ms["stt_final"] = event.stt_final_ms
        out: list[Output] = [
            self._event(
                ev.TranscriptionCompletedEvent(
                    item_id=event.item_id,
                    transcript=event.text,
                    usage=ev.TranscriptionUsage(seconds=round(event.audio_ms / 1000.0, 3)),
                )
            ),
            self._event(ev.ItemEvent(type="conversation.item.done", item=state.item)),
        ]
        auto = event.item_id in self.auto_respond
        self.auto_respond.discard(event.item_id)
        intr = self._interruption
        if intr is not None:
            if not event.text.strip() or is_backchannel(event.text, self.bargein):
                return out + self._resume(now_ms)
            self._interruption = None
        if auto and self.active is None and event.text.strip():
            messages = self.conversation.messages(self.session.instructions)
            out += self.start_response(
                messages,
                self.session.output_modalities,
                turn_marks=state.marks_ms,
                user_text=event.text,
            )
        return out

    def _resume(self, now_ms: float) -> list[Output]:
        intr: Interruption | None = self._interruption
        self._interruption = None
        if intr is None or self.active is not None or intr.item_id not in self.conversation:
            return []
        state = self.conversation.get(intr.item_id)
        full = state.full_text or intr.response.transcript
        remainder = resume_text(full, state.words, intr.played_samples)
        if not remainder:
            return []
        return self.start_response([], ["audio"], speak_text=remainder)

    def _text(self, event: ResponseText) -> list[Output]:
        r = self.responses.get(event.response_id)
        if r is None or r.finished:
            return []
        r.transcript += event.delta
        kind: Literal["response.output_audio_transcript.delta", "response.output_text.delta"]
        if r.audio:
            r.part.transcript = r.transcript
            kind = "response.output_audio_transcript.delta"
        else:
            r.part.text = r.transcript
            kind = "response.output_text.delta"
        delta = ev.DeltaEvent(
            type=kind,
            response_id=r.response_id,
            item_id=r.item_id,
            delta=event.delta,
        )
        return [self._event(delta)]

    def _audio(self, event: ResponseAudio, now_ms: float) -> list[Output]:
        r = self.responses.get(event.response_id)
        if r is None or r.finished or not r.audio:
            return []
        data = r.encoder.encode(event.pcm)
        for name, value in event.marks_ms.items():
            r.marks_ms.setdefault(name, value)
        if r.first_send_ms is None:
            r.first_send_ms = now_ms
            r.marks_ms.setdefault("playout_queued", now_ms)
            r.marks_ms.setdefault("playout_start", now_ms)
        self.audio_sent = True
        r.sent_samples += len(event.pcm)
        if r.item_id in self.conversation:
            state = self.conversation.get(r.item_id)
            state.words.extend(event.words)
            state.audio_samples += len(event.pcm)
        if not data:
            return []
        delta = ev.DeltaEvent(
            type="response.output_audio.delta",
            response_id=r.response_id,
            item_id=r.item_id,
            delta=base64.b64encode(data).decode("ascii"),
        )
        return [self._event(delta)]

    # -- shared with the client-event half --------------------------------------------------

    def finish_response(
        self,
        response: ResponseState,
        status: str,
        reason: str | None,
        now_ms: float,
        error: str = "",
        truncate_to_samples: int | None = None,
    ) -> list[Output]:
        """Close a response: the done events and ``response.done``; then, if
        ``truncate_to_samples`` is given, the item's truncation to that played position;
        then the latency record (``earshot.latency``)."""
        out: list[Output] = []
        if status == "cancelled":
            out.append(CancelResponse(response.response_id))
        if self.active is response:
            self.active = None
        state = (
            self.conversation.get(response.item_id)
            if response.item_id in self.conversation
            else None
        )
        tail = response.encoder.flush() if response.audio and status == "completed" else b""
        for event in closing_events(response, status, reason, error, state, tail):
            out.append(self._event(event))
        if truncate_to_samples is not None and state is not None and state.audio_samples:
            audio_end_ms = truncate_to_samples // SAMPLES_PER_MS
            self.conversation.truncate(response.item_id, 0, audio_end_ms)
            out.append(
                self._event(
                    ev.ItemTruncatedEvent(
                        item_id=response.item_id, content_index=0, audio_end_ms=audio_end_ms
                    )
                )
            )
        if self.session.earshot.latency_events:
            out.append(self._event(latency_event(response, state)))
        return out

    def _event(self, event: ev.ServerEvent) -> ev.ServerEvent:
        event.event_id = self.ids.new("event")
        return event
