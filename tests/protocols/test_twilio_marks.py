"""Twilio Media Streams pure parts: message parsing and the mark book (played positions)."""

from __future__ import annotations

import json

import pytest

from earshot.transports.twilio import (
    MarkBook,
    MarkInfo,
    MediaInfo,
    StartInfo,
    TwilioMessageError,
    parse_inbound,
)


def test_parses_the_documented_messages() -> None:
    start = {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": "MZ1",
        "start": {
            "accountSid": "AC1",
            "streamSid": "MZ1",
            "callSid": "CA1",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {},
        },
    }
    kind, body = parse_inbound(json.dumps(start))
    assert kind == "start" and isinstance(body, StartInfo) and body.callSid == "CA1"
    media = {
        "event": "media",
        "streamSid": "MZ1",
        "media": {"track": "inbound", "chunk": "2", "timestamp": "20", "payload": "//8="},
    }
    kind, body = parse_inbound(json.dumps(media))
    assert isinstance(body, MediaInfo) and body.payload == "//8="
    kind, body = parse_inbound(json.dumps({"event": "mark", "mark": {"name": "3:320"}}))
    assert isinstance(body, MarkInfo) and body.name == "3:320"
    assert parse_inbound(json.dumps({"event": "stop", "stop": {}})) == ("stop", None)
    assert parse_inbound(json.dumps({"event": "connected", "protocol": "Call"}))[1] is None


@pytest.mark.parametrize(
    "raw",
    [
        "{",
        "[]",
        json.dumps({"event": "nope"}),
        json.dumps({"event": "media"}),
        json.dumps({"event": "start", "start": {"streamSid": "x"}}),
    ],
)
def test_malformed_messages_raise_one_clear_error(raw: str) -> None:
    with pytest.raises(TwilioMessageError):
        parse_inbound(raw)


def test_marks_give_the_played_position_and_heard_start() -> None:
    book = MarkBook()
    names = [book.name(7, end, 1000.0 + i * 20) for i, end in enumerate((320, 640, 960))]
    assert names == ["7:320", "7:640", "7:960"]
    assert book.outstanding(7)
    first = book.echo(names[0], 1050.0)
    assert first is not None and first.played_samples == 320
    assert first.first_sample_ms == 1030.0  # the echo minus the 20 ms that mark covered
    second = book.echo(names[1], 1070.0)
    assert second is not None and second.played_samples == 640
    assert book.echo(names[0], 1080.0) is None  # a stale echo does not move back
    # heard_start never precedes the first send, however early an echo looks
    early = MarkBook()
    early.name(1, 320, 500.0)
    report = early.echo("1:320", 505.0)
    assert report is not None and report.first_sample_ms == 500.0


def test_marks_echoed_after_clear_are_not_played() -> None:
    book = MarkBook()
    for i, end in enumerate((320, 640, 960)):
        book.name(2, end, 100.0 + 20 * i)
    assert book.echo("2:320", 140.0) is not None
    book.cleared.add(2)
    assert book.echo("2:960", 150.0) is None
    assert book.played[2] == 320


def test_unknown_marks_are_rejected() -> None:
    book = MarkBook()
    book.name(1, 320, 0.0)
    for name in ("x", "1:abc", "9:320", "1:640"):
        with pytest.raises(TwilioMessageError):
            book.echo(name, 10.0)
