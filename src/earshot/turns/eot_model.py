"""The end-of-turn model: P(end) per frame of a pause, and the cost-based decision.

A pure core. At a pause the evidence is a `PauseFeatures` (a text-completeness score from a
small language model, prosody relative to this speaker and to the noise floor, the length of
the stretch before the pause); the model turns it into the probability that the turn is over
*as the pause goes on*:

* ``p0 = σ(b + Σ wᵢ·zᵢ)``: logistic regression on the standardised features: the probability
  that this pause ends the turn, judged at its start. The fitted model has a single head whose
  weights point the way the literature says each cue points (``wᵢ·oᵢ ≥ 0`` for the a-priori
  orientation ``oᵢ``, `earshot.evals.endpointing_fit.PRIOR_ORIENTATION`) and which imputes a
  missing cue at its neutral value (``z = 0``, the calibration mean): no language model, no
  transcript yet, or an unvoiced tail move P(end) neither way. (Older files hold one head per
  set of available cues; they still load.)
* A mid-turn pause that has already lasted ``t`` ms is rarer the longer ``t`` gets; with
  ``S(t)`` the survival function of mid-turn pause lengths (a log-normal fitted on the
  calibration pauses) and turn ends that never resume, Bayes gives the hazard-style update::

      odds(end | x, t) = odds0(x) / S(t)^γ          (S(0) = 1, falling towards 0)

  with ``γ = survival_power``: 1 is that Bayes update; smaller values temper it (a pause law
  pooled over many speakers overstates what the elapsed pause says about this one), and 0
  gives the two-level shape — end early where the cues are sure, else wait for
  ``max_silence_ms`` — which buys the most early ends for a number of cut-offs, since a
  median delay only needs half the ends to be early. The fit chooses γ on calibration data.

* The pause law adapts to the speaker: the mean log pause length is re-estimated from the
  mid-turn pauses this caller has made (`adapted_law`, a conjugate update with the fitted law
  as a prior worth ``pause_prior_count`` pauses), so a caller who pauses long is cut less.
* Context priors add to the log-odds (a number or an e-mail being dictated waits longer).

The decision compares expected costs. Ending now costs ``cost_cut`` if the user was only
pausing (probability ``1 − P``); waiting costs ``cost_wait`` if the user had finished
(probability ``P``). The turn ends as soon as ``P·cost_wait ≥ (1 − P)·cost_cut``, i.e.
``P ≥ threshold`` with ``threshold = cost_cut / (cost_cut + cost_wait)``, never before
``min_silence_ms`` and always by ``max_silence_ms``. The threshold is the user's setting; the
trade-off curve it moves along is in ``docs/endpointing.md``.

Weights, standardisation, the pause-length law and the default threshold are data
(``earshot/data/endpointing/model.json``), refitted by ``earshot.evals.endpointing_fit``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

PACKAGED_MODEL = "data/endpointing/model.json"
"""Path of the fitted model inside the ``earshot`` package."""

FEATURE_NAMES: tuple[str, ...] = (
    "lm_logit",
    "pitch_final_z",
    "pitch_slope_st_per_s",
    "energy_final_rel",
    "log_segment_ms",
)
"""Features a head may use, in `PauseFeatures` order (see its attributes)."""


class ModelFileError(ValueError):
    """The model file cannot be used; the message names the file and the fix."""


@dataclass(frozen=True, slots=True)
class PauseFeatures:
    """The evidence at one pause; None where a cue is not available (yet).

    Attributes:
        lm_logit: logit of the probability the language model puts on ending the user's turn
            (its end-of-turn token) right after the partial transcript.
        pitch_final_z: median f0 of the last voiced 200 ms, in semitones relative to this
            speaker's median f0, divided by the speaker's f0 spread (semitones, robust std).
        pitch_slope_st_per_s: least-squares f0 slope over the last voiced 300 ms (st/s).
        energy_final_rel: level of the last 100 ms before the pause relative to the noise
            floor, as a share of the speech level above that floor (0 = at the floor,
            1 = as loud as the speech; dB ratio).
        log_segment_ms: natural log of the voiced stretch that the pause follows (ms).
        dictation: the transcript ends inside a number, a spelled sequence or an e-mail
            address (a context prior: wait longer).
    """

    lm_logit: float | None = None
    pitch_final_z: float | None = None
    pitch_slope_st_per_s: float | None = None
    energy_final_rel: float | None = None
    log_segment_ms: float | None = None
    dictation: bool = False

    def value(self, name: str) -> float | None:
        """The feature called ``name`` (one of `FEATURE_NAMES`)."""
        v = getattr(self, name)
        return None if v is None else float(v)

    def available(self) -> frozenset[str]:
        """Names of the features that are present."""
        return frozenset(n for n in FEATURE_NAMES if getattr(self, n) is not None)


@dataclass(frozen=True, slots=True)
class Head:
    """One logistic regression over a subset of the features.

    Attributes:
        features: names used, a subset of `FEATURE_NAMES`.
        mean, scale: standardisation per feature (``z = (x − mean) / scale``).
        weights: one per feature.
        bias: intercept (log-odds of an end at mean features).
        clip_z: standardised values are clipped to ``±clip_z`` (an unseen extreme input
            cannot drive the probability to 0 or 1 on its own).
        impute_missing: a missing feature counts as its neutral value ``z = 0`` (the head
            fits every set of available features); False: the head needs all of them.
    """

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    clip_z: float = 3.0
    impute_missing: bool = False

    def logit(self, x: PauseFeatures) -> float:
        """Log-odds that the pause ends the turn, at its start.

        Raises:
            ValueError: a feature the head needs is missing from ``x`` (and it does not
                impute missing features).
        """
        total = self.bias
        for name, mu, sd, w in zip(self.features, self.mean, self.scale, self.weights, strict=True):
            v = x.value(name)
            if v is None:
                if self.impute_missing:
                    continue
                raise ValueError(f"head on {self.features} needs {name!r}, which is missing")
            z = min(max((v - mu) / sd, -self.clip_z), self.clip_z)
            total += w * z
        return total


@dataclass(frozen=True, slots=True)
class PauseLaw:
    """Log-normal law of mid-turn pause lengths (the pauses that did not end a turn).

    Attributes:
        mu_log_ms, sigma_log_ms: mean and std of ``ln(pause_ms)``.
    """

    mu_log_ms: float
    sigma_log_ms: float

    def adapted(self, logs_ms: Sequence[float], prior_count: float) -> PauseLaw:
        """This law with its mean moved towards a speaker's own log pause lengths.

        ``mu = (prior_count · mu₀ + Σ ln dᵢ) / (prior_count + n)`` (the posterior mean of a
        normal mean with known variance; sigma is kept).
        """
        if not logs_ms or prior_count <= 0:
            return self
        mu = (prior_count * self.mu_log_ms + sum(logs_ms)) / (prior_count + len(logs_ms))
        return PauseLaw(mu, self.sigma_log_ms)

    def survival(self, t_ms: float) -> float:
        """``S(t)``: share of mid-turn pauses that last longer than ``t_ms``."""
        if t_ms <= 0:
            return 1.0
        z = (math.log(t_ms) - self.mu_log_ms) / self.sigma_log_ms
        return 0.5 * math.erfc(z / math.sqrt(2.0))


@dataclass(frozen=True, slots=True)
class EndOfTurnModel:
    """Heads, pause law, priors and decision defaults (the contents of ``model.json``).

    Attributes:
        heads: fitted heads; `head_for` picks the one using the most available features.
        pause_law: the mid-turn pause-length law.
        threshold: default decision threshold on P(end) (see the module docstring).
        min_silence_ms: no end before this much silence (the VAD and STT settle).
        max_silence_ms: always end by this much silence.
        dictation_logit: added to the log-odds while a number or address is being dictated
            (a prior, not fitted: the calibration data holds too little dictation).
        pause_prior_count: weight of the fitted pause law against a speaker's own pauses,
            in pauses (0: no adaptation).
        survival_power: ``γ`` of the pause-length update (see the module docstring; 1: Bayes,
            0: the cues at the start of the pause alone, until ``max_silence_ms``).
        provenance: how it was fitted (data, split, counts), for reports.
    """

    heads: tuple[Head, ...]
    pause_law: PauseLaw
    threshold: float
    min_silence_ms: float
    max_silence_ms: float
    dictation_logit: float = -1.5
    pause_prior_count: float = 0.0
    survival_power: float = 1.0
    provenance: dict[str, Any] = field(default_factory=dict)

    def head_for(self, available: frozenset[str]) -> Head:
        """The imputing head if there is one, else the head using the most of the ``available``
        features (all its features present).

        Raises:
            ValueError: no head fits (the model file needs a head with no features).
        """
        fitting = [h for h in self.heads if h.impute_missing or set(h.features) <= available]
        if not fitting:
            raise ValueError("no head of the end-of-turn model fits; refit with a prior head")
        return max(fitting, key=lambda h: (h.impute_missing, len(h.features)))

    def logit_at_start(self, x: PauseFeatures) -> float:
        """Log-odds of an end at the start of the pause, context priors included."""
        logit = self.head_for(x.available()).logit(x)
        if x.dictation:
            logit += self.dictation_logit
        return logit

    def p_end(self, x: PauseFeatures, silence_ms: float, law: PauseLaw | None = None) -> float:
        """P(the turn is over | evidence ``x``, the pause has lasted ``silence_ms``).

        ``law`` replaces the fitted pause law (a speaker-adapted one, `PauseLaw.adapted`).
        """
        s = (law or self.pause_law).survival(silence_ms)
        return _sigmoid(self.logit_at_start(x) - self.survival_power * math.log(max(s, 1e-12)))


def _sigmoid(v: float) -> float:
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def threshold_from_costs(cost_cut: float, cost_wait: float) -> float:
    """The P(end) threshold at which waiting and cutting in have equal expected cost.

    Raises:
        ValueError: a cost is not positive.
    """
    if cost_cut <= 0 or cost_wait <= 0:
        raise ValueError(f"costs must be > 0, got cut {cost_cut}, wait {cost_wait}")
    return cost_cut / (cost_cut + cost_wait)


@dataclass(frozen=True, slots=True)
class Decision:
    """One frame's answer: P(end) and whether the turn ends now."""

    p_end: float
    end: bool
    reason: str


