"""``--endpointer model``: the learned end-of-turn model behind the `Endpointer` interface.

Per pause the policy gathers cues (`earshot.turns.eot_features`) and, on every frame, asks the
pure core (`earshot.turns.eot_model.decide`) with the features *available at that frame*:

* prosody is computed on the first frame of the pause, from the detector's tail audio;
* the text score is computed when the streaming STT's transcript first arrives in the pause
  (however late: a slow recogniser delivers late) and again when it changes, until
  ``text_settle_ms`` into the pause (later changes while the VAD hears silence are noise
  decoded as speech, and are ignored);
* each cue is usable only once the time spent computing it has passed on the audio clock:
  a cue that took 30 ms, computed at 20 ms of silence, counts from 50 ms on. On a live call
  the same holds because the computation really blocked; on a replay it keeps the reported
  delay honest ("including the policy's own compute").

Without a language model (or before the transcript arrives) the text cue counts as neutral;
without voicing the pitch cues do too (the model's head imputes a missing cue at ``z = 0``).
The pause-length law adapts to this caller's own mid-turn pauses
(`earshot.turns.eot_model.PauseLaw.adapted`); only pauses after which the caller resumed are
seen, so a pause the policy cut never teaches it (the estimate leans short for callers who
pause long, as LiveKit's dynamic endpointing does).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from earshot.turns.endpointer import PauseContext
from earshot.turns.eot_features import LmTurnScorer, ProsodyTracker, is_dictation
from earshot.turns.eot_model import EndOfTurnModel, PauseFeatures, decide, load_model

MIN_LEARNED_PAUSE_MS = 60.0
"""Resumed pauses shorter than this (VAD flicker) do not teach the speaker's pause law."""

MAX_LEARNED_PAUSES = 50
"""The speaker's law is estimated from their most recent pauses, this many at most."""

DEFAULT_TEXT_SETTLE_MS = 600.0
"""Changes of the transcript after this much silence are not re-scored (ms)."""


@dataclass(frozen=True, slots=True)
class PauseObservation:
    """What the policy saw at one pause (for evaluation and refitting).

    Attributes:
        first_silence_ms: silence at the first frame of the pause the policy was asked about.
        speech_ms: voiced time of the turn before the pause (ms).
        features: every cue computed for the pause (regardless of when it became usable).
        text: the transcript the text score was computed on ('' if none).
        prosody_ms, text_ms: compute time of the prosody and the (last) text score (ms).
        text_ready_ms: silence at which the text score became usable (ms; None: never).
        ended_at_ms: silence at which the policy ended the turn (None: it did not).
        resumed_after_ms: the pause length when the user spoke again (None: no resumption).
    """

    first_silence_ms: float
    speech_ms: float
    features: PauseFeatures
    text: str
    prosody_ms: float
    text_ms: float
    text_ready_ms: float | None
    ended_at_ms: float | None = None
    resumed_after_ms: float | None = None


