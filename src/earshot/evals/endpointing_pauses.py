"""Labelled pauses of `earshot eval endpointing`'s observer lane, and the offline replay of the
end-of-turn policy on them (what `earshot.evals.endpointing_fit` and
`earshot.evals.endpointing_cv` fit and score with).

A run's observer lane records every cue of every natural pause with its compute time
(`earshot.evals.endpointing_lanes.pause_records`); `pauses_from_doc` turns that into `Pause`
rows grouped by turn (`PauseSet`). `replay_model` then replays the policy frame by frame as
`earshot.turns.model_endpointer.ModelEndpointer` would (cues usable once their compute has
passed, the speaker's pause law adapting), for many thresholds at once; `replay_fixed` does the
same for a fixed silence threshold. The replay is checked against the pure core's `decide`,
frame by frame, in ``tests/evals/test_endpointing_fit.py``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from earshot.turns.eot_model import EndOfTurnModel, PauseFeatures

TEXT_LANGUAGE = "en"
"""Only recordings in this language keep their text cue (the STT is Whisper tiny.en)."""

FRAME_MS = 20.0
"""The replay's frame (ms), the session's."""


@dataclass(frozen=True, slots=True)
class Pause:
    """One labelled pause of a calibration run, with what the offline replay needs."""

    end: bool
    features: PauseFeatures
    first_silence_ms: float
    prosody_ready_ms: float
    text_ready_ms: float
    length_ms: float
    """Mid-turn pauses: how long the pause lasted; ends: infinity."""
    lag_ms: float
    """Speech end seen by the VAD − the true end (ms): added to the delay of an end."""
    trial: str
    """The turn this pause belongs to, in its condition (``turn · condition``)."""
    recording: str = ""
    """Manifest path of the speech recording."""
    noise: str | None = None
    """Manifest path of the noise mixed in (None: quiet)."""


@dataclass(frozen=True, slots=True)
class TurnKey:
    """One turn in one condition: what cut-offs are counted per."""

    trial: str
    recording: str
    noise: str | None


@dataclass(slots=True)
class PauseSet:
    """The labelled pauses of some runs and the turns they come from."""

    pauses: list[Pause]
    turns: list[TurnKey]

    def subset(self, keep: set[str]) -> PauseSet:
        """Only the turns (and their pauses) whose ``trial`` is in ``keep``."""
        return PauseSet(
            [p for p in self.pauses if p.trial in keep], [t for t in self.turns if t.trial in keep]
        )


def pauses_from_doc(doc: dict[str, Any], where: str = "run") -> PauseSet:
    """The observer lane's labelled pauses of one ``endpointing.json`` document.

    Text becomes usable once Whisper's decode (measured per pause in the observer lane, which
    offers the text at once) and the LM's scoring have passed on the audio clock.

    Raises:
        ValueError: the run has no observer lane.
    """
    observer = next((c for c in doc["configurations"] if c.startswith("observe")), None)
    if observer is None:
        raise ValueError(f"{where}: no observer lane; rerun the eval without --no-observe")
    decode_p50 = float((doc.get("compute", {}).get("Whisper decode", {}) or {}).get("p50_ms") or 0)
    out = PauseSet([], [])
    for t in doc["turns"]:
        key = f"{t['turn']} · {t['condition']}"
        recording = str(t["source"]).split("@")[0]  # a recording's later turns are name@k
        out.turns.append(TurnKey(key, recording, t.get("noise_file")))
        result = t["results"][observer]
        records = result.get("pauses", [])
        decodes = result.get("stt_decode_ms", [])
        per_pause = len(decodes) == len(records)
        text_ok = t.get("language", TEXT_LANGUAGE) == TEXT_LANGUAGE
        for i, r in enumerate(records):
            end = r["label"] == "end"
            if not end and r["resumed_after_ms"] is None and r["ended_at_ms"] is None:
                continue  # the replay stopped inside it
            length = math.inf if end else float(r["resumed_after_ms"] or 3000.0)
            first = float(r.get("first_silence_ms", FRAME_MS))
            features = PauseFeatures(**r["features"])
            text_ready = r["text_ready_ms"]
            if not text_ok:
                features = replace(features, lm_logit=None, dictation=False)
                text_ready = None
            if text_ready is not None and not result.get("stt_charged", True):
                text_ready = float(text_ready) + (float(decodes[i]) if per_pause else decode_p50)
            out.pauses.append(
                Pause(
                    end,
                    features,
                    first,
                    first + float(r["prosody_ms"]),
                    math.inf if text_ready is None else float(text_ready),
                    length,
                    float(r["speech_end_ms"]) - float(t["true_end_ms"]),
                    key,
                    recording,
                    t.get("noise_file"),
                )
            )
    return out


def load_pauses(paths: Sequence[Path]) -> PauseSet:
    """The labelled pauses of the observer lanes of the runs at ``paths``.

    Raises:
        ValueError: a run has no observer lane.
        OSError: a file cannot be read.
    """
    out = PauseSet([], [])
    for path in paths:
        got = pauses_from_doc(json.loads(path.read_text("utf-8")), str(path))
        out.pauses += got.pauses
        out.turns += got.turns
    return out


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    """What a policy did on one turn: its false cut-offs and the delay of its end."""

    key: TurnKey
    cuts: int
    delay_ms: float | None
    """End of turn − true end (ms); None: the turn's end pause was not observed."""


