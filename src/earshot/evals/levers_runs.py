"""The runs of the lever evaluation: TTFT trials against the real servers, and whole sessions.

* `ttft_trials` sends the same prompts through several arms (e.g. one request vs hedged),
  **interleaved** — prompt i goes through every arm before prompt i+1, the arm order rotating —
  so a change in machine load (two shared cores) hits every arm alike. Each reply is read to
  its end, as a session would.
* `run_caller` runs one recorded caller track through a real `Session` (Silero VAD, fixed
  end-pointer, pocketsphinx, espeak-ng) with the LLM (and levers) given, on a `SimulatedClock`
  that charges compute and waits for the network in real time, so latencies are real.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from earshot.audio.frames import Pcm16
from earshot.clock import Clock
from earshot.levers.notes import bind_turn_notes
from earshot.levers.session_levers import LeverSummary, SessionLevers
from earshot.llm.base import ChatMessage, LanguageModel, LlmError
from earshot.metrics.turn import TurnRecord
from earshot.turns.bargein import BargeInConfig

SINGLE_PASS_STT: Mapping[str, Any] = {"second_pass": False, "decoder_options": {"bestpath": False}}
"""PocketSphinx whose final is its last partial: no flat-lexicon second pass and no lattice
best path in `finish`, so a partial that has held through the pause is the final transcript
(what preemptive generation speculates on). On the 18 recordings of the shared set the
normalised partial 100 ms into the pause equalled the final on 17 (4 with both passes on), at
a word error rate of 2.48 vs 2.45 against the references, and `finish` took 21 vs 679 ms
(p50; measured with `earshot.levers.normalize.normalize_transcript` and jiwer, load ≈ 4)."""


@dataclass(frozen=True, slots=True)
class TtftTrial:
    """One request through one arm.

    Attributes:
        ttft_ms: request → first non-empty delta (None: it failed before one).
        total_ms: request → end of the reply.
        chars: characters of reply text received.
        notes: what levers recorded (e.g. ``llm_hedge``).
        error: the failure, if any.
    """

    ttft_ms: float | None
    total_ms: float
    chars: int
    notes: dict[str, Any] = field(default_factory=dict)
    error: str = ""


REQUEST_TIMEOUT_MS = 60_000.0
"""A TTFT trial whose stream has not ended by then is abandoned and recorded as failed (the
client's own time-outs bound each stage; this bounds a hedged race as a whole, so one stuck
request can never hold the evaluation forever)."""


async def _one_request(
    llm: LanguageModel, messages: Sequence[ChatMessage], clock: Clock
) -> TtftTrial:
    notes: dict[str, Any] = {}
    start_ms = clock.now_ms()
    first_ms: float | None = None
    chars = 0
    error = ""
    with bind_turn_notes(notes):
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_MS / 1000.0):
                async with contextlib.aclosing(llm.stream(messages)) as stream:
                    async for delta in stream:
                        if delta and first_ms is None:
                            first_ms = clock.now_ms()
                        chars += len(delta)
        except LlmError as exc:
            error = str(exc)
        except TimeoutError:
            error = f"the stream had not ended after {REQUEST_TIMEOUT_MS / 1000:.0f} s: abandoned"
    end_ms = clock.now_ms()
    return TtftTrial(
        None if first_ms is None else first_ms - start_ms, end_ms - start_ms, chars, notes, error
    )


async def ttft_trials(
    arms: Mapping[str, LanguageModel],
    prompts: Sequence[str],
    clock: Clock,
    num_trials: int,
    system_prompt: str | None = None,
    on_trial: Callable[[int], None] | None = None,
) -> dict[str, list[TtftTrial]]:
    """``num_trials`` prompts (cycling through ``prompts``) through every arm, interleaved.

    Raises:
        ValueError: no arms or no prompts.
    """
    if not arms or not prompts:
        raise ValueError("TTFT trials need at least one arm and one prompt")
    names = list(arms)
    results: dict[str, list[TtftTrial]] = {name: [] for name in names}
    for i in range(num_trials):
        messages = [ChatMessage("user", prompts[i % len(prompts)])]
        if system_prompt:
            messages.insert(0, ChatMessage("system", system_prompt))
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(await _one_request(arms[name], messages, clock))
        if on_trial is not None:
            on_trial(i + 1)
    return results


def turn_values(turns: Sequence[TurnRecord], what: str) -> list[float]:
    """Per complete turn, ``"ttfat"`` or a term's ms."""
    out: list[float] = []
    for turn in turns:
        terms = turn.terms_ms
        ttfat = turn.ttfat_ms
        if terms is None or ttfat is None:
            continue
        out.append(ttfat if what == "ttfat" else terms[what])
    return out


