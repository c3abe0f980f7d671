"""Real recordings (bundled, all held out from calibration): the packaged end-of-turn model's
score tells true ends from mid-turn pauses better than chance, by a stated margin (issue 11).

Real Silero VAD, the session's segmenter and turn detector, praat-parselmouth prosody, Whisper
tiny.en on the turn's last 3 s and SmolLM2's end-of-turn probability (the observer lane: every
cue at every pause), the packaged model fitted on other recordings and other noises
(``split.json``). The 7 bundled recordings in quiet and with 2 of the bundled noises at 10 dB.
No fakes.
"""

from __future__ import annotations

from typing import Any

import pytest

from earshot.evals.endpointing_model import build_resources
from earshot.evals.endpointing_plan import calibration_split
from earshot.evals.endpointing_replay import (
    Configuration,
    EndpointerSpec,
    ReplaySettings,
    lane_pauses,
    replay,
)
from earshot.evals.endpointing_trials import (
    LEAD_MS,
    Condition,
    Trial,
    load_data,
    load_speech_vad,
    trial_audio,
)
from earshot.evals.manifest import bundled_data_dir
from earshot.metrics.stats import auc
from earshot.stt import make_stt
from earshot.turns.eot_model import PauseFeatures, load_model
from earshot.vad import make_vad

MIN_AUC = 0.65
"""Stated margin over chance (0.5) for the packaged model's combined score (every cue, at the
start of the pause) on these held-out pauses: measured 0.73 here (20 ends / 19 mid-turn
pauses) when this was written; 0.61 out of fold over ../shared/data."""

MIN_LM_AUC = 0.7
"""The LM cue alone, in its a-priori direction (higher = end): measured 0.77 here; 0.73 over
the English recordings of ../shared/data."""

NOISES = 2
"""Bundled noises mixed in (the first ones by manifest order), to keep the test to seconds."""


@pytest.fixture(scope="module")
def pauses() -> list[dict[str, Any]]:
    entries, noises = load_data(bundled_data_dir(), "en")
    cal_speech, cal_noise = calibration_split()
    assert not {e.name for e in entries} & cal_speech  # held out: never calibrated on
    assert not {n.name for n in noises} & cal_noise
    spec = EndpointerSpec("model", observe=True)
    config = Configuration("silero", spec)
    resources = build_resources([spec])
    vad = {"silero": make_vad("silero")}
    out: list[dict[str, Any]] = []
    for entry in entries:
        for clip in load_speech_vad(entry.name, entry.pcm, make_vad("silero")):
            for condition in [Condition(), *(Condition(n, 10.0) for n in noises[:NOISES])]:
                turn = trial_audio(Trial(clip, 0, condition), seed=0)
                [lane] = replay(
                    turn,
                    [config],
                    vad,
                    lambda: make_stt("pocketsphinx"),
                    ReplaySettings.from_session(),
                    resources,
                )
                onset = LEAD_MS + 1000.0 * clip.onset_sample / 16_000
                out += lane_pauses(lane, turn.turn_end_ms, onset)
    return out


def _auc(pauses: list[dict[str, Any]], score: Any) -> float:
    ends = [s for p in pauses if p["label"] == "end" and (s := score(p)) is not None]
    mids = [s for p in pauses if p["label"] == "mid" and (s := score(p)) is not None]
    a = auc(ends, mids)
    assert a is not None
    return a


def test_held_out_pauses_include_both_classes_and_their_text(
    pauses: list[dict[str, Any]],
) -> None:
    labels = [p["label"] for p in pauses]
    assert labels.count("end") >= 18 and labels.count("mid") >= 15
    assert sum(1 for p in pauses if p["text"]) >= 0.8 * len(pauses)


def test_the_model_score_separates_ends_from_pauses(pauses: list[dict[str, Any]]) -> None:
    model = load_model()
    a = _auc(pauses, lambda p: model.logit_at_start(PauseFeatures(**p["features"])))
    assert a >= MIN_AUC, a


def test_the_text_cue_points_the_way_it_was_fixed_a_priori(pauses: list[dict[str, Any]]) -> None:
    a = _auc(pauses, lambda p: p["features"]["lm_logit"])
    assert a >= MIN_LM_AUC, a


def test_split_cv_on_too_little_speech_says_why_in_the_report(tmp_path: Any) -> None:
    """``--split cv`` on the 3 shortest bundled recordings (quiet + one noise each; no mid-turn
    pause among them): the run still writes its tables, and says why there is no
    cross-validation instead of failing or printing a figure."""
    from earshot.evals.endpointing import EndpointingOptions, run_endpointing

    opts = EndpointingOptions(
        out_dir=tmp_path, quick=True, quiet=True, split="cv", policies=(), fixed_ms=(300.0, 500.0)
    )
    run = run_endpointing(opts)
    assert "mid-turn pauses" in run.cv["error"]
    text = (tmp_path / "endpointing.txt").read_text("utf-8")
    assert "cross-validation: not run" in text and "fixed 300 ms" in text
    with pytest.raises(ValueError, match="observer"):
        EndpointingOptions(split="cv", observe=False).check()
