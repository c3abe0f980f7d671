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
from typing import TYPE_CHECKING, Literal

from earshot.protocols.engine_types import (
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
from earshot.protocols.realtime.conversation import ItemState
from earshot.tts.heard import resume_text
from earshot.turns.bargein import is_backchannel

if TYPE_CHECKING:
    from earshot.protocols.realtime.machine import Output, RealtimeProtocol, _Interruption


def handle_engine_event(p: RealtimeProtocol, event: EngineEvent, now_ms: float) -> list[Output]:
    """What the protocol sends and commands for one engine event at ``now_ms``."""
    match event:
        case SpeechStarted():
            return _speech_started(p, event, now_ms)
        case SpeechStopped():
            return _speech_stopped(p, event)
        case SpeechDiscarded():
            item_id, p.buffer.speech_item_id = p.buffer.speech_item_id, None
            out: list[Output] = []
            if item_id is not None:
                stopped = ev.SpeechStoppedEvent(
                    audio_end_ms=round(event.audio_end_ms), item_id=item_id
                )
                out.append(p._event(stopped))
            return out + _resume(p, now_ms)
        case Transcribed():
            return _transcribed(p, event, now_ms)
        case ResponseText():
            return _text(p, event)
        case ResponseAudio():
            return _audio(p, event, now_ms)
        case ResponseFinished():
            response = p.responses.get(event.response_id)
            if response is None or response.finished:
                return []  # cancelled: its late events are dropped by response id
            for name, value in event.marks_ms.items():
                response.marks_ms.setdefault(name, value)
            response.llm_error = event.llm_error
            if response.audio and response.sent_samples:
                p.last_audio = response
            status = "failed" if event.error else "completed"
            return p.finish_response(response, status, None, now_ms, error=event.error)


def _speech_started(p: RealtimeProtocol, event: SpeechStarted, now_ms: float) -> list[Output]:
    td = p.session.turn_detection
    if td is None:
        return []
    item_id = p.ids.new("item")
    p.buffer.speech_item_id = item_id
    out: list[Output] = [
        p._event(ev.SpeechStartedEvent(audio_start_ms=round(event.audio_start_ms), item_id=item_id))
    ]
    if not td.interrupt_response:
        return out
    active = p.active
    if active is not None:
        played = active.played_estimate_samples(now_ms)
        _remember(p, active.item_id, played)
        out += p.finish_response(
            active,
            "cancelled",
            "turn_detected",
            now_ms,
            truncate_to_samples=played if active.audio and active.sent_samples else None,
        )
        return out
    last = p.last_audio
    if last is not None and last.item_id in p.conversation:
        played = last.played_estimate_samples(now_ms)
        state = p.conversation.get(last.item_id)
        if played < last.sent_samples and not state.truncated:
            _remember(p, last.item_id, played)
            audio_end_ms = played // 16
            p.conversation.truncate(last.item_id, 0, audio_end_ms)
            out.append(
                p._event(
                    ev.ItemTruncatedEvent(
                        item_id=last.item_id, content_index=0, audio_end_ms=audio_end_ms
                    )
                )
            )
    return out


def _remember(p: RealtimeProtocol, item_id: str, played: int) -> None:
    from earshot.protocols.realtime.machine import _Interruption

    if p.session.earshot.false_interruption_resume and p.responses:
        response = next(r for r in p.responses.values() if r.item_id == item_id)
        p._interruption = _Interruption(item_id, played, response)


def _speech_stopped(p: RealtimeProtocol, event: SpeechStopped) -> list[Output]:
    item_id, p.buffer.speech_item_id = p.buffer.speech_item_id, None
    td = p.session.turn_detection
    if item_id is None or td is None:
        return []
    stopped = ev.SpeechStoppedEvent(audio_end_ms=round(event.audio_end_ms), item_id=item_id)
    state = ItemState(
        ev.Item(id=item_id, role="user", content=[ev.ContentPart(type="input_audio")]),
        marks_ms={"speech_end": event.speech_end_ms, "end_of_turn": event.end_of_turn_ms},
    )
    if td.create_response:
        p.auto_respond.add(item_id)
    return [p._event(stopped), *p.commit_user_audio(item_id, state)]


def _transcribed(p: RealtimeProtocol, event: Transcribed, now_ms: float) -> list[Output]:
    if event.item_id not in p.conversation:
        return []  # deleted meanwhile
    state = p.conversation.get(event.item_id)
    state.item.content[0].transcript = event.text
    state.marks_ms["stt_final"] = event.stt_final_ms
    out: list[Output] = [
        p._event(
            ev.TranscriptionCompletedEvent(
                item_id=event.item_id,
                transcript=event.text,
                usage=ev.TranscriptionUsage(seconds=round(event.audio_ms / 1000.0, 3)),
            )
        ),
        p._event(ev.ItemEvent(type="conversation.item.done", item=state.item)),
    ]
    auto = event.item_id in p.auto_respond
    p.auto_respond.discard(event.item_id)
    intr = p._interruption
    if intr is not None:
        if not event.text.strip() or is_backchannel(event.text, p.bargein):
            return out + _resume(p, now_ms)
        p._interruption = None
    if auto and p.active is None and event.text.strip():
        messages = p.conversation.messages(p.session.instructions)
        out += p.start_response(
            messages,
            p.session.output_modalities,
            turn_marks=state.marks_ms,
            user_text=event.text,
        )
    return out


def _resume(p: RealtimeProtocol, now_ms: float) -> list[Output]:
    intr: _Interruption | None = p._interruption
    p._interruption = None
    if intr is None or p.active is not None or intr.item_id not in p.conversation:
        return []
    state = p.conversation.get(intr.item_id)
    full = state.full_text or intr.response.transcript
    remainder = resume_text(full, state.words, intr.played_samples)
    if not remainder:
        return []
    return p.start_response([], ["audio"], speak_text=remainder)


def _text(p: RealtimeProtocol, event: ResponseText) -> list[Output]:
    r = p.responses.get(event.response_id)
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
    return [p._event(delta)]


def _audio(p: RealtimeProtocol, event: ResponseAudio, now_ms: float) -> list[Output]:
    r = p.responses.get(event.response_id)
    if r is None or r.finished or not r.audio:
        return []
    data = r.encoder.encode(event.pcm)
    for name, value in event.marks_ms.items():
        r.marks_ms.setdefault(name, value)
    if r.first_send_ms is None:
        r.first_send_ms = now_ms
        r.marks_ms.setdefault("playout_queued", now_ms)
        r.marks_ms.setdefault("playout_start", now_ms)
    p.audio_sent = True
    r.sent_samples += len(event.pcm)
    if r.item_id in p.conversation:
        state = p.conversation.get(r.item_id)
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
    return [p._event(delta)]