BARGE_IN = BargeInConfig()
"""The session arms' barge-in: ``earshot converse``'s default. A recording that pauses often
ends many turns in a row; without barge-in each reply would wait for the ones before it to play
out (seen: 8–18 s queued in the jitter buffer term on one conversational recording), and the
caller would hear replies to fragments while still talking."""


@dataclass(slots=True)
class CallerRun:
    """One recorded caller through one session.

    Attributes:
        turns: the complete turns, in order.
        all_turns: every turn (complete or not).
        levers: `SessionLevers.summary` of the run (empty without levers).
        wall_turns: how many utterances the track held.
    """

    turns: list[TurnRecord]
    all_turns: list[TurnRecord]
    levers: LeverSummary
    utterances: int


def run_caller(
    track: Pcm16,
    utterances: int,
    llm: LanguageModel,
    levers: SessionLevers | None = None,
    *,
    eot_silence_ms: float = 500.0,
    jitter_ms: float = 40.0,
    stt_options: Mapping[str, Any] | None = None,
    bargein: BargeInConfig | None = BARGE_IN,
) -> CallerRun:
    """Run a caller track (int16 16 kHz) through a real session on a `SimulatedClock`.

    Silero VAD, the fixed end-pointer, pocketsphinx (built with ``stt_options``, e.g.
    `SINGLE_PASS_STT`) and espeak-ng are real and built fresh for the run; compute is charged
    to the clock and the LLM's HTTP requests are waited for in real time (`Clock.busy`), so
    every term is a real latency. Barge-in is on, as under ``earshot converse`` (``bargein``
    None turns it off).
    """
    from earshot.clock import SimulatedClock
    from earshot.session.config import SessionConfig
    from earshot.session.session import Session
    from earshot.stt import make_stt
    from earshot.transports.file import ArraySource, FileTransport
    from earshot.tts import make_tts
    from earshot.turns.endpointer import FixedEndpointer
    from earshot.vad import make_vad

    clock = SimulatedClock()
    _bind_clock(llm, clock)
    config = SessionConfig(jitter_ms=jitter_ms, max_tail_ms=20_000.0)
    session = Session(
        config,
        clock,
        make_vad("silero"),
        make_stt("pocketsphinx", **dict(stt_options or {})),
        llm,
        make_tts("espeak"),
        FixedEndpointer(eot_silence_ms),
        levers=levers,
        bargein=bargein,
    )
    transport = FileTransport(ArraySource(track), clock, max_tail_ms=config.max_tail_ms)
    state = clock.run(lambda: session.run(transport))
    every = list(state.turns)
    return CallerRun(
        [t for t in every if t.complete],
        every,
        levers.summary() if levers is not None else {},
        utterances,
    )


def _bind_clock(llm: LanguageModel, clock: Clock) -> None:
    """Point an LLM (and a hedge's backends) at this run's clock."""
    for part in [llm, *getattr(llm, "backends", [])]:
        if hasattr(part, "clock"):
            part.clock = clock


def write_turns(path: Path, turns: Sequence[TurnRecord]) -> None:
    """``turns.jsonl`` of a run (atomically), the contract `earshot budget --from` reads."""
    import json

    from earshot.audio.io import write_text_atomic

    lines = [json.dumps(t.to_json(), allow_nan=False) for t in turns]
    write_text_atomic(path, "\n".join(lines) + ("\n" if lines else ""))
