"""Text sources and model policies for the end-pointing replay.

* `WhisperLaneStt`: Whisper tiny.en (`earshot.stt.whisper_pause.WhisperTranscriber`, the one
  a live call's model policy uses too) with its compute charged on the audio clock: at a
  pause it decodes the turn's last 3 s up to the pause, and the transcript is offered from
  the moment that decode's measured time has passed (nothing before: a transcript one
  decode older misses the last words, which are what says whether the sentence is over).
* `ModelResources`: what model policies share in one run (the language model, loaded once).
* `pause_records`: the policy's per-pause observations placed on the track's time line and
  labelled by the ground truth (mid-turn pause or end of the turn).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from earshot.audio.frames import Pcm16
from earshot.stt.whisper_pause import WHISPER_CONTEXT_MS, WhisperTranscriber

__all__ = ["WHISPER_CONTEXT_MS", "ModelResources", "WhisperLaneStt", "WhisperTranscriber"]

if TYPE_CHECKING:
    from earshot.turns.eot_features import LmTurnScorer
    from earshot.turns.model_endpointer import ModelEndpointer


class WhisperLaneStt:
    """The transcript Whisper offers at each frame of a pause, its decode time charged.

    Same calls as `earshot.evals.endpointing_replay.LaneStt` (``turn_started``,
    ``turn_ended``, ``partial``). See the module docstring for what is offered when.

    Args:
        transcriber: the Whisper model (shared by the lanes of a run).
        frames: the track's int16 frames.
        pre_roll_frames: frames before the turn start that the STT also gets.
        frame_ms: frame duration (ms).
        now_ms: a monotonic clock (ms) to measure decode time; None measures nothing.
        charge: offer the transcript only once its decode time has passed (policies); False
            offers it at once (the observer lane, which measures what the text says, not
            when it would arrive; the decode time is still measured and recorded).
    """

    def __init__(
        self,
        transcriber: WhisperTranscriber,
        frames: Sequence[Pcm16],
        pre_roll_frames: int,
        frame_ms: float,
        now_ms: Callable[[], float] | None,
        charge: bool = True,
    ) -> None:
        self._whisper = transcriber
        self.charged = charge
        self._frames = frames
        self._pre_roll = max(1, pre_roll_frames)
        self._frame_ms = frame_ms
        self._now_ms = now_ms
        self._start = 0
        self._open = False
        self._last_frame = -2
        self._full = ""
        self._ready_frame = 0
        self.decoded_frames = 0
        self.decode_ms: list[float] = []
        """Measured time of every decode (ms)."""

    def turn_started(self, frame_index: int) -> None:
        self._start = max(0, frame_index - self._pre_roll + 1)
        self._open = True
        self._last_frame = -2

    def turn_ended(self, frame_index: int) -> None:
        self._open = False

    def _decode(self, until_frame: int) -> tuple[str, float]:
        context = int(WHISPER_CONTEXT_MS // self._frame_ms)
        first = max(self._start, until_frame - context)
        if until_frame <= first:
            return "", 0.0
        audio = np.concatenate(list(self._frames[first:until_frame]))
        t0 = self._now_ms() if self._now_ms is not None else 0.0
        text = self._whisper.transcribe(audio)
        took = (self._now_ms() - t0) if self._now_ms is not None else 0.0
        self.decoded_frames += until_frame - first
        self.decode_ms.append(took)
        return text, took

    def partial(self, frame_index: int) -> str:
        """The partial as frame ``frame_index`` (a frame of silence in the turn) arrives."""
        if not self._open:
            return ""
        if frame_index != self._last_frame + 1:  # speech since the last call: a new pause
            self._full, took = self._decode(frame_index)
            lag = math.ceil(took / self._frame_ms) if self.charged else 0
            self._ready_frame = frame_index + lag
        self._last_frame = frame_index
        return self._full if frame_index >= self._ready_frame else ""


@dataclass(slots=True)
class ModelResources:
    """Shared by every model policy of a run: the language model and the clock for compute.

    Attributes:
        scorer: the LM text score, or None (text-free).
        now_ms: a monotonic clock (ms) to measure compute, or None.
        whisper: the Whisper transcriber for lanes reading Whisper text, or None.
        observer_scorer: the observer lane's own LM (its own process and KV cache): sharing
            the policies' one would hand them the observer's just-scored prompt from the cache,
            and under-charge their compute. None: the observer uses ``scorer``.
    """

    scorer: LmTurnScorer | None = None
    now_ms: Callable[[], float] | None = None
    whisper: WhisperTranscriber | None = None
    observer_scorer: LmTurnScorer | None = None


def pause_records(
    endpointer: ModelEndpointer,
    first_frame_end_ms: Sequence[float],
    true_end_ms: float,
    onset_ms: float,
) -> list[dict[str, Any]]:
    """The policy's pause observations on the time line, labelled by the ground truth.

    Args:
        endpointer: the lane's policy after the replay.
        first_frame_end_ms: per observation, the end of the frame on which it was first asked.
        true_end_ms: the turn's true end (ms).
        onset_ms: the turn's speech onset (ms).

    Returns:
        One dict per pause after the onset: ``speech_end_ms``, ``label`` ("mid" before the
        true end, "end" at it), the features, compute times and what the policy did.
    """
    from dataclasses import asdict

    records = []
    tolerance_ms = 60.0  # VAD end vs ground truth: a few frames either way
    for obs, frame_end in zip(endpointer.observations, first_frame_end_ms, strict=True):
        speech_end = frame_end - obs.first_silence_ms
        if speech_end < onset_ms:
            continue
        label = "end" if speech_end >= true_end_ms - tolerance_ms else "mid"
        records.append(
            {
                "speech_end_ms": round(speech_end, 3),
                "first_silence_ms": round(obs.first_silence_ms, 3),
                "label": label,
                "features": asdict(obs.features),
                "text": obs.text,
                "prosody_ms": round(obs.prosody_ms, 3),
                "text_ms": round(obs.text_ms, 3),
                "text_ready_ms": obs.text_ready_ms,
                "ended_at_ms": obs.ended_at_ms,
                "resumed_after_ms": obs.resumed_after_ms,
            }
        )
    return records
