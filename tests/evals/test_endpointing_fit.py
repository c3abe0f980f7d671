"""The end-of-turn fit and its cross-validation on synthetic pauses (issue 11): pure layer.

Exact expectations from hand-made pauses: the a-priori directions hold whatever the data say,
the offline replay decides exactly as the pure core does frame by frame, the folds never hold
a held-out recording or its noise, and every turn is scored once, out of fold.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from earshot.evals.endpointing_cv import bootstrap, cross_validate, folds, to_doc
from earshot.evals.endpointing_fit import (
    PRIOR_ORIENTATION,
    fit_head,
    fit_model,
    fit_nonnegative_logistic,
)
from earshot.evals.endpointing_pauses import (
    FRAME_MS,
    Pause,
    PauseSet,
    TurnKey,
    replay_fixed,
    replay_model,
    summarize,
)
from earshot.turns.eot_model import EndOfTurnModel, PauseFeatures, PauseLaw, decide


def _pause(
    end: bool,
    lm: float | None,
    trial: str,
    recording: str,
    noise: str | None = None,
    length_ms: float = 400.0,
    energy: float | None = 0.3,
    text_ready_ms: float = 200.0,
) -> Pause:
    return Pause(
        end=end,
        features=PauseFeatures(lm_logit=lm, energy_final_rel=energy, log_segment_ms=7.0),
        first_silence_ms=40.0,
        prosody_ready_ms=50.0,
        text_ready_ms=text_ready_ms if lm is not None else math.inf,
        length_ms=math.inf if end else length_ms,
        lag_ms=0.0,
        trial=trial,
        recording=recording,
        noise=noise,
    )


def _data(recordings: int = 6, seed: int = 0) -> PauseSet:
    """Turns whose ends sound complete (high LM logit) more often than their pauses do."""
    rng = np.random.default_rng(seed)
    ps = PauseSet([], [])
    for r in range(recordings):
        for noise in (None, f"noise/{r % 3}.wav"):
            for k in range(3):
                trial = f"rec{r}-{k} · {noise or 'quiet'}"
                ps.turns.append(TurnKey(trial, f"speech/rec{r}.wav", noise))
                for _ in range(3):
                    ps.pauses.append(
                        _pause(
                            False,
                            float(rng.normal(-14.0, 3.0)),
                            trial,
                            f"speech/rec{r}.wav",
                            noise,
                            length_ms=float(rng.lognormal(math.log(450.0), 0.7)),
                        )
                    )
                ps.pauses.append(
                    _pause(True, float(rng.normal(-7.0, 3.0)), trial, f"speech/rec{r}.wav", noise)
                )
    return ps


def test_nonnegative_fit_recovers_a_positive_weight_and_pins_a_contrary_one_at_zero() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=(400, 2))
    y = (z[:, 0] - z[:, 1] + rng.normal(scale=0.5, size=400) > 0).astype(np.float64)
    w, _ = fit_nonnegative_logistic(z, y, l2=1.0)
    assert w[0] > 0.5  # the cue that points the expected way is learned
    assert w[1] == 0.0  # the one the data would flip is held at zero, not made negative


def test_fit_head_keeps_every_weight_in_its_prior_direction() -> None:
    ps = _data()
    # Make the energy cue point "the wrong way" in this data: ends louder than pauses.
    flipped = [
        replace(p, features=replace(p.features, energy_final_rel=0.9 if p.end else 0.1))
        for p in ps.pauses
    ]
    head = fit_head(flipped)
    weights = dict(zip(head.features, head.weights, strict=True))
    assert head.impute_missing
    assert weights["lm_logit"] > 0  # the LM is "higher = end" by construction
    assert weights["energy_final_rel"] == 0.0  # lower = end a priori: never a negative-sign flip
    for name, w in weights.items():
        assert w * PRIOR_ORIENTATION[name] >= 0
    with pytest.raises(ValueError, match="needs 8 of each"):
        fit_head(flipped[:6])


def _model(threshold: float, power: float, prior: float = 0.0) -> EndOfTurnModel:
    head = fit_head(_data().pauses)
    return EndOfTurnModel(
        (head,),
        PauseLaw(math.log(450.0), 0.7),
        threshold,
        160.0,
        1500.0,
        pause_prior_count=prior,
        survival_power=power,
    )


def _decide_loop(model: EndOfTurnModel, ps: PauseSet) -> list[tuple[int, float | None]]:
    """The same replay written as the policy's frame loop over the pure core's `decide`."""
    out: dict[str, list[float | None]] = {t.trial: [0, None] for t in ps.turns}
    seen: dict[str, list[float]] = {}
    for p in ps.pauses:
        logs = seen.setdefault(p.trial, [])
        law = model.pause_law.adapted(logs, model.pause_prior_count)
        t = p.first_silence_ms
        while True:
            x = PauseFeatures()
            if t >= p.prosody_ready_ms:
                x = replace(p.features, lm_logit=None)
            if t >= p.text_ready_ms:
                x = replace(x, lm_logit=p.features.lm_logit)
            if (
                t >= min(p.length_ms, model.max_silence_ms + FRAME_MS)
                or decide(model, x, t, law=law).end
            ):
                break
            t += FRAME_MS
        if p.end:
            out[p.trial][1] = t + p.lag_ms
        elif t < p.length_ms:
            out[p.trial][0] = int(out[p.trial][0] or 0) + 1
        else:
            logs.append(math.log(p.length_ms))
    return [(int(out[k.trial][0] or 0), out[k.trial][1]) for k in ps.turns]


@pytest.mark.parametrize(("power", "prior"), [(0.0, 0.0), (0.5, 0.0), (1.0, 3.0)])
def test_offline_replay_decides_exactly_like_the_pure_core(power: float, prior: float) -> None:
    ps = _data(recordings=2)
    thresholds = [0.2, 0.5, 0.8]
    got = replay_model(_model(0.5, power, prior), ps, thresholds)
    for th in thresholds:
        expected = _decide_loop(_model(th, power, prior), ps)
        assert [(o.cuts, o.delay_ms) for o in got[th]] == expected


def test_fixed_replay_counts_pauses_longer_than_the_threshold() -> None:
    ps = PauseSet(
        [
            _pause(False, None, "a", "r", length_ms=300.0),
            _pause(False, None, "a", "r", length_ms=520.0),
            _pause(True, None, "a", "r"),
        ],
        [TurnKey("a", "r", None)],
    )
    [o] = replay_fixed(ps, 500.0)
    assert o.cuts == 1 and o.delay_ms == 500.0  # first frame at 40 ms, then 20 ms steps
    [o] = replay_fixed(ps, 250.0)
    assert o.cuts == 2 and o.delay_ms == 260.0


def test_folds_hold_out_the_recording_and_its_noises() -> None:
    ps = _data()
    fs = folds(ps)
    assert [r for r, _, _ in fs] == [f"speech/rec{r}.wav" for r in range(6)]
    for recording, test, train in fs:
        held_noises = {t.noise for t in test.turns if t.noise}
        assert {t.recording for t in test.turns} == {recording}
        assert recording not in {t.recording for t in train.turns}
        assert not held_noises & {t.noise for t in train.turns}
        assert {p.trial for p in train.pauses} <= {t.trial for t in train.turns}


def test_cross_validation_scores_every_turn_once_and_beats_chance_on_separable_data() -> None:
    ps = _data()
    cv = cross_validate(ps)
    assert [o.key for o in cv.model] == ps.turns
    assert len(cv.folds) == 6
    doc = to_doc(cv)
    assert doc["combined_auc"]["all"] > 0.75  # ends were drawn 7 logits above the pauses
    for group in ("quiet", "noise"):
        b = bootstrap(cv, group)
        point, lo, hi = b["model"]["cutoffs_per_turn"]
        assert lo <= point <= hi
        assert b["turns"] == len(ps.turns) // 2
        assert 0.0 <= b["goal_share"] <= 1.0
    with pytest.raises(ValueError, match="two recordings"):
        cross_validate(ps.subset({t.trial for t in ps.turns if t.recording == "speech/rec0.wav"}))


def test_the_threshold_rule_keeps_cutoffs_within_fixed_500_on_the_calibration_turns() -> None:
    ps = _data()
    model, selection = fit_model(ps)
    chosen = selection["chosen"]
    assert chosen["within_fixed_500"]
    for group in ("quiet", "noise"):
        assert chosen[f"{group}_cutoffs_per_turn"] <= selection["targets_fixed_500"][group]
    ours = summarize(next(iter(replay_model(model, ps, [model.threshold]).values())))
    assert ours["cutoffs_per_turn"] == pytest.approx(chosen["all_cutoffs_per_turn"])
    # No setting on the grid that also satisfies the rule is faster.
    faster = [
        g for g in selection["grid"] if g["within_fixed_500"] and g["all_p50"] < chosen["all_p50"]
    ]
    assert not faster


def _record(
    label: str, lm: float, resumed: float | None, speech_end_ms: float
) -> dict[str, object]:
    return {
        "speech_end_ms": speech_end_ms,
        "first_silence_ms": 40.0,
        "label": label,
        "features": {
            "lm_logit": lm,
            "pitch_final_z": None,
            "pitch_slope_st_per_s": None,
            "energy_final_rel": 0.2,
            "log_segment_ms": 7.0,
            "dictation": False,
        },
        "text": "hello there.",
        "prosody_ms": 5.0,
        "text_ms": 30.0,
        "text_ready_ms": 70.0,
        "ended_at_ms": None,
        "resumed_after_ms": resumed,
    }


def test_pauses_from_a_run_charge_each_decode_and_drop_text_that_is_not_english() -> None:
    from earshot.evals.endpointing_pauses import pauses_from_doc

    observer = "observe (whisper+LM) · silero"
    turns = []
    for source, language, noise in (
        ("speech/a.wav", "en", None),
        ("speech/b.wav@1", "de", "noise/n.wav"),
    ):
        turns.append(
            {
                "turn": f"{source}#0",
                "source": source,
                "condition": noise or "quiet",
                "noise_file": noise,
                "language": language,
                "true_end_ms": 2000.0,
                "results": {
                    observer: {
                        "pauses": [
                            _record("mid", -15.0, 300.0, 1000.0),
                            _record("end", -5.0, None, 2010.0),
                        ],
                        "stt_decode_ms": [100.0, 140.0],
                        "stt_charged": False,
                    }
                },
            }
        )
    doc = {"configurations": ["fixed 300 ms · silero", observer], "compute": {}, "turns": turns}
    ps = pauses_from_doc(doc)
    assert [t.recording for t in ps.turns] == ["speech/a.wav", "speech/b.wav"]  # name@k → name
    en_mid, en_end, de_mid, de_end = ps.pauses
    assert en_mid.text_ready_ms == 170.0 and en_end.text_ready_ms == 210.0  # + its own decode
    assert en_end.end and en_end.lag_ms == 10.0 and en_mid.length_ms == 300.0
    assert de_mid.features.lm_logit is None and de_mid.text_ready_ms == math.inf
    assert de_end.features.energy_final_rel == 0.2  # the acoustic cues stay
    assert de_end.noise == "noise/n.wav"
    with pytest.raises(ValueError, match="no observer lane"):
        pauses_from_doc({**doc, "configurations": ["fixed 300 ms · silero"]})


def test_the_cross_validated_table_and_goal_lines_of_a_run() -> None:
    from earshot.evals.endpointing_model import EndpointingOptions, EndpointingRun
    from earshot.evals.endpointing_report import goal_lines, tables_text

    run = EndpointingRun(EndpointingOptions(split="cv"))
    run.cv = to_doc(cross_validate(_data()))
    text = tables_text(run)
    assert "cross-validated (leave one recording" in text and "fixed 500 ms" in text
    lines = [line for line in goal_lines(run) if "cross-validated" in line]
    assert [line.split(",")[1].strip() for line in lines] == ["quiet", "noise"]
    assert all(line.endswith("of bootstrap resamples)") for line in lines)
