"""The end-of-turn model's pure core and the model policy on synthetic timelines (issue 11).

Pure layer: exact expectations from hand-made models, features and clocks. The only stand-ins
are a scripted text scorer and a scripted compute clock, where an exact timeline needs exact
inputs; the real language model is tested in test_eot_lm.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from earshot.turns.detector import EndOfTurn, TurnDetector
from earshot.turns.endpointer import PauseContext
from earshot.turns.eot_features import ProsodyTracker, is_dictation, normalize_transcript
from earshot.turns.eot_model import (
    EndOfTurnModel,
    Head,
    ModelFileError,
    PauseFeatures,
    PauseLaw,
    decide,
    load_model,
    model_from_dict,
    model_to_dict,
    threshold_from_costs,
)
from earshot.turns.model_endpointer import ModelEndpointer


def _model(threshold: float = 0.5, min_ms: float = 100.0, max_ms: float = 1500.0) -> EndOfTurnModel:
    prior = Head((), (), (), (), -1.0)
    lm = Head(("lm_logit",), (-12.0,), (4.0,), (1.5,), -1.0)
    return EndOfTurnModel((prior, lm), PauseLaw(math.log(300.0), 0.6), threshold, min_ms, max_ms)


def test_p_end_rises_with_silence_and_with_a_complete_sounding_text() -> None:
    m = _model()
    complete, incomplete = PauseFeatures(lm_logit=-6.0), PauseFeatures(lm_logit=-22.0)
    times = [0.0, 100.0, 200.0, 400.0, 800.0]
    for x in (PauseFeatures(), complete, incomplete):
        ps = [m.p_end(x, t) for t in times]
        assert ps == sorted(ps) and ps[-1] > ps[0]
    for t in times:
        assert m.p_end(complete, t) > m.p_end(PauseFeatures(), t) > m.p_end(incomplete, t)
    # At the start of the pause (S = 1) P(end) is the head's own probability.
    assert m.p_end(PauseFeatures(), 0.0) == pytest.approx(1 / (1 + math.e))


def test_the_decision_respects_the_bounds_and_the_threshold() -> None:
    m = _model(threshold=0.5, min_ms=100.0, max_ms=600.0)
    sure = PauseFeatures(lm_logit=20.0)  # clipped at 3 sd: still very likely an end
    assert not decide(m, sure, 80.0).end  # before the minimum
    assert decide(m, sure, 100.0).end
    hopeless = PauseFeatures(lm_logit=-60.0)
    assert not decide(m, hopeless, 580.0).end
    assert decide(m, hopeless, 600.0).end  # the maximum always ends
    with pytest.raises(ValueError, match="threshold"):
        decide(m, sure, 200.0, threshold=1.0)


def _first_end_ms(m: EndOfTurnModel, x: PauseFeatures, threshold: float) -> float:
    t = 0.0
    while not decide(m, x, t, threshold).end:
        t += 20.0
    return t


def test_a_higher_threshold_waits_longer_and_dictation_waits_longer() -> None:
    m = _model()
    x = PauseFeatures(lm_logit=-12.0)
    ends = [_first_end_ms(m, x, th) for th in (0.3, 0.5, 0.7, 0.9)]
    assert ends == sorted(ends) and ends[0] < ends[-1]
    dictating = PauseFeatures(lm_logit=-12.0, dictation=True)
    assert _first_end_ms(m, dictating, 0.5) > _first_end_ms(m, x, 0.5)


def test_threshold_from_costs() -> None:
    assert threshold_from_costs(1.0, 1.0) == 0.5
    assert threshold_from_costs(3.0, 1.0) == 0.75  # cutting in costs more: wait for surer ends
    with pytest.raises(ValueError):
        threshold_from_costs(0.0, 1.0)


def test_model_file_round_trip_and_errors(tmp_path: Path) -> None:
    m = _model()
    again = model_from_dict(json.loads(json.dumps(model_to_dict(m))))
    assert again.heads == m.heads and again.pause_law == m.pause_law
    assert again.threshold == m.threshold
    bad = model_to_dict(m)
    bad["heads"] = [h for h in bad["heads"] if h["features"]]  # no prior head
    path = tmp_path / "model.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ModelFileError, match=r"model\.json.*prior head"):
        load_model(path)
    with pytest.raises(ModelFileError, match="no such"):
        load_model(tmp_path / "missing.json")


def test_packaged_model_is_one_oriented_head_that_imputes_missing_cues() -> None:
    from earshot.evals.endpointing_fit import PRIOR_ORIENTATION

    m = load_model()
    [head] = m.heads
    assert head.impute_missing and m.head_for(frozenset()) is head
    for name, w in zip(head.features, head.weights, strict=True):
        assert w * PRIOR_ORIENTATION[name] >= 0, name  # never against the a-priori direction
    assert 0 < m.threshold < 1 and m.min_silence_ms < m.max_silence_ms
    assert 0 <= m.survival_power <= 1
    assert m.logit_at_start(PauseFeatures()) == head.bias  # every cue missing: the prior


def _imputing(power: float, threshold: float = 0.5) -> EndOfTurnModel:
    head = Head(
        ("lm_logit", "energy_final_rel"),
        (-12.0, 0.3),
        (4.0, 0.2),
        (1.0, -0.5),
        -1.0,
        impute_missing=True,
    )
    return EndOfTurnModel(
        (head,), PauseLaw(math.log(300.0), 0.6), threshold, 160.0, 1500.0, survival_power=power
    )


def test_an_imputing_head_counts_a_missing_cue_as_neutral() -> None:
    m = _imputing(1.0)
    at_mean = PauseFeatures(lm_logit=-12.0, energy_final_rel=0.3)
    assert m.logit_at_start(PauseFeatures()) == pytest.approx(m.logit_at_start(at_mean))
    # Text only: the missing energy is neutral; a complete-sounding text raises the log-odds.
    assert m.logit_at_start(PauseFeatures(lm_logit=-4.0)) == pytest.approx(-1.0 + 2.0)
    # A lower final energy (falling intensity) raises it: the weight is negative.
    assert m.logit_at_start(PauseFeatures(energy_final_rel=0.1)) == pytest.approx(-1.0 + 0.5)


def test_survival_power_zero_gives_the_two_level_shape() -> None:
    """γ = 0: P(end) stays what the cues say, so a sure pause ends at the minimum silence and
    an unsure one waits for the maximum; γ = 1 ends the unsure one in between."""
    sure, unsure = PauseFeatures(lm_logit=0.0), PauseFeatures(lm_logit=-16.0)
    flat = _imputing(0.0)
    assert flat.p_end(unsure, 100.0) == flat.p_end(unsure, 1400.0)
    assert _first_end_ms(flat, sure, 0.5) == 160.0
    assert _first_end_ms(flat, unsure, 0.5) == 1500.0
    bayes = _imputing(1.0)
    assert 160.0 < _first_end_ms(bayes, unsure, 0.5) < 1500.0
    half = _imputing(0.5)
    assert _first_end_ms(bayes, unsure, 0.5) < _first_end_ms(half, unsure, 0.5) < 1500.0
    bad = model_to_dict(flat)
    bad["survival_power"] = 1.5
    with pytest.raises(ValueError, match="survival_power"):
        model_from_dict(bad)


def test_head_for_picks_the_richest_head_that_fits() -> None:
    m = _model()
    assert m.head_for(frozenset({"lm_logit", "pitch_final_z"})).features == ("lm_logit",)
    assert m.head_for(frozenset({"pitch_final_z"})).features == ()


def test_dictation_and_normalisation() -> None:
    assert is_dictation("my number is five five five")
    assert is_dictation("it's john dot smith at")
    assert is_dictation("the code is 4 7")
    assert not is_dictation("I have one")
    assert not is_dictation("thank you very much")
    assert normalize_transcript("Hello, World!  It's me.") == "hello world it's me"


class _ScriptedScorer:
    """Returns a fixed log-odds per text; stands in for the LM where timing must be exact."""

    def __init__(self, logits: dict[str, float]) -> None:
        self.logits = logits
        self.calls: list[str] = []

    def end_logit(self, text: str, agent_text: str = "") -> float:
        self.calls.append(text)
        return self.logits[text]


class _StepClock:
    """Each reading advances by ``step_ms``: every computation appears to take that long."""

    def __init__(self, step_ms: float) -> None:
        self.t = 0.0
        self.step_ms = step_ms

    def __call__(self) -> float:
        self.t += self.step_ms
        return self.t


def test_text_cue_counts_only_after_its_compute_has_passed() -> None:
    """A complete-sounding text makes the policy end, but not before the LM's 100 ms passed."""
    m = _model(threshold=0.6, min_ms=40.0)
    scorer = _ScriptedScorer({"thank you": -4.0})
    policy = ModelEndpointer(m, scorer=scorer, prosody=False, now_ms=_StepClock(50.0))  # type: ignore[arg-type]
    ended_at = None
    for t in range(20, 1600, 20):
        if policy.decide(PauseContext(float(t), 1000.0, "thank you")):
            ended_at = t
            break
    # Scored at 20 ms; the clock read twice around the call: 50 ms of compute → usable at 70.
    assert scorer.calls == ["thank you"]
    assert ended_at == 80
    text_free = ModelEndpointer(m, prosody=False)
    t_free = next(t for t in range(20, 1600, 20) if text_free.decide(PauseContext(t, 1000.0, "")))
    assert t_free > ended_at
    obs = policy.observations[-1]
    assert obs.text_ready_ms == 70.0 and obs.ended_at_ms == 80.0


