"""The Twilio call state, driven without sockets: marks → played position, clear on barge-in."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

from earshot.protocols.engine_types import (
    AppendAudio,
    CommitInput,
    Configure,
    ResponseAudio,
    ResponseText,
    SpeechStarted,
    SpeechStopped,
    StartResponse,
    Transcribed,
)
from earshot.protocols.twilio import TwilioCall, TwilioOptions
from earshot.tts.base import WordTiming

SID = "MZ1"


def msg(body: dict[str, Any]) -> str:
    return json.dumps({**body, "streamSid": SID})


def start(call: TwilioCall) -> None:
    _, commands = call.inbound(
        msg(
            {
                "event": "start",
                "start": {
                    "streamSid": SID,
                    "callSid": "CA1",
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
            }
        ),
        0.0,
    )
    assert any(isinstance(c, Configure) and c.turn is not None for c in commands)


def reply(call: TwilioCall) -> tuple[str, list[str]]:
    """A spoken turn and one second of reply audio; returns (response id, Twilio messages)."""
    call.engine_event(SpeechStarted(0.0, 300.0), 300.0)
    _, cmds = call.engine_event(SpeechStopped(1800.0, 1300.0, 1310.0, 1810.0), 1810.0)
    item_id = next(c.item_id for c in cmds if isinstance(c, CommitInput))
    _, cmds = call.engine_event(Transcribed(item_id, "what time is it", 1300.0, 1900.0), 1900.0)
    rid = next(c.response_id for c in cmds if isinstance(c, StartResponse))
    call.engine_event(ResponseText(rid, "It is noon. "), 2000.0)
    words = (
        WordTiming("It", 0, 3200),
        WordTiming("is", 3200, 6400),
        WordTiming("noon.", 6400, 16000),
    )
    out, _ = call.engine_event(ResponseAudio(rid, np.zeros(16000, np.int16), words), 2000.0)
    return rid, out


def test_media_is_decoded_and_replies_go_out_as_media_and_marks() -> None:
    call = TwilioCall(TwilioOptions())
    start(call)
    payload = base64.b64encode(bytes([0xFF]) * 160).decode()
    _, cmds = call.inbound(msg({"event": "media", "media": {"payload": payload}}), 20.0)
    assert any(isinstance(c, AppendAudio) for c in cmds)
    _, out = reply(call)
    kinds = [json.loads(m)["event"] for m in out]
    assert kinds[:2] == ["media", "mark"] and kinds.count("media") == kinds.count("mark")
    media = b"".join(
        base64.b64decode(json.loads(m)["media"]["payload"])
        for m in out
        if json.loads(m)["event"] == "media"
    )
    assert 7000 <= len(media) <= 8000  # ~1 s of 8 kHz µ-law (the resampler holds a few ms)
    assert all(json.loads(m)["streamSid"] == SID for m in out)


def test_barge_in_clears_and_keeps_only_words_twilio_played() -> None:
    call = TwilioCall(TwilioOptions(pstn_assumed_ms=200.0))
    start(call)
    rid, out = reply(call)
    marks = [json.loads(m)["mark"]["name"] for m in out if json.loads(m)["event"] == "mark"]
    call.inbound(msg({"event": "mark", "mark": {"name": marks[0]}}), 2110.0)  # 100 ms played
    call.inbound(msg({"event": "mark", "mark": {"name": marks[4]}}), 2510.0)  # 500 ms played
    sent, _ = call.engine_event(SpeechStarted(2500.0, 2800.0), 2600.0)
    assert [json.loads(m)["event"] for m in sent] == ["clear"]
    # Marks Twilio returns after the clear are not played audio.
    call.inbound(msg({"event": "mark", "mark": {"name": marks[-1]}}), 2620.0)
    record = call.replies[rid]
    assert record.interrupted and record.cleared
    assert record.heard_text == "It is"
    assert record.twilio_first_played_ms == 2010.0
    assert record.ttfat_to_twilio_playout_ms == 2010.0 - 1310.0
    assert record.ttfat_with_pstn_assumption_ms == 700.0 + 400.0
    assert record.ttfat_ms is None  # the engine's LLM/TTS marks were not given here


def test_malformed_messages_are_ignored() -> None:
    call = TwilioCall(TwilioOptions())
    for raw in ("{", "[]", msg({"event": "media"}), msg({"event": "mark", "mark": {"name": "x"}})):
        assert call.inbound(raw, 0.0) == ([], [])
    assert call.bad_messages == 4
