"""The levers eval's sessions hear the caller talk over a reply, as ``earshot converse`` does.

Real: Silero VAD, pocketsphinx and espeak-ng through `run_caller` on the simulated clock; the
LLM is the shipped scripted one (no server needed: the point is the session's barge-in). The
caller speaks again 1.2 s after their first utterance, while the long first reply plays.
"""

from __future__ import annotations

from earshot.clock import SimulatedClock
from earshot.data_files import bundled_data
from earshot.evals.levers_runs import CallerRun, run_caller
from earshot.evals.tracks import build_caller_track, load_clips
from earshot.llm.scripted import LatencyProfile, RuleSet, ScriptedLLM

LONG_REPLY = " ".join(["That is a fine question, and here is a long answer to it."] * 4)


def _run(**kwargs: object) -> CallerRun:
    clips = load_clips(
        [
            bundled_data("speech", "realtimestt_ljspeech_LJ001-0008.wav"),
            bundled_data("speech", "realtimestt_ljspeech_LJ001-0002.wav"),
        ]
    )
    track, placed = build_caller_track(clips, 1200.0)
    rules = RuleSet.model_validate({"rules": [], "default": LONG_REPLY})
    llm = ScriptedLLM(rules, LatencyProfile(150.0, 10.0), SimulatedClock())  # clock rebound
    return run_caller(track, len(placed), llm, **kwargs)  # type: ignore[arg-type]


def test_a_reply_the_caller_talks_over_is_cut_and_the_next_reply_does_not_queue() -> None:
    on = _run()
    first, second = on.all_turns[0], on.all_turns[-1]
    assert first.interrupted  # the caller spoke again over the long reply: it stopped
    assert second.terms_ms is not None and second.terms_ms["jitter_buffer"] < 500.0

    off = _run(bargein=None)
    first_off, second_off = off.all_turns[0], off.all_turns[-1]
    assert not first_off.interrupted
    # Without barge-in the second reply waits for the whole first one to play out.
    assert second_off.terms_ms is not None and second_off.terms_ms["jitter_buffer"] > 2000.0
