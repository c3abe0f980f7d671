"""One `earshot eval latency` trial: one utterance through its own session, timed.

The trial's caller track is ``LEAD_MS`` of silence, the recording, and ``gap_ms`` of silence;
the session (real Silero or WebRTC VAD and the ``--stack`` backends — by default pocketsphinx,
espeak-ng and the scripted LLM seeded with the trial's seed) runs on it until every reply has
played. Every model is built fresh for the trial, so its result does not depend on which
trials ran before it in the same process.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from earshot.evals.harness import Trial
from earshot.evals.latency_model import (
    LatencyOptions,
    reply_waits_ms,
    stage_deltas,
)
from earshot.evals.latency_plan import LatencyTrial
from earshot.evals.tracks import LEAD_MS

if TYPE_CHECKING:
    from earshot.clock import Clock
    from earshot.session.session import Session, SessionState

EXACT_CLOCK = "simulated (virtual time, compute free: exact)"
"""How the components describe the clock under ``--exact-timing``."""


def run_trial(opts: LatencyOptions, trial: Trial[LatencyTrial]) -> dict[str, Any]:
    """Run the trial's utterance through a session; its turns with their stage deltas.

    Returns:
        ``{"utterance": {file, language, path, duration_s, transcript, start_ms, end_ms},
        "input_ms",
        "processed_ms", "components", "turns": [turns.jsonl objects with "stages_ms"]}``.

    Raises:
        AudioFileError: the recording cannot be read.
    """
    from earshot.audio.frames import samples_per_frame, samples_to_ms
    from earshot.clock import SimulatedClock, SystemClock
    from earshot.converse import (
        ConverseOptions,
        build_components,
        close_components,
        describe_components,
        session_from_parts,
    )
    from earshot.evals.tracks import build_caller_track, load_clips
    from earshot.session.config import SessionConfig
    from earshot.stacks import resolve_stack

    utterance = trial.params.utterance
    (clip,) = load_clips([utterance.path])
    track, (placed,) = build_caller_track(
        [clip], opts.gap_ms, LEAD_MS, opts.gap_ms, names=[utterance.name]
    )
    clock: Clock = (
        SystemClock() if opts.real_time else SimulatedClock(charge_compute=not opts.exact_timing)
    )
    stack = opts.stack or resolve_stack(None)
    converse_opts = ConverseOptions(
        input_path=utterance.path,
        out_dir=opts.out_dir,
        session=SessionConfig(),
        vad=opts.vad,
        endpointer=opts.endpointer,
        eot_silence_ms=opts.eot_silence_ms,
        stt=stack.stt,
        llm=stack.llm,
        llm_options=(
            {"profile": opts.llm_profile, "seed": trial.seed} if stack.llm == "scripted" else {}
        ),
        tts=stack.tts,
        simulated_clock=not opts.real_time,
    )
    parts = build_components(converse_opts, clock)
    components = describe_components(parts, clock)
    if opts.exact_timing and not opts.real_time:
        components["clock"] = EXACT_CLOCK
    holder: list[Session] = []

    async def main() -> SessionState:
        if isinstance(clock, SystemClock):
            clock.reset_origin()
        session = session_from_parts(converse_opts.session, clock, parts)
        holder.append(session)
        return await session.run(track)

    try:
        state = clock.run(main)
    finally:
        close_components(parts)
    frame_samples = samples_per_frame(converse_opts.session.frame_ms)
    input_ms = samples_to_ms(len(track))
    frames_done = min(state.input_frames_done, -(-len(track) // frame_samples))
    waits = reply_waits_ms(state.turns)
    turns = []
    for turn in state.turns:
        turn.extra.setdefault("utterance", utterance.name)
        if turn.turn in waits:
            turn.extra["waited_for_earlier_reply_ms"] = round(waits[turn.turn], 3)
        obj = turn.to_json()
        deltas = stage_deltas(turn)
        obj["stages_ms"] = None if deltas is None else {k: round(v, 3) for k, v in deltas.items()}
        turns.append(obj)
    return {
        "utterance": {
            "file": os.fspath(utterance.path),
            "language": utterance.language,
            "path": utterance.name,
            "duration_s": utterance.duration_s,
            "transcript": utterance.transcript,
            "start_ms": round(samples_to_ms(placed.start_sample), 3),
            "end_ms": round(samples_to_ms(placed.end_sample), 3),
        },
        "input_ms": round(input_ms, 3),
        "processed_ms": round(min(input_ms, frames_done * converse_opts.session.frame_ms), 3),
        "components": components,
        "turns": turns,
    }
