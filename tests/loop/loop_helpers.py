"""Helpers for the loop tests (imported by them): a whole session on the shipped fakes.

Layer 2 of the test plan: nothing real runs (the fakes stand in for every model, on purpose),
time is virtual and free (``charge_compute=False``), so every mark is exact and a call of a
minute takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from earshot.clock import SimulatedClock
from earshot.metrics.turn import TurnRecord
from earshot.session.config import SessionConfig
from earshot.session.response import ResponseFailed
from earshot.session.session import Session, SessionState
from earshot.testing import EnergyVad, FakeLlm, FakeStt, FakeTts, LlmScript, SyntheticCaller
from earshot.transports.base import Transport
from earshot.transports.file import FileTransport, MemoryRecorder
from earshot.turns.bargein import BargeInConfig
from earshot.turns.endpointer import FixedEndpointer


@dataclass
class Call:
    """What a loop test looks at after a call."""

    state: SessionState
    session: Session
    logged: list[TurnRecord] = field(default_factory=list)
    failures: list[ResponseFailed] = field(default_factory=list)
    recorder: MemoryRecorder | None = None


def run_call(
    speech_ms: Sequence[tuple[float, float]],
    duration_ms: float,
    *,
    llm: Callable[[SimulatedClock], FakeLlm] | None = None,
    scripts: Sequence[LlmScript] = (),
    tts: FakeTts | None = None,
    stt: FakeStt | None = None,
    bargein: BargeInConfig | None = None,
    config: SessionConfig | None = None,
    transport: Callable[[SimulatedClock, SyntheticCaller], Transport] | None = None,
    on_tick: Callable[[float, SessionState], None] | None = None,
    record: bool = True,
    vad: EnergyVad | None = None,
) -> Call:
    """Run one call on fakes; the caller speaks tone bursts during ``speech_ms``."""
    clock = SimulatedClock(charge_compute=False)
    config = config or SessionConfig(max_tail_ms=15_000.0)
    caller = SyntheticCaller(speech_ms, duration_ms)
    recorder = (
        MemoryRecorder(int(16 * (duration_ms + config.max_tail_ms)) + 16_000) if record else None
    )
    logged: list[TurnRecord] = []
    session = Session(
        config,
        clock,
        vad or EnergyVad(),
        stt or FakeStt(),
        llm(clock) if llm is not None else FakeLlm(clock, list(scripts)),
        tts or FakeTts(),
        FixedEndpointer(500.0),
        bargein=bargein,
        on_turn=logged.append,
        on_tick=on_tick,
    )
    medium: Transport = (
        transport(clock, caller)
        if transport is not None
        else FileTransport(caller, clock, recorder=recorder, max_tail_ms=config.max_tail_ms)
    )
    state = clock.run(lambda: session.run(medium))
    return Call(state, session, logged, list(state.failures), recorder)