def decide(
    model: EndOfTurnModel,
    x: PauseFeatures,
    silence_ms: float,
    threshold: float | None = None,
    law: PauseLaw | None = None,
) -> Decision:
    """The cost-based decision for one frame of a pause (pure: fed features and time).

    Args:
        model: the fitted model.
        x: the evidence available at this frame.
        silence_ms: the pause so far (ms).
        threshold: P(end) at which the turn ends; None: the model's default.
        law: a speaker-adapted pause law; None: the fitted one.

    Raises:
        ValueError: ``threshold`` outside (0, 1) or a negative ``silence_ms``.
    """
    th = model.threshold if threshold is None else threshold
    if not 0.0 < th < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {th}")
    if silence_ms < 0:
        raise ValueError(f"silence_ms must be >= 0, got {silence_ms}")
    p = model.p_end(x, silence_ms, law)
    if silence_ms >= model.max_silence_ms:
        return Decision(p, True, f"P(end) {p:.2f}; {model.max_silence_ms:g} ms maximum reached")
    if silence_ms < model.min_silence_ms:
        return Decision(p, False, f"P(end) {p:.2f}; before the {model.min_silence_ms:g} ms minimum")
    cues = ", ".join(sorted(x.available())) or "pause length only"
    return Decision(p, p >= th, f"P(end) {p:.2f} vs threshold {th:.2f} ({cues})")


