"""Barge-in, network transports, vanishing clients, Ctrl-C and memory, on the shipped fakes."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from loop_helpers import run_call

from earshot.audio.frames import samples_per_frame
from earshot.clock import SimulatedClock
from earshot.metrics.report import TurnLog
from earshot.metrics.turn import TurnRecord
from earshot.session.config import SessionConfig
from earshot.session.session import Session
from earshot.testing import (
    EnergyVad,
    FakeLlm,
    FakeNetworkTransport,
    FakeStt,
    FakeTts,
    SyntheticCaller,
)
from earshot.transports.base import InputFrame, SessionPort, Transport
from earshot.transports.file import FileTransport
from earshot.turns.bargein import BargeInConfig
from earshot.turns.endpointer import FixedEndpointer

BARGE_IN_KEYS = {
    "user_onset_ms",
    "detected_ms",
    "stopped_at_ms",
    "last_agent_sample_ms",
    "reaction_ms",
    "while",
    "heard_words",
    "generated_words",
    "resolution",
}


def test_barge_in_stops_playout_within_a_frame_and_keeps_the_heard_words() -> None:
    # The reply to turn 1 plays from ~3.2 s for ~4 s; the caller cuts in at 4.5 s.
    stt = FakeStt(["what can you do", "no stop that please tell me the time"])
    call = run_call(
        [(1000.0, 2500.0), (4500.0, 6500.0)], 12_000.0, stt=stt, bargein=BargeInConfig()
    )
    first, second = call.state.turns
    (record,) = first.barge_ins
    assert record.resolution == "confirmed" and record.while_state == "playing"
    assert set(record.to_json()) == BARGE_IN_KEYS
    assert first.to_json()["barge_ins"] == [record.to_json()]
    assert first.interrupted and first.agent_text.startswith(first.heard_text)
    assert 0 < len(first.heard_text) < len(first.agent_text)
    assert record.detected_ms - record.user_onset_ms == pytest.approx(200.0, abs=20.0)
    assert call.recorder is not None
    agent = call.recorder.agent_track()
    stop = int((record.stopped_at_ms + 20.0) * 16)  # within one frame of the decision
    resume = int(second.marks_ms["playout_start"] * 16)
    assert agent[int(first.marks_ms["playout_start"] * 16) : stop - 320].any()
    assert not agent[stop:resume].any()
    assert record.last_agent_sample_ms is not None
    assert record.last_agent_sample_ms <= record.stopped_at_ms + 20.0
    assert second.complete and second.user_text == "no stop that please tell me the time"
    # the history keeps only the words heard
    assert call.state.history[1].content == first.heard_text and call.state.history[1].interrupted


def _network(**kw: float) -> object:
    def build(clock: SimulatedClock, caller: SyntheticCaller) -> Transport:
        return FakeNetworkTransport(clock, caller, **kw)  # type: ignore[arg-type]

    return build


def test_network_terms_are_measured_and_sum_to_ttfat_at_the_callers_ear() -> None:
    transport = _network(
        uplink_ms=40.0, downlink_ms=40.0, client_playout_ms=30.0, sync_error_ms=2.5
    )
    call = run_call([(1000.0, 2500.0)], 6000.0, transport=transport)  # type: ignore[arg-type]
    (turn,) = call.state.turns
    terms, ttfat = turn.terms_ms, turn.ttfat_ms
    assert terms is not None and ttfat is not None
    assert ttfat == pytest.approx(turn.marks_ms["heard_start"] - turn.marks_ms["speech_end"])
    assert sum(terms.values()) == pytest.approx(ttfat, abs=1e-9)
    assert terms["network_in"] == pytest.approx(40.0)
    assert terms["uplink_jitter_buffer"] == pytest.approx(0.0)
    assert terms["network_out"] == pytest.approx(40.0)
    assert terms["client_playout"] == pytest.approx(30.0)
    # the decision waited 500 ms of silence, and 40 ms more for that audio to arrive
    assert terms["endpointing"] == pytest.approx(500.0)
    assert turn.marks_ms["end_of_turn"] - turn.marks_ms["speech_end"] == pytest.approx(540.0)
    doc = turn.to_json()
    assert doc["terms_measured"] == [
        "network_in",
        "uplink_jitter_buffer",
        "network_out",
        "client_playout",
    ]
    assert doc["terms_estimated"] == [] and doc["sync_error_ms"] == 2.5
    assert turn.heard_text == turn.agent_text


def test_the_file_transport_keeps_network_terms_at_zero_and_no_heard_mark() -> None:
    call = run_call([(1000.0, 2500.0)], 6000.0)
    (turn,) = call.state.turns
    assert turn.terms_ms is not None
    assert turn.terms_ms["network_in"] == turn.terms_ms["network_out"] == 0.0
    assert "heard_start" not in turn.marks_ms and "terms_measured" not in turn.to_json()


def test_barge_in_over_a_network_clears_the_client_and_keeps_what_it_reported_played() -> None:
    stt = FakeStt(["what can you do", "no stop that please tell me the time"])
    transport = _network(downlink_ms=60.0, client_playout_ms=40.0)
    call = run_call(
        [(1000.0, 2500.0), (4500.0, 6500.0)],
        12_000.0,
        stt=stt,
        bargein=BargeInConfig(),
        transport=transport,  # type: ignore[arg-type]
    )
    first = call.state.turns[0]
    medium = call.session.transport
    assert isinstance(medium, FakeNetworkTransport)
    assert [rid for rid, _ in medium.cleared] == [1]
    cleared_at = medium.cleared[0][1]
    # the client played nothing of the reply after the clear reached it (+1 frame)
    assert all(t <= cleared_at + 20.0 for t, rid in medium.played_audio_ms if rid == 1)
    # heard words come from the client's report, which lags what the server sent
    played = first.extra["played_samples"]
    sent_ms = first.barge_ins[0].stopped_at_ms - first.marks_ms["playout_start"]
    assert 0 < played < sent_ms * 16
    assert first.interrupted and first.agent_text.startswith(first.heard_text)


def test_a_client_that_vanishes_mid_reply_ends_the_call_with_the_turn_unfinished() -> None:
    transport = _network(vanish_at_ms=4000.0)
    call = run_call([(1000.0, 2500.0)], 10_000.0, transport=transport)  # type: ignore[arg-type]
    (turn,) = call.state.turns
    assert turn.unfinished and not turn.interrupted
    assert call.logged == [turn] and turn.to_json()["unfinished"] is True
    assert 0 < len(turn.heard_text) < len(turn.agent_text)


def test_ctrl_c_during_a_reply_writes_the_turn_as_unfinished(tmp_path: Path) -> None:
    clock = SimulatedClock(charge_compute=False)
    log = TurnLog(tmp_path / "turns.jsonl")
    session = Session(
        SessionConfig(),
        clock,
        EnergyVad(),
        FakeStt(),
        FakeLlm(clock),
        FakeTts(),
        FixedEndpointer(500.0),
        on_turn=log.append,
    )
    transport = FileTransport(SyntheticCaller([(1000.0, 2500.0)], 10_000.0), clock)

    async def main() -> None:
        task = asyncio.ensure_future(session.run(transport))
        await clock.sleep_until_ms(4000.0)  # the reply is playing
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    clock.run(main)
    log.close()
    (line,) = (tmp_path / "turns.jsonl").read_text().splitlines()
    doc = json.loads(line)
    assert doc["unfinished"] is True and doc["turn"] == 1
    assert doc["agent_text"].startswith(doc["heard_text"]) and doc["heard_text"]
    assert session.state.unfinished == session.state.turns
    assert session.close_open_turns() == []  # idempotent: nothing written twice


def _peak_bytes(duration_ms: float) -> int:
    speech = [(1000.0, 2500.0), (duration_ms - 9000.0, duration_ms - 7500.0)]
    tracemalloc.start()
    try:
        call = run_call(speech, duration_ms, config=SessionConfig(frame_ms=40), record=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [t.complete for t in call.state.turns] == [True, True]
    return peak


def test_memory_does_not_grow_with_the_length_of_the_call() -> None:
    short, long = _peak_bytes(30_000.0), _peak_bytes(240_000.0)
    recording_bytes = 240 * 16_000 * 2 * 2  # what keeping both tracks would cost
    assert long - short < 1_000_000, (short, long)
    assert long < recording_bytes / 4


def test_pause_hints_reach_a_recognizer_that_wants_them() -> None:
    stt = FakeStt(decode_ms=(12.5, 30.0))
    call = run_call([(1000.0, 2000.0), (2300.0, 3000.0)], 7000.0, stt=stt)
    (turn,) = call.state.turns
    assert len(stt.pauses) == 2 and stt.resumes == 1
    assert stt.pauses[0] < stt.pauses[1]
    assert turn.extra["stt_decode_ms"] == [12.5, 30.0]
    assert "stt_early_final" not in turn.extra


def test_two_sessions_in_one_loop_share_no_state() -> None:
    clock = SimulatedClock(charge_compute=False)
    records: dict[str, list[TurnRecord]] = {"a": [], "b": []}

    def make(name: str, spans: list[tuple[float, float]]) -> tuple[Session, FileTransport]:
        session = Session(
            SessionConfig(),
            clock,
            EnergyVad(),
            FakeStt([f"caller {name}"]),
            FakeLlm(clock),
            FakeTts(),
            FixedEndpointer(500.0),
            on_turn=records[name].append,
        )
        return session, FileTransport(SyntheticCaller(spans, 8000.0), clock)

    a, ta = make("a", [(1000.0, 2500.0)])
    b, tb = make("b", [(1500.0, 2200.0), (5000.0, 5600.0)])

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(a.run(ta))
            tg.create_task(b.run(tb))

    clock.run(main)
    assert [t.user_text for t in records["a"]] == ["caller a"]
    assert [t.user_text for t in records["b"]] == ["caller b", "hello there"]
    assert np.isclose(records["a"][0].marks_ms["speech_end"], 2500.0, atol=40.0)


def test_session_events_reach_a_transport_that_listens_in_order() -> None:
    from earshot.session import events as ev
    from earshot.session.events import SessionEventSink

    transport = _network(downlink_ms=20.0)
    call = run_call([(1000.0, 2500.0)], 6000.0, transport=transport)  # type: ignore[arg-type]
    medium = call.session.transport
    assert isinstance(medium, FakeNetworkTransport) and isinstance(medium, SessionEventSink)
    kinds = [type(e).__name__ for e in medium.events]
    firsts = list(dict.fromkeys(kinds))
    assert firsts == [
        "UserSpeechStarted",
        "UserTranscriptPartial",
        "UserTurnEnded",
        "UserTranscriptFinal",
        "ResponseText",
        "TurnCompleted",
    ]
    texts = [e.text for e in medium.events if isinstance(e, ev.ResponseText)]
    (done,) = [e for e in medium.events if isinstance(e, ev.TurnCompleted)]
    assert " ".join(texts) == done.record.agent_text and done.record is call.state.turns[0]


def test_a_transport_failure_is_recorded_and_the_open_turn_written_unfinished() -> None:
    from earshot.transports.base import TransportError

    class BrokenDisk(SyntheticCaller):
        def read(self, num_samples: int) -> np.ndarray:
            if self._pos >= 16 * 4000:  # the disk fails 4 s in, while the reply plays
                raise TransportError("caller.wav: reading failed mid-recording (I/O error)")
            return super().read(num_samples)

    clock = SimulatedClock(charge_compute=False)
    logged: list[TurnRecord] = []
    session = Session(
        SessionConfig(),
        clock,
        EnergyVad(),
        FakeStt(),
        FakeLlm(clock),
        FakeTts(),
        FixedEndpointer(500.0),
        on_turn=logged.append,
    )
    transport = FileTransport(BrokenDisk([(1000.0, 2500.0)], 10_000.0), clock)
    with pytest.raises(TransportError, match="reading failed"):
        clock.run(lambda: session.run(transport))
    assert session.state.transport_error is not None
    assert [t.unfinished for t in logged] == [True]


class _HangsUpAtOnce:
    """A caller whose whole turn arrives in one burst, after which the connection closes:
    the transport returns while the input worker still has the end-of-turn frames queued."""

    name = "burst"
    reports_device_playout = False

    def __init__(self, caller: SyntheticCaller) -> None:
        self.caller = caller

    def clear(self, response_id: int) -> None:
        pass

    async def run(self, port: SessionPort) -> None:
        n = samples_per_frame(port.frame_ms)
        k = 0
        while not self.caller.exhausted:
            pcm = self.caller.read(n)
            pcm = np.pad(pcm, (0, n - len(pcm)))
            port.push_input(InputFrame(pcm, capture_ms=k * port.frame_ms))
            k += 1


def test_a_caller_who_hangs_up_with_a_turn_still_queued_ends_the_call_cleanly() -> None:
    # The end of turn is decided while the input worker drains its queue after the transport
    # returned; the response it starts must find the scheduler still open.
    call = run_call(
        [(200.0, 1500.0)],
        2600.0,
        transport=lambda clock, caller: _HangsUpAtOnce(caller),  # type: ignore[arg-type,return-value]
    )
    (turn,) = call.state.turns
    assert turn.unfinished and call.logged == [turn]
