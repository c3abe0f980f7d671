"""The Realtime protocol state machine, driven without sockets: (event, now_ms) → outputs."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from earshot.protocols.engine_types import (
    AppendAudio,
    CancelResponse,
    CommitInput,
    Configure,
    ResponseAudio,
    ResponseFinished,
    ResponseText,
    SpeechStarted,
    SpeechStopped,
    StartResponse,
    Transcribed,
    TurnSettings,
)
from earshot.protocols.realtime import events as ev
from earshot.protocols.realtime.machine import Output, RealtimeProtocol
from earshot.tts.base import WordTiming


def send(p: RealtimeProtocol, body: dict[str, Any] | str, now_ms: float = 0.0) -> list[Output]:
    return p.client_event(body if isinstance(body, str) else json.dumps(body), now_ms)


def types(outputs: list[Output]) -> list[str]:
    return [o.type if isinstance(o, ev.ServerEvent) else type(o).__name__ for o in outputs]  # type: ignore[attr-defined]


def only_error(outputs: list[Output]) -> ev.ErrorDetail:
    assert len(outputs) == 1 and isinstance(outputs[0], ev.ErrorEvent), types(outputs)
    return outputs[0].error


def pcm_b64(ms: int, rate: int = 24_000) -> str:
    return base64.b64encode(np.zeros(rate * ms // 1000, dtype="<i2").tobytes()).decode()


def test_open_sends_session_created_and_server_vad_defaults() -> None:
    p = RealtimeProtocol("m")
    out = p.open(0.0)
    assert types(out) == ["session.created", "Configure"]
    assert out[1] == Configure(TurnSettings("fixed", 0.5, 300.0, 500.0))
    session = out[0].session  # type: ignore[union-attr]
    assert session["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 500  # type: ignore[index,call-overload]


def test_session_update_maps_turn_detection() -> None:
    p = RealtimeProtocol("m")
    out = send(
        p,
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {
                    "input": {"turn_detection": {"type": "semantic_vad", "eagerness": "high"}}
                },
            },
        },
    )
    assert out[0] == Configure(TurnSettings(endpointer="smart", scale=0.5))
    out = send(
        p,
        {
            "type": "session.update",
            "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
        },
    )
    assert out[0] == Configure(None)
    assert out[1].session["audio"]["input"]["turn_detection"] is None  # type: ignore[union-attr,index,call-overload]


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ("{oops", "invalid_json", None),
        ("[1, 2]", "invalid_json", None),
        ({"event_id": "e1"}, "missing_required_parameter", "type"),
        ({"type": "nope"}, "invalid_value", "type"),
        ({"type": "input_audio_buffer.commit", "bogus": 1}, "unknown_parameter", "bogus"),
        ({"type": "input_audio_buffer.append", "audio": "***"}, "invalid_value", "audio"),
        ({"type": "input_audio_buffer.append", "audio": "AAAA"}, "invalid_value", "audio"),
        ({"type": "input_audio_buffer.commit"}, "input_audio_buffer_commit_empty", None),
        ({"type": "response.cancel"}, "response_cancel_not_active", None),
        (
            {
                "type": "conversation.item.truncate",
                "item_id": "x",
                "content_index": 0,
                "audio_end_ms": 5,
            },
            "item_not_found",
            "item_id",
        ),
        (
            {
                "type": "conversation.item.create",
                "previous_item_id": "zz",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "hi"}],
                },
            },
            "item_not_found",
            "previous_item_id",
        ),
        (
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 3}}},
                },
            },
            "invalid_value",
            "session.audio.input.turn_detection.server_vad.threshold",
        ),
        ({"type": "output_audio_buffer.clear"}, "unsupported_event", "type"),
    ],
)
def test_every_bad_client_event_is_one_error_event(body: Any, code: str, param: str | None) -> None:
    p = RealtimeProtocol("m")
    p.open(0.0)
    if isinstance(body, dict):
        body = {**body, "event_id": body.get("event_id", "client-7")}
    err = only_error(send(p, body))
    assert err.code == code
    assert err.param == param
    assert err.message
    if isinstance(body, dict) and "type" in body:
        assert err.event_id == "client-7"


def test_manual_commit_transcribes_without_responding() -> None:
    p = RealtimeProtocol("m")
    p.open(0.0)
    send(
        p,
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {"input": {"format": {"type": "audio/pcmu"}, "turn_detection": None}},
            },
        },
    )
    ulaw = base64.b64encode(bytes([0xFF]) * 1600).decode()  # 200 ms of µ-law silence
    out = send(p, {"type": "input_audio_buffer.append", "audio": ulaw}, 10.0)
    assert isinstance(out[0], AppendAudio) and 3000 <= len(out[0].pcm) <= 3200  # 16 kHz
    out = send(p, {"type": "input_audio_buffer.commit"}, 20.0)
    assert types(out) == ["input_audio_buffer.committed", "conversation.item.added", "CommitInput"]
    item_id = out[2].item_id  # type: ignore[union-attr]
    out = p.engine_event(Transcribed(item_id, "hello there", 200.0, 30.0), 30.0)
    assert types(out) == [
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.done",
    ]


def _spoken_turn(p: RealtimeProtocol) -> StartResponse:
    p.engine_event(SpeechStarted(0.0, 300.0), 300.0)
    out = p.engine_event(SpeechStopped(1800.0, 1300.0, 1310.0, 1810.0), 1810.0)
    item_id = next(o.item_id for o in out if isinstance(o, CommitInput))
    out = p.engine_event(Transcribed(item_id, "what time is it", 1300.0, 1900.0), 1900.0)
    assert "response.created" in types(out)
    return next(o for o in out if isinstance(o, StartResponse))


ENGINE_MARKS = {
    "llm_request": 1905.0,
    "llm_first_token": 1950.0,
    "first_sentence": 1960.0,
    "tts_first_audio": 1990.0,
}
WORDS = (WordTiming("It", 0, 3200), WordTiming("is", 3200, 6400), WordTiming("noon.", 6400, 16000))


def test_server_vad_interruption_cancels_and_truncates_to_played_position() -> None:
    p = RealtimeProtocol("m")
    p.open(0.0)
    start = _spoken_turn(p)
    rid = start.response_id
    p.engine_event(ResponseText(rid, "It is noon. "), 2000.0)
    audio = ResponseAudio(rid, np.zeros(16000, np.int16), WORDS, ENGINE_MARKS)
    out = p.engine_event(audio, 2000.0)
    assert "response.output_audio.delta" in types(out)
    # The caller speaks 500 ms after the first delta: "It" (200 ms) and "is" (400 ms) played.
    out = p.engine_event(SpeechStarted(2400.0, 2700.0), 2500.0)
    kinds = types(out)
    assert kinds[0] == "input_audio_buffer.speech_started"
    assert CancelResponse(rid) in out
    done = next(o for o in out if isinstance(o, ev.ResponseEvent) and o.type == "response.done")
    assert done.response.status == "cancelled"
    assert done.response.status_details is not None
    assert done.response.status_details.reason == "turn_detected"
    truncated = next(o for o in out if isinstance(o, ev.ItemTruncatedEvent))
    assert truncated.audio_end_ms == 500
    assert p.conversation.get(truncated.item_id).text == "It is"
    latency = next(o for o in out if isinstance(o, ev.EarshotLatencyEvent))
    assert latency.interrupted and latency.heard_text == "It is"
    assert latency.ttfat_ms == pytest.approx(2000.0 - 1310.0)
    assert latency.terms_ms is not None
    assert sum(latency.terms_ms.values()) == pytest.approx(latency.ttfat_ms)
    # Stale events of the cancelled response are dropped by response id.
    assert p.engine_event(ResponseAudio(rid, np.zeros(320, np.int16)), 2600.0) == []
    assert p.engine_event(ResponseFinished(rid), 2700.0) == []
    # The history the next reply sees holds only the heard words, marked interrupted.
    history = p.conversation.messages("sys")
    assert history[-1].content == "It is" and history[-1].interrupted


def test_client_truncate_replaces_the_estimate() -> None:
    p = RealtimeProtocol("m")
    p.open(0.0)
    rid = _spoken_turn(p).response_id
    p.engine_event(ResponseText(rid, "It is noon. "), 2000.0)
    p.engine_event(ResponseAudio(rid, np.zeros(16000, np.int16), WORDS), 2000.0)
    out = p.engine_event(ResponseFinished(rid, {"llm_request": 1950.0}), 2010.0)
    item_id = next(o.item.id for o in out if isinstance(o, ev.OutputItemEvent))
    out = send(
        p,
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 250,
        },
    )
    assert types(out) == ["conversation.item.truncated"]
    assert p.conversation.get(item_id).text == "It"


def test_false_interruption_resume_is_opt_in() -> None:
    p = RealtimeProtocol("m")
    p.open(0.0)
    send(
        p,
        {
            "type": "session.update",
            "session": {"type": "realtime", "earshot": {"false_interruption_resume": True}},
        },
    )
    rid = _spoken_turn(p).response_id
    p.engine_event(ResponseText(rid, "It is noon. "), 2000.0)
    p.engine_event(ResponseAudio(rid, np.zeros(16000, np.int16), WORDS), 2000.0)
    p.engine_event(SpeechStarted(2400.0, 2700.0), 2500.0)
    out = p.engine_event(SpeechStopped(3300.0, 2900.0, 2910.0, 3400.0), 3400.0)
    item_id = next(o.item_id for o in out if isinstance(o, CommitInput))
    out = p.engine_event(Transcribed(item_id, "yeah", 400.0, 3500.0), 3500.0)
    resumed = [o for o in out if isinstance(o, StartResponse)]
    assert len(resumed) == 1 and resumed[0].speak_text == "noon."


def test_response_create_while_active_is_an_error() -> None:
    p = RealtimeProtocol("m")
    p.open(0.0)
    out = send(p, {"type": "response.create", "response": {"output_modalities": ["text"]}})
    start = next(o for o in out if isinstance(o, StartResponse))
    assert not start.audio
    err = only_error(send(p, {"type": "response.create"}))
    assert err.code == "conversation_already_has_active_response"
    out = p.engine_event(ResponseText(start.response_id, "Hi."), 5.0)
    assert types(out) == ["response.output_text.delta"]