def _erfc(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """erfc by Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7), vectorised."""
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    y = poly * np.exp(-a * a)
    out: npt.NDArray[np.float64] = np.where(x >= 0, y, 2.0 - y)
    return out


def _log_survival(
    mu_log_ms: npt.NDArray[np.float64], sigma_log_ms: float, t_ms: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """``ln S(t)`` of log-normal laws: shape ``(len(mu_log_ms), len(t_ms))``."""
    z = (np.log(np.maximum(t_ms, 1e-9))[None, :] - mu_log_ms[:, None]) / sigma_log_ms
    s = 0.5 * _erfc(z / math.sqrt(2.0))
    out: npt.NDArray[np.float64] = np.log(np.maximum(np.where(t_ms[None, :] <= 0, 1.0, s), 1e-12))
    return out


def _start_logits(model: EndOfTurnModel, p: Pause, t_ms: npt.NDArray[np.float64]) -> Any:
    """Log-odds at the start of the pause from the cues usable at each frame ``t_ms``."""
    f = p.features
    acoustic = replace(f, lm_logit=None, dictation=False)
    text_only = PauseFeatures(lm_logit=f.lm_logit, dictation=f.dictation)
    values = [model.logit_at_start(x) for x in (PauseFeatures(), acoustic, text_only, f)]
    idx = (t_ms >= p.prosody_ready_ms).astype(int) + 2 * (t_ms >= p.text_ready_ms).astype(int)
    return np.asarray(values, dtype=np.float64)[idx]


def replay_model(
    model: EndOfTurnModel, ps: PauseSet, thresholds: Sequence[float]
) -> dict[float, list[TurnOutcome]]:
    """Offline replay of the policy at each threshold: one outcome per turn of ``ps``.

    As `earshot.turns.model_endpointer.ModelEndpointer` on a live call: frame by frame from the
    pause's first silent frame, each cue usable once its compute has passed, never before
    ``min_silence_ms``, always by ``max_silence_ms``; a mid-turn pause the policy did not cut
    teaches the speaker's pause law (`PauseLaw.adapted`, ``pause_prior_count``). Every
    threshold is replayed at once (numpy over thresholds × frames).
    """
    n = len(thresholds)
    cut_logits = np.array([math.log(th / (1 - th)) for th in thresholds])
    trials = [t.trial for t in ps.turns]
    cuts = {k: np.zeros(n, dtype=np.int64) for k in trials}
    delays: dict[str, npt.NDArray[np.float64]] = {}
    sums = {k: np.zeros(n) for k in trials}
    counts = {k: np.zeros(n) for k in trials}
    law, k0, g = model.pause_law, model.pause_prior_count, model.survival_power
    for p in ps.pauses:
        horizon = min(p.length_ms, model.max_silence_ms + FRAME_MS)
        count = max(1, math.ceil((horizon - p.first_silence_ms) / FRAME_MS))
        t = p.first_silence_ms + FRAME_MS * np.arange(count, dtype=np.float64)
        start = _start_logits(model, p, t)
        if g > 0:
            if k0 > 0:
                mu = (k0 * law.mu_log_ms + sums[p.trial]) / (k0 + counts[p.trial])
            else:
                mu = np.full(n, law.mu_log_ms)
            track = start[None, :] - g * _log_survival(mu, law.sigma_log_ms, t)
        else:
            track = np.broadcast_to(start[None, :], (n, count))
        forced = t >= model.max_silence_ms
        allowed = t >= model.min_silence_ms
        ends = forced[None, :] | (allowed[None, :] & (track >= cut_logits[:, None]))
        at = np.where(
            ends.any(axis=1), t[ends.argmax(axis=1)], p.first_silence_ms + FRAME_MS * count
        )
        if p.end:
            if p.trial not in delays:
                delays[p.trial] = at + p.lag_ms
        else:
            cut = at < p.length_ms
            cuts[p.trial] += cut
            if math.isfinite(p.length_ms):
                sums[p.trial] += np.where(cut, 0.0, math.log(p.length_ms))
                counts[p.trial] += np.where(cut, 0.0, 1.0)
    return {
        th: [
            TurnOutcome(
                k,
                int(cuts[k.trial][j]),
                float(delays[k.trial][j]) if k.trial in delays else None,
            )
            for k in ps.turns
        ]
        for j, th in enumerate(thresholds)
    }


def replay_fixed(ps: PauseSet, silence_ms: float) -> list[TurnOutcome]:
    """The same offline replay for a fixed silence threshold (ms)."""
    cuts = dict.fromkeys((t.trial for t in ps.turns), 0)
    delays: dict[str, float] = {}
    for p in ps.pauses:
        if p.end:
            at = p.first_silence_ms + FRAME_MS * max(
                0, math.ceil((silence_ms - p.first_silence_ms) / FRAME_MS)
            )
            delays.setdefault(p.trial, at + p.lag_ms)
        elif p.length_ms > silence_ms:
            cuts[p.trial] += 1
    return [TurnOutcome(k, cuts[k.trial], delays.get(k.trial)) for k in ps.turns]


def summarize(outcomes: Sequence[TurnOutcome]) -> dict[str, float | None]:
    """``{"turns", "cutoffs_per_turn", "p50"}`` of some turn outcomes."""
    delays = [o.delay_ms for o in outcomes if o.delay_ms is not None]
    return {
        "turns": float(len(outcomes)),
        "cutoffs_per_turn": (sum(o.cuts for o in outcomes) / len(outcomes)) if outcomes else None,
        "p50": float(np.median(delays)) if delays else None,
    }


def by_group(outcomes: Sequence[TurnOutcome]) -> dict[str, list[TurnOutcome]]:
    """Outcomes split into ``quiet`` and ``noise`` (and ``all``)."""
    return {
        "all": list(outcomes),
        "quiet": [o for o in outcomes if o.key.noise is None],
        "noise": [o for o in outcomes if o.key.noise is not None],
    }