def test_resumed_pause_is_recorded_as_mid_turn_and_text_is_frozen_after_settling() -> None:
    m = _model(threshold=0.99, min_ms=40.0)
    scorer = _ScriptedScorer({"i want": -22.0, "i want the": -25.0})
    policy = ModelEndpointer(m, scorer=scorer, prosody=False, text_settle_ms=100.0)  # type: ignore[arg-type]
    for t in (20.0, 40.0, 60.0):
        assert not policy.decide(PauseContext(t, 800.0, "i want"))
    policy.decide(PauseContext(200.0, 800.0, "i want the"))  # after settling: ignored
    assert scorer.calls == ["i want"]
    policy.on_resume(220.0)
    assert policy.observations[-1].resumed_after_ms == 220.0
    assert policy.observations[-1].ended_at_ms is None


def test_policy_drives_the_runtime_turn_detector() -> None:
    """Through `TurnDetector`: a 200 ms mid-turn pause survives, the final silence ends."""
    policy = ModelEndpointer(_model(threshold=0.5, min_ms=100.0), prosody=False)
    detector = TurnDetector(policy)
    events = []
    timeline = [True] * 25 + [False] * 10 + [True] * 25 + [False] * 100
    for i, speech in enumerate(timeline):
        events += detector.push(i * 20.0, (i + 1) * 20.0, speech)
    ends = [e for e in events if isinstance(e, EndOfTurn)]
    assert len(ends) == 1 and ends[0].speech_end_ms == 1200.0
    assert ends[0].decided_at_ms - ends[0].speech_end_ms <= 1500.0
    assert [o.resumed_after_ms for o in policy.observations] == [200.0, None]


