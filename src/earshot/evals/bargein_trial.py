"""One `earshot eval bargein` trial: the sessions of one scenario, scored.

A trial runs the question alone first (to read where the reply's first sample plays; cached per
process for each question and condition), then the scenario's track, and scores it with
`earshot.evals.bargein_score.score_scenario`. Every session gets a fresh VAD and recognizer, so
a trial's result does not depend on which trials ran before it in the same process (a local
run and a Ray worker give the same result under ``--exact-timing``).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from earshot.evals.bargein_model import (
    AFTER_INPUT_MS,
    CUT_IN_TAIL_MS,
    EOT_SILENCE_MS,
    EVENT_TAIL_MS,
    QUESTION_TAIL_MS,
    BargeInOptions,
    packaged_rules_path,
)
from earshot.evals.bargein_plan import BargeInTrial
from earshot.evals.bargein_scenarios import Clip, Condition, Scenario
from earshot.evals.bargein_score import ScenarioOutcome, offline_erle_db, score_scenario
from earshot.evals.harness import Trial
from earshot.evals.tracks import LEAD_MS

if TYPE_CHECKING:
    from earshot.audio.frames import Pcm16
    from earshot.session.session import Session, SessionState
    from earshot.tts.base import Synthesizer


def _session_run(
    track: Pcm16,
    condition: Condition,
    opts: BargeInOptions,
    max_tail_ms: float,
) -> ScenarioOutcome:
    """Run one session on ``track`` under ``condition`` with fresh per-run state.

    The VAD and the recognizer are new for every session: PocketSphinx adapts its cepstral
    mean across utterances, so a reused decoder would carry one scenario's audio into the next
    and a result would depend on which scenarios ran before it in the same process.
    """
    from earshot.audio.frames import ms_to_samples, samples_per_frame
    from earshot.clock import SimulatedClock
    from earshot.echo.aec import create_echo_canceller
    from earshot.echo.path import EchoPath, MicMixer
    from earshot.evals.bargein_score import PlayoutLog
    from earshot.llm import make_llm
    from earshot.session.config import SessionConfig
    from earshot.session.session import Session
    from earshot.stt import make_stt
    from earshot.transports.file import ArraySource, FileTransport, MemoryRecorder
    from earshot.turns.bargein import BargeInConfig
    from earshot.turns.factory import make_endpointer
    from earshot.vad import make_vad

    clock = SimulatedClock(charge_compute=not opts.exact_timing)
    llm = make_llm(
        "scripted", clock, rules_path=packaged_rules_path(), profile=opts.llm_profile, seed=0
    )
    log = PlayoutLog(samples_per_frame(opts.frame_ms))
    holder: list[Session] = []
    recorder = MemoryRecorder(
        len(track) + ms_to_samples(max_tail_ms) + 2 * samples_per_frame(opts.frame_ms)
    )
    transport = FileTransport(
        ArraySource(track),
        clock,
        mic=MicMixer(EchoPath()) if condition.echo else None,
        recorder=recorder,
        max_tail_ms=max_tail_ms,
    )

    def on_tick(_tick_ms: float, state: SessionState) -> None:
        jitter = holder[0].jitter
        played = {h.response_id: jitter.played_samples(h.response_id) for h in state.responses}
        log.observe(state.output_frames_done - 1, played)

    async def main() -> SessionState:
        session = Session(
            SessionConfig(frame_ms=opts.frame_ms, max_tail_ms=max_tail_ms),
            clock,
            make_vad("silero"),
            make_stt("pocketsphinx"),
            llm,
            _tts(),
            make_endpointer("fixed", silence_ms=EOT_SILENCE_MS),
            bargein=BargeInConfig(
                min_interruption_ms=opts.min_interruption_ms,
                false_interruption_timeout_ms=opts.false_interruption_timeout_ms,
            ),
            aec=create_echo_canceller(True) if condition.aec else None,
            on_tick=on_tick,
        )
        holder.append(session)
        return await session.run(transport)

    state = clock.run(main)
    return ScenarioOutcome(state, state.responses, log, holder[0].jitter.underrun_samples, recorder)


@functools.cache
def _tts() -> Synthesizer:
    """This process's espeak-ng synthesizer (stateless between sentences), loaded once."""
    from earshot.tts import make_tts

    return make_tts("espeak")


_FIRST_PASS: dict[tuple[str, str, BargeInOptions], float | None] = {}
"""(question, condition, options) → the reply's ``playout_start`` (ms) in the first pass."""


def _first_pass_start(question: Clip, condition: Condition, opts: BargeInOptions) -> float | None:
    from earshot.audio.frames import samples_to_ms
    from earshot.evals.bargein_scenarios import build_track

    key = (question.name, condition.name, opts)
    if key not in _FIRST_PASS:
        end_ms = LEAD_MS + samples_to_ms(len(question.audio)) + QUESTION_TAIL_MS
        first = _session_run(build_track(question, LEAD_MS, end_ms).audio, condition, opts, 0.0)
        _FIRST_PASS[key] = next(
            (
                t.marks_ms["playout_start"]
                for t in first.state.turns
                if "playout_start" in t.marks_ms
            ),
            None,
        )
    return _FIRST_PASS[key]


def run_trial(opts: BargeInOptions, trial: Trial[BargeInTrial]) -> dict[str, Any]:
    """The scored result of one scenario (see `earshot.evals.bargein_score.score_scenario`)."""
    from earshot.evals.bargein_scenarios import build_track

    scenario, reply_ms = trial.params.scenario, trial.params.reply_ms
    question, condition = scenario.question, scenario.condition
    playout_start = _first_pass_start(question, condition, opts)
    if playout_start is None:
        return _failed(scenario, "the question got no reply in the first pass")
    onset_ms = playout_start + scenario.offset_ms
    sound_end_ms = onset_ms + scenario.event.sound_ms
    if scenario.kind == "cut-in":
        end_ms, max_tail_ms = sound_end_ms + CUT_IN_TAIL_MS, AFTER_INPUT_MS
    else:
        end_ms = sound_end_ms + EVENT_TAIL_MS
        # The reply must be able to finish (after a resume) before the session gives up; with
        # echo and no AEC it never finishes (it keeps stopping itself), so do not wait for it.
        finish_ms = reply_ms + opts.false_interruption_timeout_ms + AFTER_INPUT_MS
        max_tail_ms = AFTER_INPUT_MS if condition.echo and not condition.aec else finish_ms
    track = build_track(question, LEAD_MS, end_ms, scenario.event, onset_ms)
    outcome = _session_run(track.audio, condition, opts, max_tail_ms)
    track_out, n = outcome.recorder.agent_track(), outcome.log.frame_samples
    frames = [track_out[i : i + n] for i in range(0, len(track_out), n)]
    erle = offline_erle_db(frames) if condition.aec else None
    return score_scenario(scenario, track, outcome, playout_start, erle)


def _failed(scenario: Scenario, why: str) -> dict[str, Any]:
    return {
        "scenario": scenario.scenario_id,
        "condition": scenario.condition.name,
        "echo": scenario.condition.echo,
        "aec": scenario.condition.aec,
        "kind": scenario.kind,
        "event": scenario.event.name,
        "question": scenario.question.name,
        "offset_ms": scenario.offset_ms,
        "barge_ins": [],
        "self_interruptions": 0,
        "resumes": 0,
        "success": False if scenario.kind == "cut-in" else None,
        "reply": None,
        "erle_db": None,
        "outcome": f"not run: {why}",
    }
