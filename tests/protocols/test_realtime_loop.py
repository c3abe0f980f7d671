"""The Realtime endpoint's whole loop (protocol + engine) on the shipped fakes, simulated clock.

Layer 2: no socket, no model (fakes on purpose), virtual time with free compute, so marks
are exact. A scripted caller appends 100 ms chunks in real (virtual) time.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from earshot.clock import SimulatedClock
from earshot.llm import FALLBACK_LINE
from earshot.protocols.engine import EngineComponents
from earshot.protocols.realtime.handler import RealtimeConnection
from earshot.session.config import SessionConfig
from earshot.testing import FakeLlm, FakeStt, FakeTts, LlmScript, ScriptedVad

CHUNK_MS = 100


@dataclass
class Run:
    events: list[dict[str, Any]]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]


def run(
    speech_ms: Sequence[tuple[float, float]],
    duration_ms: float,
    *,
    scripts: Sequence[LlmScript] = (),
    tts: FakeTts | None = None,
    transcripts: Sequence[str] = ("what time is it",),
    session: dict[str, Any] | None = None,
    then: Sequence[dict[str, Any]] = (),
    tail_ms: float = 3000.0,
    config: SessionConfig | None = None,
) -> Run:
    clock = SimulatedClock(charge_compute=False)

    async def main() -> Run:
        components = EngineComponents(
            vad=ScriptedVad(speech_ms),
            stt=FakeStt(transcripts),
            llm=FakeLlm(clock, list(scripts)),
            tts=tts or FakeTts(),
        )
        conn = RealtimeConnection("m", components, clock, config=config)
        conn.open()
        if session is not None:
            conn.client_text(json.dumps({"type": "session.update", "session": session}))
        events: list[dict[str, Any]] = []

        async def caller() -> None:
            chunk = base64.b64encode(np.zeros(24 * CHUNK_MS, dtype="<i2").tobytes()).decode()
            for _ in range(int(duration_ms // CHUNK_MS)):
                await clock.sleep_ms(CHUNK_MS)
                conn.client_text(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
            for event in then:
                conn.client_text(json.dumps(event))
            await clock.sleep_ms(tail_ms)

        async def drain() -> None:
            while True:
                events.append(json.loads(await conn.outbox.get()))

        async with asyncio.TaskGroup() as tg:
            engine = tg.create_task(conn.engine.run())
            reader = tg.create_task(drain())
            await caller()
            engine.cancel()
            reader.cancel()
        while not conn.outbox.empty():
            events.append(json.loads(conn.outbox.get_nowait()))
        return Run(events)

    return clock.run(main)


def test_a_turn_is_answered_with_exact_marks() -> None:
    r = run([(400, 1400)], 2500)
    started = r.of("input_audio_buffer.speech_started")[0]
    stopped = r.of("input_audio_buffer.speech_stopped")[0]
    assert started["audio_start_ms"] == 100  # 400 ms minus the 300 ms prefix padding
    assert stopped["audio_end_ms"] == 1900  # speech end 1400 + 500 ms of silence
    assert r.of("conversation.item.input_audio_transcription.completed")[0]["transcript"] == (
        "what time is it"
    )
    done = r.of("response.done")[0]["response"]
    assert done["status"] == "completed"
    spoken = r.of("response.output_audio_transcript.done")[0]["transcript"]
    assert spoken.split() == LlmScript().text.split()
    audio = b"".join(base64.b64decode(e["delta"]) for e in r.of("response.output_audio.delta"))
    assert len(audio) > 2 * 24_000  # seconds of 24 kHz PCM16
    lat = r.of("earshot.latency")[0]
    m = lat["marks_ms"]
    assert m["speech_end"] == 1400.0  # the chunk carrying audio up to 1400 ms arrived at 1400
    assert m["end_of_turn"] == 2000.0  # decided when the chunk with the 1900 ms frame arrived
    assert m["llm_first_token"] - m["llm_request"] == 200.0  # the fake's TTFT, exactly
    assert lat["ttfat_ms"] == m["playout_start"] - m["speech_end"]
    assert abs(sum(lat["terms_ms"].values()) - lat["ttfat_ms"]) < 1e-6


def test_tts_failure_fails_that_response_and_the_next_turn_is_answered() -> None:
    tts = FakeTts(fail=lambda i, text: i == 0)
    r = run([(400, 1400), (4000, 5000)], 6500, tts=tts, transcripts=("first", "second"))
    statuses = [e["response"]["status"] for e in r.of("response.done")]
    assert statuses == ["failed", "completed"]
    failed = r.of("response.done")[0]["response"]["status_details"]
    assert "fake TTS failure" in failed["error"]["message"]
    assert [
        e["transcript"] for e in r.of("conversation.item.input_audio_transcription.completed")
    ] == ["first", "second"]


def test_llm_failure_speaks_the_fallback_line() -> None:
    r = run([(400, 1400)], 2500, scripts=[LlmScript(fail_after_tokens=0)])
    assert r.of("response.done")[0]["response"]["status"] == "completed"
    assert r.of("response.output_audio_transcript.done")[0]["transcript"].strip() == FALLBACK_LINE


def test_speech_during_a_reply_interrupts_it() -> None:
    # The reply's audio starts ~2.2 s; the caller speaks again at 3.0 s.
    slow = LlmScript(text="This is a long story. " * 10, ttft_ms=200.0, token_ms=50.0)
    r = run(
        [(400, 1400), (3000, 4000)], 5500, scripts=[slow], transcripts=("tell me a story", "stop")
    )
    first = r.of("response.done")[0]["response"]
    assert first["status"] == "cancelled"
    assert first["status_details"]["reason"] == "turn_detected"
    truncated = r.of("conversation.item.truncated")[0]
    assert truncated["item_id"] == first["output"][0]["id"]
    lat = r.of("earshot.latency")[0]
    assert lat["interrupted"]
    # Played estimate: real-time playback from the first delta (2400 ms: EOT 2000 + TTFT 200 +
    # 4 tokens of 50 ms) to the speech start's detection (the chunk ending 3100 ms): 700 ms.
    assert lat["marks_ms"]["playout_start"] == 2400.0
    assert truncated["audio_end_ms"] == 700
    # FakeTts: 60 ms per character + 1: "This" ends 262 ms, "is" 458, "a" 585, "long" 863.
    assert lat["heard_text"] == "This is a"
    # The second turn is answered with the interrupted reply cut to what was heard.
    assert len(r.of("response.created")) == 2


def test_turn_detection_off_waits_for_commit() -> None:
    r = run(
        [(400, 1400)],
        2500,
        session={"type": "realtime", "audio": {"input": {"turn_detection": None}}},
        then=[{"type": "input_audio_buffer.commit"}],
    )
    assert not r.of("input_audio_buffer.speech_started")
    assert len(r.of("input_audio_buffer.committed")) == 1
    done = r.of("conversation.item.input_audio_transcription.completed")
    assert [e["transcript"] for e in done] == ["what time is it"]
    assert done[0]["usage"]["seconds"] == 2.5  # every appended frame was transcribed
    assert not r.of("response.created")  # a manual commit does not answer by itself


def _stop_after_speech_ms(eagerness: str) -> float:
    r = run(
        [(400, 1400)],
        3500,
        session={
            "type": "realtime",
            "audio": {
                "input": {"turn_detection": {"type": "semantic_vad", "eagerness": eagerness}}
            },
        },
    )
    return float(r.of("input_audio_buffer.speech_stopped")[0]["audio_end_ms"]) - 1400.0


def test_semantic_vad_eagerness_scales_the_smart_end_pointer() -> None:
    waits = {e: _stop_after_speech_ms(e) for e in ("low", "auto", "high")}
    assert 0 < waits["high"] < waits["auto"] < waits["low"]


def _audio_bytes(r: Run) -> bytes:
    return b"".join(base64.b64decode(e["delta"]) for e in r.of("response.output_audio.delta"))


def test_control_characters_from_the_llm_are_spoken_around() -> None:
    # FakeTts raises on any control character, as espeak-ng's C API does with a NUL.
    text = "Sure\x00, it is\x07 noon.\x1b Anything else?"
    r = run([(400, 1400)], 2500, scripts=[LlmScript(text=text)])
    assert not r.of("error")
    done = r.of("response.done")[0]["response"]
    assert done["status"] == "completed"
    assert len(_audio_bytes(r)) > 24_000
    spoken = r.of("response.output_audio_transcript.done")[0]["transcript"]
    assert spoken.split() == ["Sure,", "it", "is", "noon.", "Anything", "else?"]
    assert not any(ord(c) < 32 for c in spoken)


def test_a_trickle_without_punctuation_is_spoken_before_the_llm_ends() -> None:
    # Twelve words, 100 ms apart, no boundary, then the LLM stalls forever: the chunker's
    # 1.5 s bound speaks what it has (long before the 8 s no-audio fallback).
    trickle = LlmScript(
        text="so I was thinking that we could maybe go there on the ", token_ms=100.0, stall=True
    )
    r = run([(400, 1400)], 2500, scripts=[trickle], tail_ms=3000.0)
    assert not r.of("error")
    assert len(_audio_bytes(r)) > 24_000
    said = "".join(e["delta"] for e in r.of("response.output_audio_transcript.delta"))
    assert said.split()[:4] == ["so", "I", "was", "thinking"]
    assert FALLBACK_LINE not in said
    assert not r.of("response.done")  # the LLM is still "streaming"


def test_a_silent_llm_is_replaced_by_the_fallback_after_the_no_audio_bound() -> None:
    silent = LlmScript(fail_after_tokens=0, stall=True)
    short = run([(400, 1400)], 2500, scripts=[silent], tail_ms=7000.0)
    assert not short.of("response.output_audio.delta")  # within 8 s: nothing yet
    r = run([(400, 1400)], 2500, scripts=[silent], tail_ms=9000.0)
    done = r.of("response.done")[0]["response"]
    assert done["status"] == "completed"
    assert r.of("response.output_audio_transcript.done")[0]["transcript"].strip() == FALLBACK_LINE
    assert len(_audio_bytes(r)) > 24_000


def test_the_no_audio_bound_comes_from_the_session_config() -> None:
    config = SessionConfig(no_audio_timeout_ms=1000.0)
    silent = LlmScript(fail_after_tokens=0, stall=True)
    r = run([(400, 1400)], 2500, scripts=[silent], tail_ms=1500.0, config=config)
    assert r.of("response.output_audio_transcript.done")[0]["transcript"].strip() == FALLBACK_LINE


def test_tts_runs_at_most_the_look_ahead_bound_ahead_of_the_client() -> None:
    # 20 sentences of ~1.3 s each (FakeTts: 60 ms per character); the reply starts ~2.2 s.
    long = LlmScript(text="This is a long story. " * 20, token_ms=1.0)
    config = SessionConfig(max_lookahead_ms=1000.0)
    r = run([(400, 1400)], 2500, scripts=[long], tail_ms=3000.0, config=config)
    sent_s = len(_audio_bytes(r)) / 2 / 24_000
    # By the end (~3.3 s after the first delta) the client has played ~3.3 s: what was sent
    # is that plus at most the bound and one sentence, not the whole 26 s reply.
    assert 3.0 < sent_s < 3.3 + 1.0 + 1.4
    unbounded = run([(400, 1400)], 2500, scripts=[long], tail_ms=3000.0)
    assert len(_audio_bytes(unbounded)) / 2 / 24_000 > 10.0  # the default 10 s bound


def test_a_text_only_response_streams_the_llm_text() -> None:
    r = run([(400, 1400)], 2500, session={"type": "realtime", "output_modalities": ["text"]})
    deltas = r.of("response.output_text.delta")
    assert len(deltas) > 3  # streamed as the LLM produced it, not in one piece
    assert "".join(e["delta"] for e in deltas).split() == LlmScript().text.split()
    assert r.of("response.output_text.done")[0]["text"].split() == LlmScript().text.split()
    assert not r.of("response.output_audio.delta")
    assert r.of("response.done")[0]["response"]["status"] == "completed"


def test_response_cancel_stops_the_reply_through_its_handle() -> None:
    tts = FakeTts()
    slow = LlmScript(text="This is a long story. " * 10, ttft_ms=1000.0)
    r = run(
        [],
        200,
        scripts=[slow],
        tts=tts,
        then=[
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "tell me a story"}],
                },
            },
            {"type": "response.create"},
            {"type": "response.cancel"},
        ],
    )
    done = r.of("response.done")
    assert [d["response"]["status"] for d in done] == ["cancelled"]
    assert done[0]["response"]["status_details"]["reason"] == "client_cancelled"
    assert not r.of("response.output_audio.delta")
    assert tts.texts == []  # the LLM stream was cancelled before any sentence reached TTS