def test_prosody_is_relative_to_the_speaker_and_the_floor() -> None:
    """A gliding-down tone ends low in the speaker's range, with a falling slope; a tail that
    fades to the floor has a low final energy ratio."""
    sr = 16_000
    tracker = ProsodyTracker()
    rng = np.random.default_rng(0)
    floor = (rng.standard_normal(320) * 30).astype(np.int16)
    for _ in range(20):
        tracker.observe_pause_frame(floor)
    t = np.arange(sr) / sr

    def tone(f_start: float, f_end: float, fade: bool) -> np.ndarray:
        f = np.linspace(f_start, f_end, len(t))
        phase = 2 * np.pi * np.cumsum(f) / sr
        amp = np.linspace(1.0, 0.02, len(t)) if fade else np.ones(len(t))
        return (8000 * amp * np.sin(phase) + rng.standard_normal(len(t)) * 30).astype(np.int16)

    level = tracker.cues(tone(180.0, 180.0, fade=False))
    falling = tracker.cues(tone(200.0, 120.0, fade=True))
    assert falling.pitch_final_z is not None and falling.pitch_final_z < -1.0
    assert falling.pitch_slope_st_per_s is not None and falling.pitch_slope_st_per_s < -5.0
    assert level.energy_final_rel is not None and falling.energy_final_rel is not None
    assert level.energy_final_rel > 0.8 > falling.energy_final_rel


def test_factory_builds_the_model_policy_and_rejects_its_options_for_fixed() -> None:
    from earshot.turns.factory import make_endpointer

    policy = make_endpointer("model", threshold=0.6, language_model=False)
    assert isinstance(policy, ModelEndpointer) and policy.threshold == 0.6
    assert policy.scorer is None
    with pytest.raises(ValueError, match="threshold"):
        make_endpointer("fixed", threshold=0.6)