class ModelEndpointer:
    """End of turn when P(end) from the learned model passes the cost threshold.

    Args:
        model: the fitted model; None loads the packaged ``model.json``.
        threshold: P(end) at which the turn ends (`earshot.turns.eot_model.threshold_from_costs`
            turns a cost ratio into one); None: the model's calibrated default.
        scorer: the language-model text score; None: text-free (prosody and pause length).
        prosody: use pitch and energy cues (praat-parselmouth).
        now_ms: a monotonic clock in ms used only to measure compute (``Clock.now_ms`` of
            the session clock); None: no compute is charged (deterministic tests).
        text_settle_ms: see `DEFAULT_TEXT_SETTLE_MS`.

    Raises:
        ModelFileError: ``model`` is None and the packaged file is broken.
        ValueError: ``threshold`` outside (0, 1).
    """

    name = "model"

    def __init__(
        self,
        model: EndOfTurnModel | None = None,
        threshold: float | None = None,
        scorer: LmTurnScorer | None = None,
        prosody: bool = True,
        now_ms: Callable[[], float] | None = None,
        text_settle_ms: float = DEFAULT_TEXT_SETTLE_MS,
    ) -> None:
        self.model = model if model is not None else load_model()
        if threshold is not None and not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.threshold = threshold if threshold is not None else self.model.threshold
        self.scorer = scorer
        self.prosody = ProsodyTracker() if prosody else None
        self._now_ms = now_ms
        self.text_settle_ms = text_settle_ms
        self.agent_text = ""
        """The agent's last utterance, read by the language model (set by the conversation)."""
        self.observations: list[PauseObservation] = []
        """One per pause, in order (kept for the whole session; evaluation reads it)."""
        self.last_p_end = 0.0
        self.last_decision_reason = "no pause seen yet"
        self._open = False
        self._silence_ms = 0.0
        self._obs = PauseObservation(0.0, 0.0, PauseFeatures(), "", 0.0, 0.0, None)
        self._acoustic = PauseFeatures()
        self._acoustic_ready_ms = math.inf
        self._text: str | None = None
        self._lm_logit: float | None = None
        self._dictation = False
        self._text_ready_ms = math.inf
        self._speech_ms_before = 0.0
        self._pause_logs: list[float] = []
        self._law = self.model.pause_law
        self.pauses_started = 0
        """Pauses begun so far (the last may still be open)."""

    # -- conversation context ----------------------------------------------------------

    def set_agent_text(self, text: str) -> None:
        """The agent's latest utterance (a question it asked changes what "complete" means)."""
        self.agent_text = text

    # -- the Endpointer protocol --------------------------------------------------------

    def decide(self, ctx: PauseContext) -> bool:
        """True once P(end) with the cues usable at this frame passes the threshold."""
        if not self._open or ctx.silence_ms < self._silence_ms:
            self._start_pause(ctx)
        self._silence_ms = ctx.silence_ms
        if self.prosody is not None and ctx.frame is not None:
            self.prosody.observe_pause_frame(ctx.frame)
        self._maybe_score_text(ctx)
        d = decide(
            self.model, self._usable(ctx.silence_ms), ctx.silence_ms, self.threshold, self._law
        )
        self.last_p_end = d.p_end
        self.last_decision_reason = d.reason
        if d.end:
            self._obs = replace(self._obs, ended_at_ms=ctx.silence_ms)
            self._close()
        return d.end

    def on_resume(self, pause_ms: float) -> None:
        """The user spoke again: the pause was mid-turn (and teaches the speaker's law)."""
        if pause_ms >= MIN_LEARNED_PAUSE_MS:
            self._pause_logs.append(math.log(pause_ms))
            self._law = self.model.pause_law.adapted(
                self._pause_logs[-MAX_LEARNED_PAUSES:], self.model.pause_prior_count
            )
        if self._open:
            self._obs = replace(self._obs, resumed_after_ms=pause_ms)
            self._close()

    def on_turn_end(self) -> None:
        """Per-turn state is per pause here; the speaker's pitch range and floor are kept."""
        if self._open:
            self._close()
        self._speech_ms_before = 0.0

    # -- per pause ----------------------------------------------------------------------

    def _clock(self) -> float:
        return self._now_ms() if self._now_ms is not None else 0.0

    def _start_pause(self, ctx: PauseContext) -> None:
        if self._open:
            self._close()
        self._open = True
        self.pauses_started += 1
        self._silence_ms = ctx.silence_ms
        if self.prosody is not None and ctx.frame is not None:
            self.prosody.observe_pause_frame(ctx.frame)
        t0 = self._clock()
        pitch_z = slope = energy = None
        if self.prosody is not None and ctx.tail_audio is not None and len(ctx.tail_audio):
            cues = self.prosody.cues(ctx.tail_audio)
            pitch_z, slope, energy = (
                cues.pitch_final_z,
                cues.pitch_slope_st_per_s,
                cues.energy_final_rel,
            )
        prosody_ms = max(0.0, self._clock() - t0)
        segment = ctx.speech_ms - self._speech_ms_before
        self._speech_ms_before = ctx.speech_ms
        self._acoustic = PauseFeatures(
            pitch_final_z=pitch_z,
            pitch_slope_st_per_s=slope,
            energy_final_rel=energy,
            log_segment_ms=math.log(max(segment, 20.0)),
        )
        self._acoustic_ready_ms = ctx.silence_ms + prosody_ms
        self._obs = PauseObservation(
            ctx.silence_ms, ctx.speech_ms, self._acoustic, "", prosody_ms, 0.0, None
        )
        self._text = None
        self._lm_logit = None
        self._dictation = False
        self._text_ready_ms = math.inf

    def _maybe_score_text(self, ctx: PauseContext) -> None:
        text = ctx.partial_text.strip()
        if not text or text == self._text:
            return
        if self._text is not None and ctx.silence_ms > self.text_settle_ms:
            return  # a change this late into the silence is noise decoded as words
        self._text = text
        dictation = is_dictation(text)
        logit = None
        t0 = self._clock()
        if self.scorer is not None:
            logit = self.scorer.end_logit(text, self.agent_text)
        text_ms = max(0.0, self._clock() - t0)
        self._lm_logit = logit
        self._dictation = dictation
        self._text_ready_ms = ctx.silence_ms + text_ms
        self._obs = replace(
            self._obs,
            features=replace(self._acoustic, lm_logit=logit, dictation=dictation),
            text=text,
            text_ms=text_ms,
            text_ready_ms=self._text_ready_ms,
        )

    def _usable(self, silence_ms: float) -> PauseFeatures:
        x = self._acoustic if silence_ms >= self._acoustic_ready_ms else PauseFeatures()
        if self._text is not None and silence_ms >= self._text_ready_ms:
            x = replace(x, lm_logit=self._lm_logit, dictation=self._dictation)
        return x

    def _close(self) -> None:
        self.observations.append(self._obs)
        self._open = False
