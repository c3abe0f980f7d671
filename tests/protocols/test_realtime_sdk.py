"""The official openai SDK against a real `earshot serve` on 127.0.0.1 (GA Realtime protocol).

A bundled recording (LJ Speech LJ001-0002, resampled to 24 kHz PCM16) is streamed as
``input_audio_buffer.append`` events; components are the embedded ones (Silero VAD,
pocketsphinx, the scripted LLM, espeak-ng).
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import numpy as np
from openai import AsyncOpenAI
from serve_helpers import running_server, speech

CHUNK_MS = 100


async def _send_audio(conn: Any, pcm24: np.ndarray, pace_s: float) -> None:
    n = 24 * CHUNK_MS
    for start in range(0, len(pcm24), n):
        chunk = pcm24[start : start + n].astype("<i2").tobytes()
        await conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
        await asyncio.sleep(pace_s)


def _silence(ms: int) -> np.ndarray:
    return np.zeros(24 * ms, dtype=np.int16)


async def _events_until(conn: Any, kinds: set[str], timeout_s: float) -> list[Any]:
    got: list[Any] = []
    async with asyncio.timeout(timeout_s):
        while True:
            event = await conn.recv()
            got.append(event)
            if event.type in kinds:
                return got


async def _conversation(tmp: Path) -> dict[str, Any]:
    async with running_server(tmp) as port:
        client = AsyncOpenAI(
            api_key="x",
            base_url=f"http://127.0.0.1:{port}/v1",
            websocket_base_url=f"ws://127.0.0.1:{port}/v1",
        )
        async with client.realtime.connect(model="earshot-test") as conn:
            first = await conn.recv()
            await conn.session.update(
                session={
                    "type": "realtime",
                    "instructions": "Be brief.",
                    "audio": {
                        "input": {
                            "format": {"type": "audio/pcm", "rate": 24000},
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
                        },
                        "output": {"format": {"type": "audio/pcm", "rate": 24000}},
                    },
                }
            )
            updated = await _events_until(conn, {"session.updated"}, 10)
            # A malformed event and an unknown type: error events, the socket stays open.
            await conn.send({"type": "input_audio_buffer.append"})  # type: ignore[arg-type,typeddict-item]
            await conn.send({"type": "no.such.event"})  # type: ignore[arg-type,typeddict-item]
            errors = await _events_until(conn, {"error"}, 10)
            errors += await _events_until(conn, {"error"}, 10)
            await conn.response.cancel()  # nothing to cancel: an error, documented
            errors += await _events_until(conn, {"error"}, 10)

            # Turn 1: the recording, then silence; paced at 4x real time.
            pcm = np.concatenate(
                [
                    _silence(300),
                    speech("realtimestt_ljspeech_LJ001-0002.wav", 24_000),
                    _silence(1500),
                ]
            )
            sender = asyncio.create_task(_send_audio(conn, pcm, CHUNK_MS / 1000 / 4))
            turn1 = await _events_until(conn, {"earshot.latency"}, 60)
            await sender

            # Turn 2: a text item, response.create, then cancel after the first audio delta.
            await conn.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "Tell me about your weekend."}],
                }
            )
            await conn.response.create()
            turn2 = await _events_until(conn, {"response.output_audio.delta"}, 30)
            await conn.response.cancel()
            turn2 += await _events_until(conn, {"response.done"}, 30)

            # Truncate the first reply to 1.5 s: its transcript is cut to the words heard.
            reply_item = next(e.item_id for e in turn1 if e.type == "response.output_audio.delta")
            await conn.conversation.item.truncate(
                item_id=reply_item, content_index=0, audio_end_ms=1500
            )
            truncated = await _events_until(conn, {"conversation.item.truncated"}, 10)
            await conn.conversation.item.truncate(
                item_id=reply_item, content_index=0, audio_end_ms=10**7
            )
            errors += await _events_until(conn, {"error"}, 10)
            await conn.send({"type": "conversation.item.retrieve", "item_id": reply_item})
            retrieved = await _events_until(conn, {"conversation.item.retrieved"}, 10)

            # Barge-in: speech while the client is still playing a reply (server_vad).
            await conn.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "Tell me about your weekend."}],
                }
            )
            await conn.response.create()
            barge = await _events_until(conn, {"response.output_audio.delta"}, 30)
            speech2 = speech("realtimestt_ljspeech_LJ001-0008.wav", 24_000)
            sender = asyncio.create_task(_send_audio(conn, speech2, CHUNK_MS / 1000 / 2))
            barge += await _events_until(conn, {"conversation.item.truncated"}, 30)
            await sender
        return {
            "first": first,
            "updated": updated,
            "errors": errors,
            "turn1": turn1,
            "turn2": turn2,
            "truncated": truncated,
            "retrieved": retrieved,
            "barge": barge,
        }


def test_openai_sdk_against_earshot_serve(tmp_path: Path) -> None:
    r = asyncio.run(_conversation(tmp_path))
    assert r["first"].type == "session.created"
    assert r["updated"][-1].session.audio.input.turn_detection.silence_duration_ms == 500

    errors = [e for e in r["errors"] if e.type == "error"]
    assert [e.error.code for e in errors] == [
        "missing_required_parameter",
        "invalid_value",
        "response_cancel_not_active",
        "invalid_value",
    ]
    assert errors[0].error.param == "audio"

    kinds = [e.type for e in r["turn1"]]
    for kind in (
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.output_audio.delta",
        "response.output_audio_transcript.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.done",
    ):
        assert kind in kinds, kind
    assert (
        kinds.index("input_audio_buffer.speech_started")
        < kinds.index("input_audio_buffer.speech_stopped")
        < kinds.index("response.created")
    )
    started = next(e for e in r["turn1"] if e.type == "input_audio_buffer.speech_started")
    stopped = next(e for e in r["turn1"] if e.type == "input_audio_buffer.speech_stopped")
    # Speech begins ~300 ms in (after the leading silence), minus the 300 ms prefix padding.
    assert 0 <= started.audio_start_ms <= 400
    assert 1700 <= stopped.audio_end_ms <= 3200
    transcript = next(
        e for e in r["turn1"] if e.type == "conversation.item.input_audio_transcription.completed"
    )
    assert transcript.transcript.strip()
    audio = b"".join(
        base64.b64decode(e.delta) for e in r["turn1"] if e.type == "response.output_audio.delta"
    )
    assert len(audio) > 24_000  # more than half a second of 24 kHz PCM16 speech
    done = next(e for e in r["turn1"] if e.type == "response.done")
    assert done.response.status == "completed"
    assert done.response.usage.output_tokens > 0
    spoken = next(e for e in r["turn1"] if e.type == "response.output_audio_transcript.done")
    assert spoken.transcript.strip()
    latency = r["turn1"][-1]
    assert latency.type == "earshot.latency"
    lat = latency.model_dump() if hasattr(latency, "model_dump") else dict(latency)
    assert lat["ttfat_ms"] > 0
    assert abs(sum(lat["terms_ms"].values()) - lat["ttfat_ms"]) < 0.01

    records = [line for f in tmp_path.rglob("turns.jsonl") for line in f.read_text().splitlines()]
    assert len(records) >= 3  # one latency record per response, written when the call ended
    cancelled = r["turn2"][-1]
    assert cancelled.response.status == "cancelled"
    assert cancelled.response.status_details.reason == "client_cancelled"

    assert r["truncated"][-1].audio_end_ms == 1500
    item = r["retrieved"][-1].item
    heard = item.content[0].transcript
    assert item.status == "incomplete"
    # A non-empty prefix of the spoken words (punctuation aside), shorter than the whole.
    spoken_words = [w.strip(",.?!").lower() for w in spoken.transcript.split()]
    heard_words = [w.strip(",.?!").lower() for w in heard.split()]
    assert 0 < len(heard_words) < len(spoken_words)
    assert heard_words == spoken_words[: len(heard_words)]

    barge = r["barge"]
    kinds = [e.type for e in barge]
    assert "input_audio_buffer.speech_started" in kinds
    reply = next(e.item_id for e in barge if e.type == "response.output_audio.delta")
    cut = barge[-1]
    assert cut.item_id == reply
    sent_ms = (
        sum(
            len(base64.b64decode(e.delta)) for e in barge if e.type == "response.output_audio.delta"
        )
        / 48
    )
    # Cut at the estimated played position: well before the end of the reply's audio.
    assert 0 < cut.audio_end_ms < sent_ms
    done = [e for e in barge if e.type == "response.done"]
    if done and done[0].response.status == "cancelled":  # still generating when speech began
        assert done[0].response.status_details.reason == "turn_detected"