# --------------------------------------------------------------------------- the file


def _head_from(doc: dict[str, Any]) -> Head:
    feats = tuple(str(f) for f in doc["features"])
    unknown = set(feats) - set(FEATURE_NAMES)
    if unknown:
        raise ValueError(f"unknown features {sorted(unknown)}; known: {', '.join(FEATURE_NAMES)}")
    head = Head(
        feats,
        tuple(float(v) for v in doc["mean"]),
        tuple(float(v) for v in doc["scale"]),
        tuple(float(v) for v in doc["weights"]),
        float(doc["bias"]),
        float(doc.get("clip_z", 3.0)),
        bool(doc.get("impute_missing", False)),
    )
    if not len(head.mean) == len(head.scale) == len(head.weights) == len(feats):
        raise ValueError(f"head on {feats}: mean, scale and weights need one value per feature")
    if any(s <= 0 for s in head.scale):
        raise ValueError(f"head on {feats}: every scale must be > 0")
    return head


def model_from_dict(doc: dict[str, Any]) -> EndOfTurnModel:
    """Build the model from its JSON document (see `model_to_dict`).

    Raises:
        KeyError, ValueError, TypeError: a missing or malformed entry.
    """
    law = doc["pause_law"]
    model = EndOfTurnModel(
        heads=tuple(_head_from(h) for h in doc["heads"]),
        pause_law=PauseLaw(float(law["mu_log_ms"]), float(law["sigma_log_ms"])),
        threshold=float(doc["threshold"]),
        min_silence_ms=float(doc["min_silence_ms"]),
        max_silence_ms=float(doc["max_silence_ms"]),
        dictation_logit=float(doc.get("dictation_logit", -1.5)),
        pause_prior_count=float(doc.get("pause_prior_count", 0.0)),
        survival_power=float(doc.get("survival_power", 1.0)),
        provenance=dict(doc.get("provenance", {})),
    )
    if not 0 <= model.survival_power <= 1:
        raise ValueError(f"survival_power must be in [0, 1], got {model.survival_power}")
    if model.pause_law.sigma_log_ms <= 0:
        raise ValueError("pause_law.sigma_log_ms must be > 0")
    if not 0 < model.threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {model.threshold}")
    if not 0 <= model.min_silence_ms < model.max_silence_ms:
        raise ValueError("need 0 <= min_silence_ms < max_silence_ms")
    model.head_for(frozenset())  # a prior-only head must exist
    return model


