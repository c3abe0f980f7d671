"""A Twilio Media Streams client, written from Twilio's public protocol description, against a
real `earshot serve` on 127.0.0.1.

The client plays the phone's side: it sends ``connected``, ``start`` and a bundled recording as
20 ms base64 µ-law ``media`` messages in real time, plays earshot's outbound media in real time
like Twilio's buffer, echoes each ``mark`` once the audio before it has played, and on
``clear`` drops its buffer (and, to be strict, echoes the marks that were queued behind the
dropped audio: earshot must not count those as played).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import deque
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import soxr
from serve_helpers import running_server, speech

from earshot.audio import g711

FRAME_BYTES = 160  # 20 ms of 8 kHz µ-law
SID = "MZ00000000000000000000000000000001"


def _ulaw_8k(pcm16k: np.ndarray) -> bytes:
    return g711.lin2ulaw(np.asarray(soxr.resample(pcm16k, 16_000, 8_000), dtype=np.int16))


class Phone:
    """Twilio's side of the stream: an outbound buffer played in real time, marks echoed."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.buffer: deque[tuple[str, Any]] = deque()  # ("media", bytes) | ("mark", name)
        self.played = bytearray()
        self.media_bytes = 0
        self.marks_sent = 0
        self.clears: list[int] = []  # played bytes at each clear

    async def send(self, body: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps({**body, "streamSid": SID}))

    async def receive(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            assert data["streamSid"] == SID
            match data["event"]:
                case "media":
                    chunk = base64.b64decode(data["media"]["payload"])
                    self.media_bytes += len(chunk)
                    self.buffer.append(("media", chunk))
                case "mark":
                    self.buffer.append(("mark", data["mark"]["name"]))
                case "clear":
                    self.clears.append(len(self.played))
                    queued = [v for k, v in self.buffer if k == "mark"]
                    self.buffer.clear()
                    for name in queued:
                        await self.send({"event": "mark", "mark": {"name": name}})

    async def play(self) -> None:
        """Every 20 ms, play 160 bytes; echo marks as playback reaches them."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        tick = 0
        while True:
            tick += 1
            await asyncio.sleep(max(0.0, t0 + tick * 0.02 - loop.time()))
            budget = FRAME_BYTES
            while self.buffer and (budget > 0 or self.buffer[0][0] == "mark"):
                kind, value = self.buffer[0]
                if kind == "mark":
                    self.buffer.popleft()
                    self.marks_sent += 1
                    await self.send({"event": "mark", "mark": {"name": value}})
                    continue
                take = value[:budget]
                self.played += take
                budget -= len(take)
                if len(take) == len(value):
                    self.buffer.popleft()
                else:
                    self.buffer[0] = ("media", value[len(take) :])

    async def stream(self, ulaw: bytes) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i, start in enumerate(range(0, len(ulaw), FRAME_BYTES)):
            payload = base64.b64encode(ulaw[start : start + FRAME_BYTES]).decode()
            await self.send(
                {
                    "event": "media",
                    "media": {
                        "track": "inbound",
                        "chunk": str(i + 1),
                        "timestamp": str(i * 20),
                        "payload": payload,
                    },
                }
            )
            await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.02 - loop.time()))


async def _call(tmp: Path) -> tuple[Phone, list[dict[str, Any]]]:
    async with (
        running_server(tmp) as port,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"ws://127.0.0.1:{port}/twilio/media") as ws,
    ):
        phone = Phone(ws)
        tasks = [asyncio.create_task(phone.receive()), asyncio.create_task(phone.play())]
        await ws.send_str(
            json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        )
        await phone.send(
            {
                "event": "start",
                "sequenceNumber": "1",
                "start": {
                    "accountSid": "AC0",
                    "streamSid": SID,
                    "callSid": "CA0",
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "customParameters": {},
                },
            }
        )
        await ws.send_str("{not json")  # a malformed message is ignored, the call goes on
        silence = np.zeros(16_000, dtype=np.int16)
        first = np.concatenate(
            [silence[:4800], speech("realtimestt_ljspeech_LJ001-0002.wav"), silence]
        )
        await phone.stream(_ulaw_8k(first))
        # Keep the line open (silence) until the reply has played about a second.
        async with asyncio.timeout(30):
            while len(phone.played) < 8000:
                await phone.stream(_ulaw_8k(silence[:1600]))
        barge = np.concatenate([speech("realtimestt_ljspeech_LJ001-0008.wav"), silence])
        await phone.stream(_ulaw_8k(barge))
        # Let the reply to the barge-in begin and play a little before hanging up.
        before = len(phone.played)
        async with asyncio.timeout(30):
            while len(phone.played) < before + 4000:
                await phone.stream(_ulaw_8k(silence[:1600]))
        await phone.send({"event": "stop", "stop": {"accountSid": "AC0", "callSid": "CA0"}})
        await asyncio.sleep(0.5)
        for t in tasks:
            t.cancel()
    lines = [
        json.loads(line) for f in tmp.rglob("turns.jsonl") for line in f.read_text().splitlines()
    ]
    return phone, lines


def test_twilio_media_stream(tmp_path: Path) -> None:
    phone, turns = asyncio.run(_call(tmp_path))
    assert phone.media_bytes > 8000  # replies came back as µ-law media
    assert phone.marks_sent > 5
    assert phone.clears, "barge-in must send clear"
    assert turns, "the call wrote its turns.jsonl"
    first = turns[0]
    assert first["user_text"].strip()
    assert first["interrupted"]
    heard, said = first["heard_text"].split(), first["agent_text"].split()
    assert 0 < len(heard) < len(said)
    assert heard == said[: len(heard)]
    # TTFAT ends at Twilio's playout (heard_start from the first mark echo); terms sum to it.
    marks = first["marks_ms"]
    assert marks["heard_start"] >= marks["playout_start"] - 20.0  # ±1 frame
    assert first["ttfat_ms"] == pytest.approx(marks["heard_start"] - marks["speech_end"], abs=0.01)
    assert sum(first["terms_ms"].values()) == pytest.approx(first["ttfat_ms"], abs=0.01)
    # The phone had played at least a second before the clear; the heard words fit in it.
    assert phone.clears[0] / 8 >= 900
    report = next(tmp_path.rglob("report.md")).read_text()
    assert "ASSUMED 150 ms each way" in report
    assert "not included in any term or TTFAT" in report