def model_to_dict(model: EndOfTurnModel) -> dict[str, Any]:
    """The JSON document of ``model`` (what ``model.json`` holds)."""
    heads = [{f.name: getattr(h, f.name) for f in fields(Head)} for h in model.heads]
    return {
        "heads": [{k: list(v) if isinstance(v, tuple) else v for k, v in h.items()} for h in heads],
        "pause_law": {
            "mu_log_ms": model.pause_law.mu_log_ms,
            "sigma_log_ms": model.pause_law.sigma_log_ms,
        },
        "threshold": model.threshold,
        "min_silence_ms": model.min_silence_ms,
        "max_silence_ms": model.max_silence_ms,
        "dictation_logit": model.dictation_logit,
        "pause_prior_count": model.pause_prior_count,
        "survival_power": model.survival_power,
        "provenance": model.provenance,
    }


def load_model(path: str | os.PathLike[str] | None = None) -> EndOfTurnModel:
    """The end-of-turn model from ``path``, or the packaged one.

    Raises:
        ModelFileError: the file is missing or malformed (a ValueError naming the file).
    """
    where = os.fspath(path) if path is not None else f"earshot/{PACKAGED_MODEL}"
    try:
        if path is None:
            text = resources.files("earshot").joinpath(PACKAGED_MODEL).read_text("utf-8")
        else:
            text = Path(path).read_text("utf-8")
        return model_from_dict(json.loads(text))
    except FileNotFoundError:
        raise ModelFileError(f"{where}: no such end-of-turn model file") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelFileError(
            f"{where}: not a valid end-of-turn model ({exc}); refit it with "
            "python -m earshot.evals.endpointing_fit"
        ) from exc
